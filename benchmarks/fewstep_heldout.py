"""Held-out closed-form workloads of ``benchmarks/fewstep.py``: never used to choose a default.

The solvers' default arguments and ``solver="auto"`` are chosen on ``fewstep.make_workloads``; these
workloads differ from those in mode count, widths, weights, dimension, anisotropy and SDE (sub-VP
included) and only check that the choice carries over.

``DiagonalMixture``: p_0(x) = sum_k w_k N(x; mu_k, diag(s_k^2)) (per-coordinate stds). Under a kernel
N(m(t) x0, std(t)^2 I) the marginal is sum_k w_k N(x; m mu_k, diag(m^2 s_k^2 + std^2)) and

    grad log p_t(x) = sum_k r_k(x) (m mu_k - x) / (m^2 s_k^2 + std^2)      (elementwise),

r_k the responsibilities, all in closed form like ``sde_lib.mixture.GaussianMixture``.
"""
from __future__ import annotations

import math

import torch

from sde_lib import VESDE, VPSDE, subVPSDE
from sde_lib.mixture import GaussianMixture

Tensor = torch.Tensor


class DiagonalMixture:
    """Gaussian mixture with ``weights`` [K], ``means`` [K, D] and per-coordinate ``stds`` [K, D]."""

    def __init__(self, weights, means, stds):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        if self.means.shape != self.stds.shape or self.means.shape[0] != self.weights.shape[0]:
            raise ValueError(f"means and stds must both have shape [K={self.weights.shape[0]}, D], got "
                             f"{tuple(self.means.shape)} and {tuple(self.stds.shape)}")
        if abs(float(self.weights.sum()) - 1.) > 1e-9 or bool((self.stds <= 0).any()):
            raise ValueError("weights must sum to 1 and stds must be positive")
        self.data_shape = tuple(self.means.shape[1:])

    def score(self, x: Tensor, t: Tensor, sde) -> Tensor:
        """grad_x log p_t(x) (x: [B, D], t: [B])."""
        m, s = sde.marginal_coeffs(t.to(torch.float64))
        m, s = m.to(x.dtype).reshape(-1, 1, 1), s.to(x.dtype).reshape(-1, 1, 1)
        mu = self.means.to(x) * m                                        # [B, K, D]
        var = m ** 2 * self.stds.to(x) ** 2 + s ** 2
        d = mu - x.unsqueeze(1)
        logpdf = -0.5 * (torch.log(2 * math.pi * var) + d ** 2 / var).sum(-1)
        r = torch.softmax(logpdf + torch.log(self.weights.to(x)), dim=1)  # [B, K]
        return (r.unsqueeze(-1) * d / var).sum(1)

    def score_fn(self, sde):
        def fn(x: Tensor, t: Tensor) -> Tensor:
            return self.score(x, t, sde)
        return fn


def _points(k: int, dim: int, seed: int, scale: float) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(k, dim, generator=g, dtype=torch.float64)
    return mu / mu.norm(dim=1, keepdim=True) * scale


def make_heldout(quick: bool) -> dict:
    """name -> (sde, mixture, number of starting points)."""
    n = 512 if quick else 4096
    aniso_std = torch.tensor([[1.0, 0.1, 0.03], [0.05, 0.6, 0.2], [0.3, 0.02, 0.8]], dtype=torch.float64)
    mu32 = torch.zeros(2, 32, dtype=torch.float64)
    mu32[0, :4], mu32[1, :4] = 0.4, -3.6                                 # mean zero: 0.9 * 0.4 = 0.1 * 3.6
    return {
        "vp_3d_aniso_three_mode": (VPSDE(), DiagonalMixture([0.5, 0.3, 0.2], _points(3, 3, 5, 1.5), aniso_std), n),
        "vp_32d_two_mode_unequal": (VPSDE(beta_min=0.1, beta_max=15.), GaussianMixture([0.9, 0.1], mu32, [0.3, 0.08]),
                                    n // 2),
        "subvp_2d_five_mode": (subVPSDE(), GaussianMixture([0.3, 0.25, 0.2, 0.15, 0.1], _points(5, 2, 7, 2.),
                                                           [0.15, 0.3, 0.1, 0.2, 0.4]), n),
        "ve_2d_three_mode_very_narrow": (VESDE(sigma_min=0.005, sigma_max=25.),
                                         GaussianMixture([0.5, 0.3, 0.2], [[-2., 0.], [1.5, 1.5], [1., -2.]],
                                                         [0.02, 0.03, 0.015]), n),
    }
