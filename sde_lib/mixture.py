"""Gaussian mixtures: data whose perturbed marginals, log-densities and scores are closed-form.

Data: p_0(x) = sum_k w_k N(x; mu_k, s_k^2 I) in any data shape. Under an SDE with kernel
N(m(t) x_0, std(t)^2 I) the marginal stays a mixture:
    p_t(x) = sum_k w_k N(x; m(t) mu_k, (m(t)^2 s_k^2 + std(t)^2) I),
    grad log p_t(x) = sum_k r_k(x) (m(t) mu_k - x) / (m(t)^2 s_k^2 + std(t)^2),
with responsibilities r_k(x) = w_k N_k(x) / p_t(x). Used as an exact score for tests, benchmarks and
as the closed-form model in ``main.py --mode compare``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .base import SDE
from .checks import check_tensor, randn

Tensor = torch.Tensor


class GaussianMixture:
    """Isotropic Gaussian mixture with ``weights`` [K], ``means`` [K, *data_shape], ``stds`` [K]."""

    def __init__(self, weights: Sequence[float] | Tensor, means: Sequence | Tensor,
                 stds: Sequence[float] | Tensor, dtype: torch.dtype = torch.float64):
        self.weights = torch.as_tensor(weights, dtype=dtype)
        self.means = torch.as_tensor(means, dtype=dtype)
        self.stds = torch.as_tensor(stds, dtype=dtype)
        K = self.weights.shape[0]
        if self.weights.dim() != 1 or K == 0 or bool((self.weights <= 0).any()):
            raise ValueError(f"weights must be a non-empty 1-D sequence of positive numbers, got {weights!r}")
        if abs(float(self.weights.sum()) - 1.) > 1e-6:
            raise ValueError(f"weights must sum to 1, got sum {float(self.weights.sum())}")
        if self.means.dim() < 2 or self.means.shape[0] != K:
            raise ValueError(f"means must have shape [K={K}, *data_shape], got {tuple(self.means.shape)}")
        if self.stds.shape != (K,) or bool((self.stds <= 0).any()):
            raise ValueError(f"stds must be {K} positive numbers, got {stds!r}")
        self.data_shape = tuple(self.means.shape[1:])
        self.dim = int(self.means[0].numel())

    # ---------------------------------------------------------------- sampling
    def sample(self, n: int, generator: torch.Generator | None = None, device="cpu",
               dtype: torch.dtype = torch.float32, return_labels: bool = False):
        """n exact samples [n, *data_shape] (and their component labels when ``return_labels``)."""
        gdev = generator.device if generator is not None else torch.device(device)
        labels = torch.multinomial(self.weights.to(gdev), n, replacement=True, generator=generator)
        labels = labels.to(device)
        noise = randn((n, *self.data_shape), generator=generator, device=device, dtype=dtype)
        mu = self.means.to(device, dtype)[labels]
        s = self.stds.to(device, dtype)[labels].reshape(n, *([1] * len(self.data_shape)))
        x = mu + s * noise
        return (x, labels) if return_labels else x

    # ---------------------------------------------------------------- closed forms at noise (m, std)
    def _component_logpdf(self, x: Tensor, m: Tensor, std: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """log N(x; m mu_k, (m^2 s_k^2 + std^2) I) as [B, K], plus the means [B, K, D] and variances [B, K]."""
        B = x.shape[0]
        xf = x.reshape(B, 1, -1)
        mu = self.means.to(x.device, x.dtype).reshape(1, self.means.shape[0], -1) * m.reshape(B, 1, 1)
        var = m.reshape(B, 1) ** 2 * self.stds.to(x.device, x.dtype) ** 2 + std.reshape(B, 1) ** 2
        sq = (xf - mu).pow(2).sum(-1)
        logpdf = -0.5 * self.dim * torch.log(2 * math.pi * var) - sq / (2 * var)
        return logpdf, mu, var

    def _log_prob_ms(self, x: Tensor, m: Tensor, std: Tensor) -> Tensor:
        logpdf, _, _ = self._component_logpdf(x, m, std)
        return torch.logsumexp(logpdf + torch.log(self.weights.to(x.device, x.dtype)), dim=1)

    def _score_ms(self, x: Tensor, m: Tensor, std: Tensor) -> Tensor:
        logpdf, mu, var = self._component_logpdf(x, m, std)
        logw = logpdf + torch.log(self.weights.to(x.device, x.dtype))
        r = torch.softmax(logw, dim=1)                                  # [B, K]
        B = x.shape[0]
        xf = x.reshape(B, 1, -1)
        s = ((r / var).unsqueeze(-1) * (mu - xf)).sum(1)                # [B, D]
        return s.reshape(x.shape)

    def _coeffs(self, x: Tensor, t: Tensor | None, sde: SDE | None):
        B = x.shape[0]
        if t is None:
            one = torch.ones(B, device=x.device, dtype=x.dtype)
            return one, torch.zeros_like(one)
        if sde is None:
            raise ValueError("sde must be given together with t")
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(B) if not torch.is_tensor(t) or t.dim() == 0 \
            else t.to(x.device, x.dtype)
        m, s = sde.marginal_coeffs(t)
        return m, s

    # ---------------------------------------------------------------- public closed forms
    def log_prob(self, x: Tensor, t: Tensor | None = None, sde: SDE | None = None) -> Tensor:
        """log p_t(x) [batch] under ``sde`` (the data density when ``t`` is None)."""
        m, s = self._coeffs(x, t, sde)
        return self._log_prob_ms(x, m, s)

    def score(self, x: Tensor, t: Tensor | None = None, sde: SDE | None = None) -> Tensor:
        """grad_x log p_t(x), shaped like x."""
        m, s = self._coeffs(x, t, sde)
        return self._score_ms(x, m, s)

    def log_prob_sigma(self, x: Tensor, sigma: Tensor) -> Tensor:
        """log q_sigma(x) of the data convolved with N(0, sigma^2 I) (NCSN noise levels)."""
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).expand(x.shape[0])
        return self._log_prob_ms(x, torch.ones_like(sigma), sigma)

    def score_sigma(self, x: Tensor, sigma: Tensor) -> Tensor:
        """grad log q_sigma(x) (NCSN noise-conditional score)."""
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).expand(x.shape[0])
        return self._score_ms(x, torch.ones_like(sigma), sigma)

    def score_fn(self, sde: SDE, scale: float = 1.) -> Callable[[Tensor, Tensor], Tensor]:
        """Exact score function ``score_fn(x, t)`` for ``sde`` (times ``scale``: use e.g. 0.5 for a wrong score)."""
        def fn(x: Tensor, t: Tensor) -> Tensor:
            m, s = sde.marginal_coeffs(t.to(x.dtype))
            out = self._score_ms(x, m, s)
            return out * scale if scale != 1. else out
        return fn

    def sigma_score_fn(self, scale: float = 1.) -> Callable[[Tensor, Tensor], Tensor]:
        """Exact noise-conditional score ``score_fn(x, sigma)`` for annealed Langevin dynamics."""
        def fn(x: Tensor, sigma: Tensor) -> Tensor:
            out = self.score_sigma(x, sigma)
            return out * scale if scale != 1. else out
        return fn

    def component_index(self, x: Tensor) -> Tensor:
        """Most likely component of each sample under the data mixture (the mode it belongs to)."""
        check_tensor("x", x)
        B = x.shape[0]
        one = torch.ones(B, device=x.device, dtype=x.dtype)
        logpdf, _, _ = self._component_logpdf(x, one, torch.zeros_like(one))
        return torch.argmax(logpdf + torch.log(self.weights.to(x.device, x.dtype)), dim=1)

    def mode_weights(self, x: Tensor) -> Tensor:
        """Fraction of samples assigned to each component ([K])."""
        idx = self.component_index(x)
        return torch.bincount(idx, minlength=self.weights.shape[0]).to(torch.float64) / x.shape[0]

    def __repr__(self) -> str:
        return (f"GaussianMixture(K={self.weights.shape[0]}, data_shape={self.data_shape}, "
                f"weights={self.weights.tolist()})")


def two_mode_mixture(dtype: torch.dtype = torch.float64) -> GaussianMixture:
    """The 2-D 0.2/0.8 mixture used across tests and benchmarks; mean zero so the prior matches p_T.

    Small (narrow) mode: weight 0.2 at (-2.4, -2.4) with std 0.25; large mode: 0.8 at (0.6, 0.6), std 0.5.
    """
    return GaussianMixture([0.2, 0.8], [[-2.4, -2.4], [0.6, 0.6]], [0.25, 0.5], dtype=dtype)
