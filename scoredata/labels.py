"""Class labels of labelled data sets (the digits), aligned row by row with ``get_dataset``."""
from __future__ import annotations

import numpy as np
import torch

from .digits import digits_labels
from .registry import get_dataset

Tensor = torch.Tensor


def get_labels(config, split: str) -> Tensor:
    """Integer class labels [n] of ``split`` for labelled data sets (digits)."""
    if str(config.data.dataset) != "digits":
        raise ValueError(f"config.data.dataset must be a labelled data set ('digits') to train a classifier, "
                         f"got {config.data.dataset!r}")
    return digits_labels(config, split)


def get_labeled_dataset(config, split: str) -> tuple[Tensor, Tensor]:
    """(x [n, *shape] in model space, y [n] int64) for ``split``; alignment of x and y is verified."""
    from sklearn.datasets import load_digits

    x = get_dataset(config, split)
    y = get_labels(config, split)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"config.data: {y.shape[0]} labels for {x.shape[0]} samples in split {split!r}")
    # alignment check: the data set's images, mapped back to levels, must match sklearn's images of y
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float64)).reshape(-1, 64)
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    lo, hi = float(images.min()), float(images.max())
    a, b = float(flat.min()), float(flat.max())
    scaled = (flat - a) / max(b - a, 1e-12) * (hi - lo) + lo
    first = scaled[:5]
    d = torch.cdist(first, images)
    match = torch.from_numpy(digits.target.astype(np.int64))[d.argmin(1)]
    if not bool((d.min(1).values < 1e-3).all()) or not torch.equal(match, y[:5]):
        raise ValueError("config.data: the digits labels are not aligned with scoredata.get_dataset")
    return x, y
