"""The data-set registry and the model-space helpers: ``get_dataset``, ``data_spec`` and friends.

``DATASETS`` maps config.data.dataset to a ``DatasetSpec`` (loader, image or not, discrete levels).
Discrete data (images) with ``n`` intensity levels k = 0..n-1 are mapped to model space by

    x = a + (b - a) k / n,   (a, b) = data_range(config) = (0, 1), or (-1, 1) if config.data.centered,

so level k owns the bin [x, x + (b - a)/n) and ``likelihood.bits_per_dim(..., data_range=(a, b),
n_bins=n)`` (which dequantizes x + U[0,1) (b - a)/n) is the exact discrete bits/dim. Digits have
n = 17 levels (values 0..16); 8-bit images have n = config.data.n_bins (default 256; a smaller
value keeps the top bits, k' = floor(k n / 256)). Toy sets are continuous: ``data_range`` is None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from sde_lib.checks import check_choice, check_tensor

from .digits import DIGITS_LEVELS, load_digits_split
from .files import image_levels, image_shape, load_image_folder, load_npz
from .splits import SPLITS, data_shape
from .toy import load_toy2d

Tensor = torch.Tensor


@dataclass(frozen=True)
class DatasetSpec:
    """load(config, split) -> model-space tensor; ``image``: [C, H, W] data; levels(config): discrete
    levels per dimension (None: continuous data)."""
    load: Callable[[object, str], Tensor]
    image: bool
    levels: Callable[[object], "int | None"]


DATASETS: dict[str, DatasetSpec] = {
    "toy2d": DatasetSpec(load_toy2d, image=False, levels=lambda config: None),
    "digits": DatasetSpec(load_digits_split, image=True, levels=lambda config: DIGITS_LEVELS),
    "npz": DatasetSpec(load_npz, image=True, levels=image_levels),
    "image_folder": DatasetSpec(load_image_folder, image=True, levels=image_levels),
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
    shape = data_shape(config)
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
        raise ValueError(f"x: data set {config.data.dataset!r} (shape {data_shape(config)}) has no image form; "
                         f"plot 2-D data as a scatter plot")
    check_tensor("x", x, finite=False)
    shape = data_shape(config)
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"x must have shape [B, *config.data.shape] = [B, {', '.join(map(str, shape))}], "
                         f"got {tuple(x.shape)}")
    a, b = data_range(config)
    n = n_bins(config)
    unit = (x - a) / (b - a) * (n / (n - 1))
    return torch.nan_to_num(unit, nan=0.).clamp(0., 1.)


# ----------------------------------------------------------------------------- the data spec of a run
@dataclass(frozen=True)
class DataSpec:
    """What every mode needs to know about ``config.data`` without loading it: the data set's name, the
    sample shape, whether samples are images, and (discrete data) the levels and model-space range.
    ``load(split)`` reads a split (``get_dataset``)."""
    dataset: str
    shape: tuple[int, ...]
    image: bool
    n_bins: int | None
    data_range: tuple[float, float] | None
    config: object = dataclasses.field(repr=False, compare=False, default=None)

    def load(self, split: str) -> Tensor:
        return get_dataset(self.config, split)

    def to_unit_images(self, x: Tensor) -> Tensor:
        return to_unit_images(x, self.config)


def data_spec(config) -> DataSpec:
    """The ``DataSpec`` of ``config``, validated without reading any data: a known config.data.dataset,
    an integer config.data.shape ((C, H, W) for image sets) and, for 8-bit images, config.data.n_bins."""
    spec = _spec(config)
    shape = data_shape(config)
    if spec.image:
        image_shape(config, str(config.data.dataset))
    return DataSpec(dataset=str(config.data.dataset), shape=shape, image=spec.image, n_bins=n_bins(config),
                    data_range=data_range(config), config=config)
