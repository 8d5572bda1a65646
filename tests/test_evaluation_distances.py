"""evaluation.distances: the unbiased MMD^2 estimator against its definition, MMD (RBF) and KID on it."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from evaluation.distances import kid, mmd_rbf, unbiased_mmd2

torch.set_num_threads(1)


def brute_mmd2(x, y, k) -> float:
    """sum_{i!=j} k(x_i, x_j) / n(n-1) + sum_{i!=j} k(y_i, y_j) / m(m-1) - 2 sum_{i,j} k(x_i, y_j) / nm."""
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    sxy = sum(k(a, b) for a in x for b in y) / (n * m)
    return float(sxx + syy - 2 * sxy)


def test_estimators_equal_the_definition():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3
    lin = unbiased_mmd2(x @ x.T, y @ y.T, x @ y.T)
    assert lin == pytest.approx(brute_mmd2(x, y, lambda a, b: float(a @ b)), rel=1e-12)
    bw = 0.7
    rbf = lambda a, b: math.exp(-float((a - b).pow(2).sum()) / (2 * bw ** 2))   # noqa: E731
    assert mmd_rbf(x, y, bandwidth=bw) == pytest.approx(brute_mmd2(x, y, rbf), rel=1e-10)
    cubic = lambda a, b: (float(a @ b) / 3 + 1) ** 3                            # noqa: E731
    assert kid(x, y) == pytest.approx(brute_mmd2(x, y, cubic), rel=1e-10)


def test_kid_near_zero_for_equal_laws_and_checks_shapes():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(500, 6, generator=g), torch.randn(500, 6, generator=g)
    assert abs(kid(a, b)) < 0.05 < kid(a, b + 0.5)
    with pytest.raises(ValueError, match="fx, fy"):
        kid(a, b[:, :5])
    with pytest.raises(ValueError, match="two rows"):
        kid(a[:1], b)
