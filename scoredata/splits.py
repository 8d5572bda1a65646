"""Shared pieces of the data loaders: config accessors, fixed-seed train/test splits, model-space levels.

Discrete data with ``n`` intensity levels k = 0..n-1 map to model space by

    x = a + (b - a) k / n,   (a, b) = (0, 1), or (-1, 1) if config.data.centered,

so level k owns the bin [x, x + (b - a)/n) (see ``scoredata`` for why this makes bits/dim exact).
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor
SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.1  # single-array npz / flat image folder: held-out fraction
DEFAULT_SPLIT_SEED = 0


def data_shape(config) -> tuple[int, ...]:
    """``config.data.shape`` as a tuple of ints (ValueError naming it otherwise)."""
    try:
        return tuple(int(s) for s in config.data.shape)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"config.data.shape must be a tuple of ints, e.g. (2,) or (1, 8, 8), got "
                         f"{getattr(config.data, 'shape', None)!r}") from None


def opt(config, key: str, default):
    """config.data.<key>, or ``default`` when the schema has no such field."""
    return getattr(config.data, key, default)


def split_seed(config) -> int:
    return int(opt(config, "split_seed", DEFAULT_SPLIT_SEED))


def split_indices(n: int, n_test: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed-seed permutation of range(n): (train indices, test indices), disjoint, both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def take_split(x: Tensor, split: str, n_test: int, seed: int) -> Tensor:
    """The rows of ``x`` in ``split`` under ``split_indices(len(x), n_test, seed)``."""
    train_idx, test_idx = split_indices(x.shape[0], n_test, seed)
    return x[train_idx if split == "train" else test_idx]


def levels_to_model(k: Tensor, n_levels: int, config) -> Tensor:
    """Integer levels k in [0, n_levels) -> a + (b - a) k / n_levels (float32)."""
    a, b = (-1., 1.) if bool(config.data.centered) else (0., 1.)
    return (a + (b - a) * k.to(torch.float64) / n_levels).to(torch.float32)


def held_out_size(config, n: int) -> int:
    """Test rows of a set of ``n`` without a predefined split: round(config.data.test_fraction * n)."""
    frac = float(opt(config, "test_fraction", DEFAULT_TEST_FRACTION))
    if not 0. < frac < 1.:
        raise ValueError(f"config.data.test_fraction must be in (0, 1), got {frac}")
    return max(1, min(n - 1, int(round(frac * n))))
