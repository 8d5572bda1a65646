"""Variance-exploding SDE (the continuous limit of SMLD / NCSN).

dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw,  sigma(t) = sigma_min (sigma_max / sigma_min)^t,
p_0t(x_t | x_0) = N(x_0, sigma(t)^2 I), prior N(0, sigma_max^2 I).
"""
from __future__ import annotations

import math

import torch

from .base import SDE
from .checks import batch_view, check_positive


class VESDE(SDE):
    score_parameterization = "score"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50., N: int = 1000):
        super().__init__(N)
        check_positive("sigma_min", sigma_min)
        check_positive("sigma_max", sigma_max)
        if not sigma_max > sigma_min:
            raise ValueError(f"sigma_max must be greater than sigma_min, got sigma_min={sigma_min}, "
                             f"sigma_max={sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        # NCSN ladder in time order (ascending): sigma_i = sigma_min (sigma_max/sigma_min)^(i/(N-1)).
        # (N == 1 gives the single level sigma_min.)
        exponents = torch.linspace(0., 1., N, dtype=torch.float64) if N > 1 else torch.zeros(1, dtype=torch.float64)
        self.discrete_sigmas = self.sigma_min * torch.exp(exponents * self._log_ratio)

    @property
    def T(self) -> float:
        return 1.

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sigma(t) = sigma_min (sigma_max / sigma_min)^t."""
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def _sde(self, x, t):
        diffusion = self.sigma(t) * math.sqrt(2 * self._log_ratio)
        return torch.zeros_like(x), diffusion

    def marginal_coeffs(self, t):
        return torch.ones_like(t), self.sigma(t)

    def _adjacent_sigmas(self, t, index=None):
        sigmas = self._buffer("discrete_sigmas", t)
        i = self.ladder_index(t, index)
        sigma = sigmas[i]
        prev = torch.where(i == 0, torch.zeros_like(sigma), sigmas[(i - 1).clamp(min=0)])
        return sigma, prev

    def _discretize(self, x, t, index=None):
        """SMLD chain: x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z (sigma_{-1} = 0)."""
        sigma, prev = self._adjacent_sigmas(t, index)
        return torch.zeros_like(x), torch.sqrt(sigma ** 2 - prev ** 2)

    def ancestral_step(self, x, t, score, index=None, variance=None):
        """SMLD ancestral step: mean x + (s_i^2 - s_{i-1}^2) score, std sqrt(s_{i-1}^2 (s_i^2 - s_{i-1}^2) / s_i^2)
        (the posterior, "fixed_small": the score SDE code's default) or sqrt(s_i^2 - s_{i-1}^2) ("fixed_large")."""
        variance = self._ancestral_variance(variance)
        sigma, prev = self._adjacent_sigmas(t, index)
        diff = sigma ** 2 - prev ** 2
        mean = x + batch_view(diff, x) * score
        std = torch.sqrt(prev ** 2 * diff / sigma ** 2 if variance == "fixed_small" else diff)
        return mean, std

    def discrete_marginal_coeffs(self, t, index=None):
        """(1, sigma_i) on the NCSN ladder."""
        sigma, _ = self._adjacent_sigmas(t, index)
        return torch.ones_like(sigma), sigma

    def model_label(self, t, continuous=True):
        """VE networks are conditioned on the noise level sigma(t) (continuous), or on the ladder index
        round((T - t)/T (N - 1)) with 0 = sigma_max (discrete: the NCSN / NCSNv2 / score_sde order, in
        which index i has noise level sigma_max (sigma_min/sigma_max)^(i/(N-1)) = discrete_sigmas[N-1-i])."""
        if continuous:
            return self.sigma(t)
        return torch.round((self.T - t) * ((self.N - 1) / self.T))

    def log_snr(self, t):
        return -torch.log(self.sigma(t))

    def t_from_log_snr(self, lam):
        return (-lam - math.log(self.sigma_min)) / self._log_ratio

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, N={self.N})"
