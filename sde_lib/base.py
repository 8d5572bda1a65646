"""Abstract forward SDE ``dx = f(x, t) dt + g(t) dw`` and its time reversal.

Subclasses carry *all* SDE-specific math; samplers, losses and likelihood only ask the SDE object.
A subclass implements:

* ``T`` (end time), ``prior_std`` (std of the Gaussian prior N(0, prior_std^2 I)),
* ``_sde(x, t)`` -> drift f(x, t), diffusion g(t) [batch],
* ``marginal_coeffs(t)`` -> (m(t), s(t)) with p_0t(x_t | x_0) = N(m(t) x_0, s(t)^2 I),
* optionally ``_discretize`` (default: Euler-Maruyama of the forward SDE with dt = T/N),
  ``ancestral_step`` (default: Gaussian posterior of the chain through the exact marginals),
  ``corrector_alpha`` and the half-log-SNR pair ``log_snr`` / ``t_from_log_snr``.

The discrete-chain methods (``_discretize``, ``ancestral_step``, ``corrector_alpha``,
``discrete_marginal_coeffs``) take an optional ``index``: the ladder index of the step when the caller
knows it (``pc_sample`` does), else derived from t by ``timestep_index`` (``ladder_index``).

Public methods validate their inputs and raise ``ValueError`` naming the argument; the underscored
methods are the unchecked fast paths used inside solvers (which may step slightly past ``T``).
"""
from __future__ import annotations

import abc
import math
from typing import Callable

import torch

from .checks import batch_view, check_tensor, check_times, check_shape, check_generator, randn

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]


class SDE(abc.ABC):
    """Forward SDE ``dx = f(x, t) dt + g(t) dw`` on ``t`` in ``[0, T]`` with ``N`` discretization steps."""

    def __init__(self, N: int):
        if isinstance(N, bool) or not isinstance(N, int) or N < 1:
            raise ValueError(f"N must be a positive int (number of discretization steps), got {N!r}")
        self.N = N

    # ------------------------------------------------------------------ to implement
    @property
    @abc.abstractmethod
    def T(self) -> float:
        """End time of the SDE."""

    @property
    def prior_std(self) -> float:
        """Standard deviation of the isotropic Gaussian prior p_T."""
        raise NotImplementedError

    @abc.abstractmethod
    def _sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Unchecked drift f(x, t) (like x) and diffusion g(t) ([batch])."""

    @abc.abstractmethod
    def marginal_coeffs(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(m(t), s(t)), each [batch]: the perturbation kernel is N(m(t) x_0, s(t)^2 I). Unchecked."""

    # ------------------------------------------------------------------ public, checked
    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Drift f(x, t) (shaped like x) and diffusion g(t) ([batch])."""
        self._check_xt(x, t)
        return self._sde(x, t)

    def marginal_prob(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean m(t) x0 and std s(t) ([batch]) of p_0t(x_t | x_0)."""
        self._check_xt(x0, t, x_name="x0")
        m, s = self.marginal_coeffs(t)
        return batch_view(m, x0) * x0, s

    def prior_sampling(self, shape, generator: torch.Generator | None = None, device="cpu",
                       dtype: torch.dtype = torch.float32) -> Tensor:
        """Draw from the prior N(0, prior_std^2 I) with ``shape`` = [batch, *data_shape]."""
        shape = check_shape("shape", shape)
        check_generator("generator", generator)
        return randn(shape, generator=generator, device=device, dtype=dtype) * self.prior_std

    def prior_logp(self, z: Tensor) -> Tensor:
        """log N(z; 0, prior_std^2 I), summed over the data dims: [batch] (natural log)."""
        check_tensor("z", z)
        return self._prior_logp(z)

    def _prior_logp(self, z: Tensor) -> Tensor:
        D = z[0].numel()
        s2 = self.prior_std ** 2
        sq = z.reshape(z.shape[0], -1).pow(2).sum(-1)
        return -0.5 * D * math.log(2 * math.pi * s2) - sq / (2 * s2)

    def discretize(self, x: Tensor, t: Tensor, index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """One step of the discrete chain at ``t``: x_{i+1} = x_i + f_i + G_i z. Returns f_i, G_i [batch].

        ``index``: the ladder index i of the step when the caller knows it (an int or [batch] ints in
        [0, N-1]); by default it is derived from t (``timestep_index``)."""
        self._check_xt(x, t)
        self._check_index(index, t)
        return self._discretize(x, t, index=index)

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
        """The reverse-time SDE ``dx = [f - g^2 score] dt + g dw_bar`` (or the probability-flow ODE
        ``dx = [f - g^2 score / 2] dt`` when ``probability_flow``)."""
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable score_fn(x, t), got {type(score_fn).__name__}")
        return ReverseSDE(self, score_fn, probability_flow)

    # ------------------------------------------------------------------ defaults, overridable
    def _discretize(self, x: Tensor, t: Tensor, index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """Euler-Maruyama discretization with dt = T / N: f_i = f dt, G_i = g sqrt(dt) (no ladder: ``index``
        is not needed)."""
        dt = self.T / self.N
        drift, diffusion = self._sde(x, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def timestep_index(self, t: Tensor) -> Tensor:
        """Index i of the discrete ladder for time t: floor(t / T * (N - 1)), clamped to [0, N-1].

        Exact at the ladder times t_i = i T / (N - 1) (training). On the PC grid linspace(T, eps, N) it is
        off by one once eps (N - 1) / T >= 1, which is why ``pc_sample`` passes each step's index
        explicitly (``ladder_index``)."""
        i = torch.floor(t / self.T * (self.N - 1) + 1e-4).long()
        return i.clamp(0, self.N - 1)

    def ladder_index(self, t: Tensor, index: Tensor | int | None = None) -> Tensor:
        """The ladder index a discrete method uses at times t ([batch] long): ``index`` when the caller
        knows it (an int, or [batch] / [1] ints), else ``timestep_index(t)``. Unchecked."""
        if index is None:
            return self.timestep_index(t)
        if isinstance(index, int):
            return torch.full(t.shape, index, dtype=torch.long, device=t.device)
        return index.to(device=t.device, dtype=torch.long).expand(t.shape)

    def _check_index(self, index, t: Tensor, name: str = "index") -> None:
        if index is None:
            return
        if isinstance(index, bool) or not isinstance(index, (int, torch.Tensor)) or (
                isinstance(index, torch.Tensor) and (torch.is_floating_point(index) or index.dim() > 1
                                                     or index.numel() not in (1, t.shape[0]))):
            raise ValueError(f"{name} must be an int or a [batch] integer tensor of ladder indices, got {index!r}")
        lo, hi = (index, index) if isinstance(index, int) else (int(index.min()), int(index.max()))
        if lo < 0 or hi > self.N - 1:
            raise ValueError(f"{name} must lie in [0, N - 1] = [0, {self.N - 1}], got values in [{lo}, {hi}]")

    #: ancestral-sampling variances: "fixed_large" (the forward step's variance, DDPM's beta_i) or
    #: "fixed_small" (the posterior variance of q(x_{i-1} | x_i, x_0), DDPM's beta~_i)
    ANCESTRAL_VARIANCES = ("fixed_large", "fixed_small")
    #: the variance ``ancestral_step`` uses when none is asked for (the published choice per SDE)
    default_ancestral_variance = "fixed_small"

    def _ancestral_variance(self, variance: str | None, default: str | None = None) -> str:
        if variance is None:
            return default or self.default_ancestral_variance
        if variance not in self.ANCESTRAL_VARIANCES:
            raise ValueError(f"variance must be one of {list(self.ANCESTRAL_VARIANCES)} or None (the default "
                             f"{self.default_ancestral_variance!r} of {type(self).__name__}), got {variance!r}")
        return variance

    def ancestral_step(self, x: Tensor, t: Tensor, score: Tensor, index: Tensor | int | None = None,
                       variance: str | None = None) -> tuple[Tensor, Tensor]:
        """One ancestral-sampling step from t to t - T/N given the score at (x, t).

        Generic form through the exact marginals (m, s) at t and at t' = t - T/N: the forward
        transition is x_t = a x_t' + b z with a = m_t/m_t', b^2 = s_t^2 - a^2 s_t'^2; the step draws
        from q(x_t' | x_t, x0_hat), x0_hat = (x + s_t^2 score) / m_t (Tweedie). Returns
        (mean, std [batch]) with std^2 = b^2 s_t'^2 / s_t^2 ("fixed_small", the posterior, default) or
        b^2 ("fixed_large"). ``index`` is not needed (no ladder).
        """
        variance = self._ancestral_variance(variance, SDE.default_ancestral_variance)   # the generic form's own
        t_prev = (t - self.T / self.N).clamp(min=0)
        m, s = self.marginal_coeffs(t)
        m_p, s_p = self.marginal_coeffs(t_prev)
        a = m / m_p
        b2 = (s ** 2 - a ** 2 * s_p ** 2).clamp(min=0)
        x0_hat = (x + batch_view(s ** 2, x) * score) / batch_view(m, x)
        coef_x = a * s_p ** 2 / s ** 2
        coef_0 = m_p * b2 / s ** 2
        mean = batch_view(coef_x, x) * x + batch_view(coef_0, x) * x0_hat
        std = torch.sqrt(b2 * s_p ** 2 / s ** 2 if variance == "fixed_small" else b2)
        return mean, std

    def corrector_alpha(self, t: Tensor, index: Tensor | int | None = None) -> Tensor:
        """Scale of the Langevin corrector step at t ([batch]); 1 unless the discrete chain says otherwise
        (``index``: the ladder index when the caller knows it)."""
        return torch.ones_like(t)

    def log_snr(self, t: Tensor) -> Tensor:
        """Half log signal-to-noise ratio lambda(t) = log(m(t) / s(t)) ([batch])."""
        m, s = self.marginal_coeffs(t)
        return torch.log(m) - torch.log(s)

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """Inverse of ``log_snr``."""
        raise NotImplementedError(f"{type(self).__name__} does not provide the inverse of log_snr")

    def noise_level(self, t: Tensor) -> Tensor:
        """sigma(t) = s(t) / m(t): the std of the equivalent variance-exploding noise ([batch])."""
        m, s = self.marginal_coeffs(t)
        return s / m

    def t_from_noise_level(self, sigma: Tensor) -> Tensor:
        """Inverse of ``noise_level``: the time at which s(t)/m(t) = sigma."""
        return self.t_from_log_snr(-torch.log(sigma))

    # ------------------------------------------------------------------ score-model conventions
    #: what a score network outputs for this SDE: "score" (VE) or "noise" (VP, sub-VP: eps-prediction)
    score_parameterization: str = "noise"

    def discrete_marginal_coeffs(self, t: Tensor, index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """(m_i, s_i) of the discrete chain at the ladder index of t, or at ``index`` (default: the
        continuous marginal)."""
        return self.marginal_coeffs(t)

    def model_label_scale(self, continuous: bool = True) -> float:
        """Time labels per unit time: a network is fed ``model_label_scale(continuous) * t``.
        Default (N - 1) / T (DDPM: the ladder position)."""
        return (self.N - 1) / self.T

    def model_label(self, t: Tensor, continuous: bool = True) -> Tensor:
        """The conditioning input a score network receives at time t ([batch], float).

        Default: the time label ``model_label_scale(continuous) * t``, unrounded as in the original
        score_sde code (a discrete DDPM network sees (N - 1) t; at ladder times that is the index).
        """
        return t * self.model_label_scale(continuous)

    def model_output_to_score(self, out: Tensor, t: Tensor, continuous: bool = True) -> Tensor:
        """Turn a network output into a score: ``out`` itself when the parameterization is "score",
        ``-out / s(t)`` for a noise prediction (s_i of the discrete chain when not ``continuous``)."""
        if self.score_parameterization == "score":
            return out
        _, std = self.marginal_coeffs(t) if continuous else self.discrete_marginal_coeffs(t)
        return -out / batch_view(std, out)

    # ------------------------------------------------------------------ helpers
    def _check_xt(self, x: Tensor, t: Tensor, x_name: str = "x", t_name: str = "t") -> None:
        check_tensor(x_name, x)
        check_times(t_name, t, x.shape[0], self.T)

    def _buffer(self, name: str, like: Tensor) -> Tensor:
        """A stored float64 ladder cast to ``like``'s device and dtype (cached per device/dtype)."""
        key = (name, like.device, like.dtype)
        cache = self.__dict__.setdefault("_buffer_cache", {})
        if key not in cache:
            cache[key] = getattr(self, name).to(device=like.device, dtype=like.dtype)
        return cache[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.N})"


class ReverseSDE(SDE):
    """Reverse-time SDE of ``forward`` driven by ``score_fn``; integrated from T down to eps.

    ``sde(x, t)`` gives (f - g^2 score * (1/2 if probability_flow else 1), 0 if probability_flow else g);
    ``discretize(x, t)`` gives the reverse-diffusion discretization (f_i - G_i^2 score (x1/2), G_i or 0).
    """

    def __init__(self, forward: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        super().__init__(forward.N)
        self.forward = forward
        self.score_fn = score_fn
        self.probability_flow = bool(probability_flow)

    @property
    def T(self) -> float:
        return self.forward.T

    @property
    def prior_std(self) -> float:
        return self.forward.prior_std

    def marginal_coeffs(self, t):
        raise NotImplementedError("the reverse SDE has no closed-form perturbation kernel")

    def _sde(self, x, t):
        drift, diffusion = self.forward._sde(x, t)
        return self._apply_score(x, t, drift, diffusion)

    def _discretize(self, x, t, index=None):
        f, G = self.forward._discretize(x, t, index=index)
        return self._apply_score(x, t, f, G)

    def _apply_score(self, x, t, drift, diffusion):
        score = self.score_fn(x, t)
        w = 0.5 if self.probability_flow else 1.0
        rev_drift = drift - batch_view(diffusion ** 2, x) * score * w
        rev_diffusion = torch.zeros_like(diffusion) if self.probability_flow else diffusion
        return rev_drift, rev_diffusion

    def __repr__(self) -> str:
        return f"ReverseSDE({self.forward!r}, probability_flow={self.probability_flow})"
