"""Offline data sets in model space: 2-D toy sets, scikit-learn's 8x8 digits, and user-provided
``.npz`` files or image folders (MNIST, CIFAR-10, ...). Nothing is downloaded.

Discrete data (images) with ``n`` intensity levels k = 0..n-1 are mapped to model space by

    x = a + (b - a) k / n,   (a, b) = data_range(config) = (0, 1), or (-1, 1) if config.data.centered,

so level k owns the bin [x, x + (b - a)/n) and ``likelihood.bits_per_dim(..., data_range=(a, b),
n_bins=n)`` (which dequantizes x + U[0,1) (b - a)/n) is the exact discrete bits/dim. Digits have
n = 17 levels (values 0..16); 8-bit images have n = config.data.n_bins (default 256; a smaller
value keeps the top bits, k' = floor(k n / 256)). Toy sets are continuous: ``data_range`` is None.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sde_lib.checks import check_choice, check_generator, check_positive, check_tensor, rand, randn
from sde_lib.mixture import two_mode_mixture

Tensor = torch.Tensor
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DIGITS_LEVELS = 17          # sklearn digits hold the integers 0..16
DIGITS_N_TEST = 300         # 1797 images -> 1497 train / 300 test
DEFAULT_TEST_FRACTION = 0.1  # single-array npz / flat image folder: held-out fraction
DEFAULT_SPLIT_SEED = 0


# ============================================================================ 2-D toy sets
def _two_mode(n: int, generator) -> Tensor:
    """Exact samples of sde_lib.mixture.two_mode_mixture(): 0.2 N((-2.4,-2.4), 0.25^2) + 0.8 N((0.6,0.6), 0.5^2)."""
    return two_mode_mixture().sample(n, generator=generator, dtype=torch.float32)


def _eight_gaussians(n: int, generator) -> Tensor:
    """Eight N(c_k, 0.1^2 I) with equal weights, centres c_k on the circle of radius 1.4 (angles 2 pi k / 8)."""
    k = torch.floor(rand((n,), generator) * 8).clamp(max=7)
    angle = 2 * math.pi * k / 8
    centres = 1.4 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.1 * randn((n, 2), generator)


def _moons(n: int, generator) -> Tensor:
    """Two interleaved half circles (upper (cos u, sin u), lower (1 - cos u, 1/2 - sin u), u ~ U(0, pi)),
    each with prob. 1/2, noise N(0, 0.1^2), then centred by (1/2, 1/4) and scaled by 1.4."""
    u = math.pi * rand((n,), generator)
    lower = rand((n,), generator) < 0.5
    upper_pts = torch.stack([torch.cos(u), torch.sin(u)], dim=1)
    lower_pts = torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], dim=1)
    x = torch.where(lower[:, None], lower_pts, upper_pts) + 0.1 * randn((n, 2), generator)
    return 1.4 * (x - torch.tensor([0.5, 0.25]))


def _swiss_roll(n: int, generator) -> Tensor:
    """2-D Swiss roll (theta cos theta, theta sin theta) / 7, theta = 1.5 pi (1 + 2u), plus N(0, 0.05^2)."""
    theta = 1.5 * math.pi * (1 + 2 * rand((n,), generator))
    x = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1) / 7.
    return x + 0.05 * randn((n, 2), generator)


def _checkerboard(n: int, generator) -> Tensor:
    """Uniform on the 8 'even' unit squares of [-2, 2]^2: floor(x1) + floor(x2) is even."""
    x1 = 4 * rand((n,), generator) - 2
    shift = 2 * (rand((n,), generator) < 0.5).float()
    x2 = rand((n,), generator) - shift + torch.remainder(torch.floor(x1), 2)
    return torch.stack([x1, x2], dim=1)


#: name -> fn(n, generator) -> [n, 2] float32 (all roughly unit scale)
TOY_SETS: dict[str, Callable[[int, "torch.Generator | None"], Tensor]] = {
    "two_mode": _two_mode,
    "eight_gaussians": _eight_gaussians,
    "moons": _moons,
    "swiss_roll": _swiss_roll,
    "checkerboard": _checkerboard,
}


def toy(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` samples [n, 2] (float32, CPU) of the toy set ``name`` (one of ``TOY_SETS``)."""
    check_choice("name", name, TOY_SETS)
    check_positive("n", n, integer=True)
    check_generator("generator", generator)
    return TOY_SETS[name](n, generator).to(torch.float32).cpu()


# ============================================================================ config helpers
def _data_shape(config) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in config.data.shape)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"config.data.shape must be a tuple of ints, e.g. (2,) or (1, 8, 8), got "
                         f"{getattr(config.data, 'shape', None)!r}") from None


def _opt(config, key: str, default):
    """config.data.<key>, or ``default`` when the schema has no such field."""
    return getattr(config.data, key, default)


def _split_generator(config, split: str) -> torch.Generator:
    """Toy sets: independent streams per split, seeded 2 * config.seed + (0 train | 1 test)."""
    return torch.Generator().manual_seed(2 * int(config.seed) + SPLITS.index(split))


def _split_indices(n: int, n_test: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed-seed permutation of range(n): (train indices, test indices), disjoint, both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def _take_split(x: Tensor, split: str, n_test: int, seed: int) -> Tensor:
    train_idx, test_idx = _split_indices(x.shape[0], n_test, seed)
    return x[train_idx if split == "train" else test_idx]


def _levels_to_model(k: Tensor, n_levels: int, config) -> Tensor:
    """Integer levels k in [0, n_levels) -> a + (b - a) k / n_levels (float32)."""
    a, b = (-1., 1.) if bool(config.data.centered) else (0., 1.)
    return (a + (b - a) * k.to(torch.float64) / n_levels).to(torch.float32)


def _held_out_size(config, n: int) -> int:
    frac = float(_opt(config, "test_fraction", DEFAULT_TEST_FRACTION))
    if not 0. < frac < 1.:
        raise ValueError(f"config.data.test_fraction must be in (0, 1), got {frac}")
    return max(1, min(n - 1, int(round(frac * n))))


# ============================================================================ loaders
def _load_toy2d(config, split: str) -> Tensor:
    name = str(config.data.toy)
    check_choice("config.data.toy", name, TOY_SETS)
    n = int(config.data.n_train if split == "train" else config.data.n_test)
    check_positive(f"config.data.n_{split}", n, integer=True)
    return toy(name, n, _split_generator(config, split))


def _load_digits(config, split: str) -> Tensor:
    """scikit-learn's 1797 8x8 digits (bundled with the package), 17 levels, fixed 1497/300 split."""
    from sklearn.datasets import load_digits
    k = torch.from_numpy(load_digits().images.astype(np.int64)).reshape(-1, 1, 8, 8)
    k = _take_split(k, split, DIGITS_N_TEST, int(_opt(config, "split_seed", DEFAULT_SPLIT_SEED)))
    return _levels_to_model(k, DIGITS_LEVELS, config)


def _image_levels(config) -> int:
    n = int(config.data.n_bins)
    if not 2 <= n <= 256:
        raise ValueError(f"config.data.n_bins must be in [2, 256] for 8-bit images, got {n}")
    return n


def _quantize_8bit(k: Tensor, config) -> Tensor:
    """8-bit levels k -> model space with config.data.n_bins levels (k' = floor(k n / 256))."""
    n = _image_levels(config)
    return _levels_to_model(torch.div(k.to(torch.int64) * n, 256, rounding_mode="floor"), n, config)


def _to_uint8_levels(arr: np.ndarray, source: str) -> np.ndarray:
    """Integer arrays in [0, 255], or floats that are 8-bit images scaled by 1/255, -> int64 levels."""
    if arr.dtype == np.bool_:
        return arr.astype(np.int64) * 255
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


def _image_shape(config, what: str) -> tuple[int, int, int]:
    shape = _data_shape(config)
    if len(shape) != 3:
        raise ValueError(f"config.data.shape must be (C, H, W) for {what} data, got {shape}")
    return shape


def _missing_path(config, expected: str) -> ValueError:
    path = str(config.data.path)
    why = "is not set" if not path else f"= {path!r} does not exist"
    return ValueError(f"config.data.path {why}; expected {expected}")


NPZ_EXPECTED = ("a .npz file with uint8 image arrays 'x_train' and 'x_test', or 'train' and 'test', "
                "or a single 'x' (split by a fixed seed), shaped [n, C, H, W], [n, H, W, C] or [n, H, W]")


def _load_npz(config, split: str) -> Tensor:
    """Images from a local .npz (see ``NPZ_EXPECTED``), scaled to model space with config.data.n_bins levels."""
    shape = _image_shape(config, "npz")
    path = str(config.data.path)
    if not path or not os.path.isfile(path):
        raise _missing_path(config, NPZ_EXPECTED)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            pair = next(((tr, te) for tr, te in (("x_train", "x_test"), ("train", "test"))
                         if tr in keys and te in keys), None)
            key = pair[SPLITS.index(split)] if pair is not None else "x" if "x" in keys else None
            arr = f[key] if key is not None else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"config.data.path = {path!r} could not be read as .npz ({e}); expected "
                         f"{NPZ_EXPECTED}") from None
    if key is None:
        raise ValueError(f"config.data.path = {path!r} has arrays {sorted(keys)}; expected {NPZ_EXPECTED}")
    single = pair is None
    source = f"{path}['{key}']"
    k = torch.from_numpy(np.ascontiguousarray(_to_chw(_to_uint8_levels(arr, source), shape, source)))
    if single:
        k = _take_split(k, split, _held_out_size(config, k.shape[0]),
                        int(_opt(config, "split_seed", DEFAULT_SPLIT_SEED)))
    return _quantize_8bit(k, config)


FOLDER_EXPECTED = (f"a folder with train/ and test/ subfolders of images, or a folder of images split by "
                   f"a fixed seed (extensions {', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


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
        with Image.open(fname) as img:
            a = np.asarray(img.convert(PIL_MODES[C]))
        a = a[:, :, None] if a.ndim == 2 else a
        if a.shape[:2] != (H, W):
            raise ValueError(f"config.data.shape is {shape} but image {fname!r} has (H, W) = {a.shape[:2]}")
        out[i] = a.transpose(2, 0, 1)
    return torch.from_numpy(out)


def _load_image_folder(config, split: str) -> Tensor:
    """Images (PIL) from config.data.path/{train,test}/ or one folder split by a fixed seed."""
    shape = _image_shape(config, "image_folder")
    path = str(config.data.path)
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
        train_idx, test_idx = _split_indices(len(files), _held_out_size(config, len(files)),
                                             int(_opt(config, "split_seed", DEFAULT_SPLIT_SEED)))
        files = [files[i] for i in (train_idx if split == "train" else test_idx).tolist()]
    return _quantize_8bit(_read_images(files, shape), config)


# ============================================================================ registry
@dataclass(frozen=True)
class DatasetSpec:
    """load(config, split) -> model-space tensor; ``image``: [C, H, W] data; levels(config): discrete
    levels per dimension (None: continuous data)."""
    load: Callable[[object, str], Tensor]
    image: bool
    levels: Callable[[object], "int | None"]


DATASETS: dict[str, DatasetSpec] = {
    "toy2d": DatasetSpec(_load_toy2d, image=False, levels=lambda config: None),
    "digits": DatasetSpec(_load_digits, image=True, levels=lambda config: DIGITS_LEVELS),
    "npz": DatasetSpec(_load_npz, image=True, levels=_image_levels),
    "image_folder": DatasetSpec(_load_image_folder, image=True, levels=_image_levels),
}


def _spec(config) -> DatasetSpec:
    name = str(config.data.dataset)
    check_choice("config.data.dataset", name, DATASETS)
    return DATASETS[name]


def get_dataset(config, split: str) -> Tensor:
    """The ``split`` ("train" | "test") of config.data.dataset as a float32 tensor [n, *config.data.shape]
    in model space (see the module docstring). Deterministic: toy sets are drawn from a generator seeded
    by config.seed and the split; the other sets use a fixed-seed split."""
    check_choice("split", split, SPLITS)
    spec = _spec(config)
    shape = _data_shape(config)
    x = spec.load(config, split)
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"config.data.shape is {shape} but data set {config.data.dataset!r} has samples of "
                         f"shape {tuple(x.shape[1:])}")
    return x


def is_image(config) -> bool:
    """True for image data sets ([C, H, W] samples that ``to_unit_images`` can turn into a PNG grid)."""
    return _spec(config).image


def n_bins(config) -> int | None:
    """Discrete levels per dimension (digits: 17; npz / image_folder: config.data.n_bins); None for toy data."""
    return _spec(config).levels(config)


def data_range(config) -> tuple[float, float] | None:
    """(a, b): the model-space range of discrete data for bits/dim ((0, 1), or (-1, 1) when
    config.data.centered); None for continuous (toy) data."""
    if n_bins(config) is None:
        return None
    return (-1., 1.) if bool(config.data.centered) else (0., 1.)


def to_unit_images(x: Tensor, config) -> Tensor:
    """Model-space images [B, C, H, W] -> [0, 1] for PNG grids: level k -> k / (n - 1), so the top level
    is white; values in between (samples) are mapped linearly and clipped."""
    if not is_image(config):
        raise ValueError(f"x: data set {config.data.dataset!r} (shape {_data_shape(config)}) has no image form; "
                         f"plot 2-D data as a scatter plot")
    check_tensor("x", x, finite=False)
    shape = _data_shape(config)
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"x must have shape [B, *config.data.shape] = [B, {', '.join(map(str, shape))}], "
                         f"got {tuple(x.shape)}")
    a, b = data_range(config)
    n = n_bins(config)
    unit = (x - a) / (b - a) * (n / (n - 1))
    return torch.nan_to_num(unit, nan=0.).clamp(0., 1.)


__all__ = ["TOY_SETS", "DATASETS", "DatasetSpec", "toy", "get_dataset", "is_image", "n_bins", "data_range",
           "to_unit_images"]
