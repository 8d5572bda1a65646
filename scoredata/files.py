"""User-provided image data on disk: a ``.npz`` of uint8 arrays or a folder of image files (MNIST,
CIFAR-10, ...), read locally (nothing is downloaded) and quantized to config.data.n_bins levels.

8-bit levels k map to n = config.data.n_bins levels by k' = floor(k n / 256) (n = 256 keeps them all),
then to model space with ``splits.levels_to_model``.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np
import torch

from .splits import SPLITS, data_shape, held_out_size, levels_to_model, split_indices, split_seed, take_split

Tensor = torch.Tensor
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
NPZ_EXPECTED = ("a .npz file with uint8 image arrays 'x_train' and 'x_test', or 'train' and 'test', "
                "or a single 'x' (split by a fixed seed), shaped [n, C, H, W], [n, H, W, C] or [n, H, W]")
FOLDER_EXPECTED = (f"a folder with train/ and test/ subfolders of images, or a folder of images split by "
                   f"a fixed seed (extensions {', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


# ----------------------------------------------------------------------------- levels
def image_levels(config) -> int:
    """config.data.n_bins, checked to be in [2, 256]."""
    n = int(config.data.n_bins)
    if not 2 <= n <= 256:
        raise ValueError(f"config.data.n_bins must be in [2, 256] for 8-bit images, got {n}")
    return n


def _quantize_8bit(k: Tensor, config) -> Tensor:
    """8-bit levels k -> model space with config.data.n_bins levels (k' = floor(k n / 256))."""
    n = image_levels(config)
    return levels_to_model(torch.div(k.to(torch.int64) * n, 256, rounding_mode="floor"), n, config)


def _to_uint8_levels(arr: np.ndarray, source: str) -> np.ndarray:
    """Integer arrays in [0, 255], or finite floats that are 8-bit images scaled by 1/255, -> int64 levels.
    Empty arrays, non-finite values and other dtypes (bool, strings, complex, objects) are refused."""
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"config.data.path: {source} is empty (shape {tuple(arr.shape)}); expected images")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or \
            np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"config.data.path: {source} has dtype {arr.dtype}; expected uint8 images (or floats k / 255)")
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(f"config.data.path: {source} holds {bad} non-finite value{'s' if bad > 1 else ''} "
                             f"(NaN or inf) of {arr.size}; expected 8-bit images")
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"config.data.path: {source} must hold 8-bit images (integers in [0, 255]), "
                             f"got values in [{lo}, {hi}]")
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        k = np.rint(arr.astype(np.float64) * 255.)
        if arr.size and (arr.min() < 0 or arr.max() > 1 or np.abs(k - arr * 255.).max() > 1e-3):
            raise ValueError(f"config.data.path: {source} holds floats that are not 8-bit images scaled to "
                             f"[0, 1] (k / 255); store uint8 images instead")
        return k.astype(np.int64)
    raise ValueError(f"config.data.path: {source} has dtype {arr.dtype}; expected uint8 images")


def _to_chw(arr: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """[n, C, H, W], [n, H, W, C], [n, H, W] (C = 1) or flat [n, C*H*W] -> [n, C, H, W] for ``shape`` = (C, H, W)."""
    C, H, W = shape
    got = tuple(arr.shape[1:])
    if got == (C, H, W):
        return arr
    if got == (H, W, C):
        return arr.transpose(0, 3, 1, 2)
    if got == (H, W) and C == 1:
        return arr[:, None]
    if got == (C * H * W,):
        return arr.reshape(-1, C, H, W)
    raise ValueError(f"config.data.shape is {shape} (C, H, W) but {source} holds images of shape {got}; "
                     f"expected {(C, H, W)} (CHW), {(H, W, C)} (HWC) or a flat {(C * H * W,)}")


def image_shape(config, what: str) -> tuple[int, int, int]:
    """config.data.shape, checked to be (C, H, W)."""
    shape = data_shape(config)
    if len(shape) != 3:
        raise ValueError(f"config.data.shape must be (C, H, W) for {what} data, got {shape}")
    return shape


def _missing_path(config, expected: str) -> ValueError:
    path = str(config.data.path)
    why = "is not set" if not path else f"= {path!r} does not exist"
    return ValueError(f"config.data.path {why}; expected {expected}")


# ----------------------------------------------------------------------------- .npz
class _WrongKind(Exception):
    """np.load gave a single array (a .npy file), not an .npz archive."""


def load_npz(config, split: str) -> Tensor:
    """Images from a local .npz (see ``NPZ_EXPECTED``), scaled to model space with config.data.n_bins levels."""
    shape = image_shape(config, "npz")
    path = str(config.data.path)
    if path and os.path.isdir(path):
        raise ValueError(f"config.data.path = {path!r} is a folder; expected {NPZ_EXPECTED} (a folder of images "
                         f"is config.data.dataset='image_folder')")
    if not path or not os.path.isfile(path):
        raise _missing_path(config, NPZ_EXPECTED)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            raise _WrongKind()
        with loaded as f:
            keys = set(f.files)
            pair = next(((tr, te) for tr, te in (("x_train", "x_test"), ("train", "test"))
                         if tr in keys and te in keys), None)
            key = pair[SPLITS.index(split)] if pair is not None else "x" if "x" in keys else None
            arr = f[key] if key is not None else None
    except _WrongKind:
        raise ValueError(f"config.data.path = {path!r} holds a single array (a .npy file); expected "
                         f"{NPZ_EXPECTED} (np.savez(path, x_train=..., x_test=...))") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"config.data.path = {path!r} could not be read as .npz ({e}); expected "
                         f"{NPZ_EXPECTED}") from None
    if key is None:
        raise ValueError(f"config.data.path = {path!r} has arrays {sorted(keys)}; expected {NPZ_EXPECTED}")
    single = pair is None
    source = f"{path}['{key}']"
    k = torch.from_numpy(np.ascontiguousarray(_to_chw(_to_uint8_levels(arr, source), shape, source)))
    if single:
        k = take_split(k, split, held_out_size(config, k.shape[0]), split_seed(config))
    return _quantize_8bit(k, config)


# ----------------------------------------------------------------------------- image folders
def _list_images(folder: str) -> list[str]:
    files = []
    for root, _, names in os.walk(folder):
        files += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files)


def _read_images(files: list[str], shape: tuple[int, int, int]) -> Tensor:
    from PIL import Image
    C, H, W = shape
    if C not in PIL_MODES:
        raise ValueError(f"config.data.shape must have 1, 3 or 4 channels for image_folder data, got {shape}")
    out = np.empty((len(files), C, H, W), dtype=np.uint8)
    for i, fname in enumerate(files):
        try:
            with Image.open(fname) as img:
                a = np.asarray(img.convert(PIL_MODES[C]))
        except (OSError, ValueError, SyntaxError) as e:   # PIL: UnidentifiedImageError, truncated data ...
            raise ValueError(f"config.data.path: image {fname!r} could not be read ({type(e).__name__}: {e}); "
                             f"remove or replace it") from None
        a = a[:, :, None] if a.ndim == 2 else a
        if a.shape[:2] != (H, W):
            raise ValueError(f"config.data.shape is {shape} but image {fname!r} has (H, W) = {a.shape[:2]}")
        out[i] = a.transpose(2, 0, 1)
    return torch.from_numpy(out)


def load_image_folder(config, split: str) -> Tensor:
    """Images (PIL) from config.data.path/{train,test}/ or one folder split by a fixed seed."""
    shape = image_shape(config, "image_folder")
    path = str(config.data.path)
    if path and os.path.isfile(path):
        raise ValueError(f"config.data.path = {path!r} is a file; expected {FOLDER_EXPECTED} (an .npz file is "
                         f"config.data.dataset='npz')")
    if not path or not os.path.isdir(path):
        raise _missing_path(config, FOLDER_EXPECTED)
    has_split = [os.path.isdir(os.path.join(path, s)) for s in SPLITS]
    if any(has_split):
        if not all(has_split):
            raise ValueError(f"config.data.path = {path!r} has a {SPLITS[has_split.index(True)]}/ subfolder "
                             f"but no {SPLITS[has_split.index(False)]}/; expected {FOLDER_EXPECTED}")
        folder = os.path.join(path, split)
        files = _list_images(folder)
    else:
        folder = path
        files = _list_images(folder)
    if not files:
        raise ValueError(f"config.data.path: {folder!r} contains no images; expected {FOLDER_EXPECTED}")
    if not any(has_split):
        train_idx, test_idx = split_indices(len(files), held_out_size(config, len(files)), split_seed(config))
        files = [files[i] for i in (train_idx if split == "train" else test_idx).tolist()]
    return _quantize_8bit(_read_images(files, shape), config)
