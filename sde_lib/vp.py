"""Variance-preserving (DDPM limit) and sub-variance-preserving SDEs with a linear beta schedule.

beta(t) = beta_min + t (beta_max - beta_min),  lmc(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2
(the log of the mean coefficient m(t) = exp(lmc)).

VP:     dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw;               p_0t = N(m x_0, (1 - m^2) I)
sub-VP: dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - m^4)) dw;      p_0t = N(m x_0, (1 - m^2)^2 I)
Both have prior N(0, I).
"""
from __future__ import annotations

import torch

from .base import SDE
from .checks import batch_view, check_positive


class _LinearBetaSDE(SDE):
    """Shared linear-beta schedule and the DDPM ladder beta_i = beta_min/N + i (beta_max - beta_min)/(N (N-1))."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20., N: int = 1000):
        super().__init__(N)
        check_positive("beta_min", beta_min)
        check_positive("beta_max", beta_max)
        if beta_max < beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_0 = float(beta_min)
        self.beta_1 = float(beta_max)
        # The continuous SDE is valid for every N; the DDPM ladder only when every beta_i < 1 (N > beta_max).
        # Its steps (VPSDE's discrete methods) check ``_check_chain``; nothing else depends on it.
        self.discrete_betas = torch.linspace(self.beta_0 / N, self.beta_1 / N, N, dtype=torch.float64)
        self.alphas = 1. - self.discrete_betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self._max_discrete_beta = float(self.discrete_betas.max())

    @property
    def T(self) -> float:
        return 1.

    @property
    def prior_std(self) -> float:
        return 1.

    #: labels per unit time of continuous-time networks: the score_sde networks see 999 t whatever N is
    continuous_label_scale = 999.

    def model_label_scale(self, continuous=True):
        """999 (continuous, the score_sde convention) or N - 1 (a discrete DDPM network sees (N-1) t)."""
        return self.continuous_label_scale / self.T if continuous else (self.N - 1) / self.T

    def beta(self, t):
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self.beta_0 + t * (self.beta_1 - self.beta_0)

    def log_mean_coeff(self, t):
        """lmc(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2."""
        return -0.25 * t ** 2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def _t_from_lmc(self, lmc):
        """Positive root of (b1-b0)/4 t^2 + b0/2 t + lmc = 0, in the cancellation-free form."""
        a4 = self.beta_1 - self.beta_0  # = 4a
        b = 0.5 * self.beta_0
        return 2 * (-lmc) / (b + torch.sqrt(b * b + a4 * (-lmc)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_0}, beta_max={self.beta_1}, N={self.N})"


class VPSDE(_LinearBetaSDE):
    def _sde(self, x, t):
        beta_t = self.beta(t)
        return -0.5 * batch_view(beta_t, x) * x, torch.sqrt(beta_t)

    def marginal_coeffs(self, t):
        lmc = self.log_mean_coeff(t)
        return torch.exp(lmc), torch.sqrt(-torch.expm1(2. * lmc))

    #: DDPM / score SDE code default: sigma_i^2 = beta_i
    default_ancestral_variance = "fixed_large"

    @property
    def posterior_variances(self) -> torch.Tensor:
        """beta~_i = beta_i (1 - alphabar_{i-1}) / (1 - alphabar_i), alphabar_{-1} = 1 (so beta~_0 = 0)."""
        if "_posterior_variances" not in self.__dict__:
            prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
            self._posterior_variances = self.discrete_betas * (1. - prev) / (1. - self.alphas_cumprod)
        return self._posterior_variances

    def _check_chain(self, what: str) -> None:
        """The DDPM chain needs every beta_i < 1; a Python-side test (no host sync)."""
        if self._max_discrete_beta >= 1.:
            raise ValueError(f"N={self.N} is too small for {what}: the DDPM chain needs every beta_i < 1, but "
                             f"beta_max / N = {self._max_discrete_beta:.4g} (use N > beta_max = {self.beta_1:g}); "
                             f"the continuous SDE is fine with N={self.N}: use the euler_maruyama predictor with "
                             f"corrector 'none' or 'ald', or the probability-flow ODE")

    def _discretize(self, x, t, index=None):
        """DDPM chain: x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z, i.e. f = sqrt(1-beta_i) x - x."""
        self._check_chain("the DDPM chain step (reverse_diffusion, discretize)")
        i = self.ladder_index(t, index)
        beta = self._buffer("discrete_betas", t)[i]
        alpha = self._buffer("alphas", t)[i]
        return batch_view(torch.sqrt(alpha), x) * x - x, torch.sqrt(beta)

    def ancestral_step(self, x, t, score, index=None, variance=None):
        """DDPM ancestral step: mean (x + beta_i score) / sqrt(1 - beta_i) (the posterior mean given the
        Tweedie x0), std sqrt(beta_i) ("fixed_large", default) or sqrt(beta~_i) ("fixed_small", the
        posterior variance beta_i (1 - alphabar_{i-1}) / (1 - alphabar_i); 0 at i = 0)."""
        variance = self._ancestral_variance(variance)
        self._check_chain("DDPM ancestral sampling")
        i = self.ladder_index(t, index)
        beta = self._buffer("discrete_betas", t)[i]
        mean = (x + batch_view(beta, x) * score) / batch_view(torch.sqrt(1. - beta), x)
        var = beta if variance == "fixed_large" else self._buffer("posterior_variances", t)[i]
        return mean, torch.sqrt(var)

    def discrete_marginal_coeffs(self, t, index=None):
        """(sqrt(alphabar_i), sqrt(1 - alphabar_i)) of the DDPM chain."""
        self._check_chain("the DDPM chain's marginals (discrete training, continuous=False)")
        abar = self._buffer("alphas_cumprod", t)[self.ladder_index(t, index)]
        return torch.sqrt(abar), torch.sqrt(1. - abar)

    def corrector_alpha(self, t, index=None):
        """alpha_i = 1 - beta_i of the DDPM chain (the score SDE code's langevin corrector scale)."""
        self._check_chain("the langevin corrector's scale alpha_i = 1 - beta_i")
        return self._buffer("alphas", t)[self.ladder_index(t, index)]

    def log_snr(self, t):
        lmc = self.log_mean_coeff(t)
        return lmc - 0.5 * torch.log(-torch.expm1(2. * lmc))

    def t_from_log_snr(self, lam):
        # e^{2 lmc} = 1 / (1 + e^{-2 lam})
        lmc = -0.5 * torch.nn.functional.softplus(-2. * lam)
        return self._t_from_lmc(lmc)


class subVPSDE(_LinearBetaSDE):
    def model_label_scale(self, continuous=True):
        """sub-VP has no discrete chain: its networks always see the continuous label 999 t."""
        return self.continuous_label_scale / self.T

    def _sde(self, x, t):
        beta_t = self.beta(t)
        discount = -torch.expm1(4. * self.log_mean_coeff(t))  # 1 - exp(-2 b0 t - (b1 - b0) t^2)
        return -0.5 * batch_view(beta_t, x) * x, torch.sqrt(beta_t * discount)

    def marginal_coeffs(self, t):
        lmc = self.log_mean_coeff(t)
        return torch.exp(lmc), -torch.expm1(2. * lmc)

    def log_snr(self, t):
        lmc = self.log_mean_coeff(t)
        return lmc - torch.log(-torch.expm1(2. * lmc))

    def t_from_log_snr(self, lam):
        # u = m(t) solves e^lam (1 - u^2) = u  ->  u = 2 e^lam / (1 + sqrt(1 + 4 e^{2 lam}))
        lmc = torch.log(torch.tensor(2., dtype=lam.dtype, device=lam.device)) + lam \
            - torch.log1p(torch.sqrt(1. + 4. * torch.exp(2. * lam)))
        return self._t_from_lmc(lmc)
