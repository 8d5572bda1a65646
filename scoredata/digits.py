"""scikit-learn's 1797 8x8 digits (bundled with the package, nothing downloaded): 17 levels (values 0..16),
a fixed-seed 1497 / 300 train / test split, and the class labels of each split."""
from __future__ import annotations

import numpy as np
import torch

from .splits import levels_to_model, split_indices, split_seed, take_split

Tensor = torch.Tensor
DIGITS_LEVELS = 17          # sklearn digits hold the integers 0..16
DIGITS_N_TEST = 300         # 1797 images -> 1497 train / 300 test


def load_digits_split(config, split: str) -> Tensor:
    """The ``split`` of the digits in model space, [n, 1, 8, 8]."""
    from sklearn.datasets import load_digits
    k = torch.from_numpy(load_digits().images.astype(np.int64)).reshape(-1, 1, 8, 8)
    k = take_split(k, split, DIGITS_N_TEST, split_seed(config))
    return levels_to_model(k, DIGITS_LEVELS, config)


def digits_labels(config, split: str) -> Tensor:
    """Class labels [n] (int64) of the digits ``split``, in the row order of ``load_digits_split``."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    train_idx, test_idx = split_indices(len(digits.target), DIGITS_N_TEST, split_seed(config))
    idx = train_idx if split == "train" else test_idx
    return torch.from_numpy(digits.target.astype(np.int64))[idx]
