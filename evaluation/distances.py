"""Distances between sample sets: sliced Wasserstein, kernel MMD (RBF; KID's cubic kernel), per-mode
statistics, pixel moments."""
from __future__ import annotations

import math

import torch

from sde_lib.checks import check_tensor, randn

Tensor = torch.Tensor


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance sqrt(E_v W_2^2(v^T x, v^T y)) over random unit directions v.

    1-D W_2 between projections uses quantile matching; sets of different sizes are compared on a
    common grid of quantiles. Any data shape; samples are flattened.
    """
    check_tensor("x", x)
    check_tensor("y", y)
    xf = x.reshape(x.shape[0], -1).to(torch.float64)
    yf = y.reshape(y.shape[0], -1).to(torch.float64).to(xf.device)
    if xf.shape[1] != yf.shape[1]:
        raise ValueError(f"y must have the same data size as x ({xf.shape[1]}), got {yf.shape[1]}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    v = randn((xf.shape[1], n_projections), generator=generator, dtype=torch.float64).to(xf.device)
    v = v / v.norm(dim=0, keepdim=True)
    px, _ = torch.sort(xf @ v, dim=0)
    py, _ = torch.sort(yf @ v, dim=0)
    n = max(px.shape[0], py.shape[0])
    if px.shape[0] != py.shape[0]:
        q = (torch.arange(n, dtype=torch.float64, device=xf.device) + 0.5) / n
        px = torch.quantile(px, q, dim=0)
        py = torch.quantile(py, q, dim=0)
    return float(torch.sqrt(((px - py) ** 2).mean()))


def mode_weights_error(weights: Tensor, target: Tensor) -> float:
    """max_k |w_k - target_k|."""
    return float((torch.as_tensor(weights, dtype=torch.float64)
                  - torch.as_tensor(target, dtype=torch.float64)).abs().max())


def mode_spread(x: Tensor, labels: Tensor, k: int) -> float:
    """RMS distance of the samples assigned to mode ``k`` from their own mean, per dimension."""
    sel = x.reshape(x.shape[0], -1)[labels == k].to(torch.float64)
    if sel.shape[0] < 2:
        return float("nan")
    return float(torch.sqrt(((sel - sel.mean(0)) ** 2).sum(1).mean() / sel.shape[1]))


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with a Gaussian kernel (median-heuristic bandwidth by default)."""
    xf = x.reshape(x.shape[0], -1).to(torch.float64)
    yf = y.reshape(y.shape[0], -1).to(torch.float64).to(xf.device)
    z = torch.cat([xf, yf])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        bandwidth = math.sqrt(0.5 * float(d2[d2 > 0].median()))
    k = torch.exp(-d2 / (2 * bandwidth ** 2))
    n = xf.shape[0]
    return unbiased_mmd2(k[:n, :n], k[n:, n:], k[:n, n:])


def unbiased_mmd2(kxx: Tensor, kyy: Tensor, kxy: Tensor) -> float:
    """MMD_u^2 = sum_{i!=j} k(x_i,x_j) / n(n-1) + sum_{i!=j} k(y_i,y_j) / m(m-1) - 2 mean k(x_i,y_j) from
    the kernel matrices [n, n], [m, m], [n, m]."""
    n, m = kxx.shape[0], kyy.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(fx: Tensor, fy: Tensor) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (a.b / d + 1)^3 between feature sets [n, d], [m, d]."""
    fx, fy = fx.double(), fy.double()
    if fx.dim() != 2 or fy.dim() != 2 or fx.shape[1] != fy.shape[1]:
        raise ValueError(f"fx, fy must be feature matrices [n, d] with the same d, got {tuple(fx.shape)} "
                         f"and {tuple(fy.shape)}")
    if fx.shape[0] < 2 or fy.shape[0] < 2:
        raise ValueError(f"fx, fy need at least two rows each, got {fx.shape[0]} and {fy.shape[0]}")
    d = fx.shape[1]
    return unbiased_mmd2((fx @ fx.T / d + 1) ** 3, (fy @ fy.T / d + 1) ** 3, (fx @ fy.T / d + 1) ** 3)


def pixel_moments(x: Tensor, y: Tensor) -> dict:
    """Mean abs difference of per-dimension means and stds between two sample sets."""
    xf = x.reshape(x.shape[0], -1).to(torch.float64)
    yf = y.reshape(y.shape[0], -1).to(torch.float64).to(xf.device)
    return {"mean_abs_diff": float((xf.mean(0) - yf.mean(0)).abs().mean()),
            "std_abs_diff": float((xf.std(0) - yf.std(0)).abs().mean())}
