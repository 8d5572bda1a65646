"""Closed-form reference for the tests: Gaussian mixtures under every SDE.

Component k of the data mixture, under an SDE with kernel N(m(t) x0, std(t)^2 I), becomes
N(m(t) mu_k, (m(t)^2 s_k^2 + std(t)^2) I); ``GaussianMixture`` (in ``sde_lib.mixture``) gives the exact
perturbed marginal, log p_t and score. This module re-exports it with the test fixtures and metrics.
"""
from __future__ import annotations

import torch

from sde_lib import VESDE, VPSDE, subVPSDE
from sde_lib.mixture import GaussianMixture, two_mode_mixture
from quality import sliced_wasserstein, mode_spread

__all__ = ["GaussianMixture", "two_mode_mixture", "sliced_wasserstein", "mode_spread", "make_sdes",
           "mixture_nd"]


def make_sdes(N: int = 1000) -> dict:
    """One SDE of each family, sized for the 2-D test mixtures (VE sigma_max >> data spread)."""
    return {"vesde": VESDE(sigma_min=0.01, sigma_max=20., N=N),
            "vpsde": VPSDE(beta_min=0.1, beta_max=20., N=N),
            "subvpsde": subVPSDE(beta_min=0.1, beta_max=20., N=N)}


def mixture_nd(D: int, seed: int = 0, dtype=torch.float64) -> GaussianMixture:
    """A two-component, mean-zero mixture in D dims (weights 0.3/0.7), for likelihood tests."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(D, generator=g, dtype=dtype)
    mu = mu / mu.norm() * 2.0
    means = torch.stack([-0.7 * mu, 0.3 * mu])  # 0.3 * (-0.7 mu) + 0.7 * (0.3 mu) = 0
    return GaussianMixture([0.3, 0.7], means, [0.5, 0.8], dtype=dtype)
