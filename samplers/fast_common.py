"""Shared pieces of the fast samplers: the solver registry, the NFE counter and the
variance-exploding (VE-equivalent) view of any SDE.

VE-equivalent variable: an SDE with perturbation kernel N(m(t) x0, s(t)^2 I) becomes, in
y = x / m(t) and sigma = s(t) / m(t), the pure noising y = x0 + sigma n. Its probability-flow ODE is
schedule free (EDM, Karras et al. 2022):

    dy/dsigma = (y - D(y, sigma)) / sigma,      D(y, sigma) = y + sigma^2 m score_x(m y, t(sigma))

where D is the Tweedie denoiser E[x0 | x_t] = (x + s^2 score) / m. In the half-log-SNR variable
lambda = -log sigma the same ODE reads dy/dlambda = D - y, which the exponential integrators use.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from sde_lib.base import SDE
from .pc import CountedScore  # noqa: F401  (re-exported for the fast solvers)

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]

#: name -> solver(sde, score_fn, z, steps, generator=None, progress=False, **kwargs) -> samples
SOLVERS: dict[str, Callable[..., Tensor]] = {}


def register_solver(*names: str):
    """Decorator adding a solver function to ``SOLVERS`` under each of ``names``."""
    def wrap(fn):
        for name in names:
            if name in SOLVERS:
                raise KeyError(f"solver {name!r} registered twice")
            SOLVERS[name] = fn
        return fn
    return wrap


class VEView:
    """The SDE seen as y = x / m, sigma = s / m: a denoiser D(y, sigma) on a scalar noise level.

    Grid quantities (sigma, t, m) are computed in float64 on the CPU from the SDE's closed forms
    (``noise_level``, ``t_from_noise_level``, ``marginal_coeffs``) and used as Python scalars.
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn, like: Tensor):
        self.sde = sde
        self.score_fn = score_fn
        self.B = like.shape[0]
        self.device = like.device
        self.dtype = like.dtype

    def sigma_of_t(self, t: float) -> float:
        return float(self.sde.noise_level(torch.tensor([t], dtype=torch.float64))[0])

    def time_of_sigma(self, sigma: float) -> float:
        return float(self.sde.t_from_noise_level(torch.tensor([sigma], dtype=torch.float64))[0])

    def mean_coeff(self, t: float) -> float:
        return float(self.sde.marginal_coeffs(torch.tensor([t], dtype=torch.float64))[0][0])

    def point(self, sigma: float, t: float | None = None) -> tuple[float, float, float]:
        """(sigma, t, m) of one grid point; ``t`` defaults to t(sigma)."""
        t = self.time_of_sigma(sigma) if t is None else t
        return sigma, t, self.mean_coeff(t)

    def denoise(self, y: Tensor, point: tuple[float, float, float]) -> Tensor:
        """D(y, sigma) = y + sigma^2 m score(m y, t): one score evaluation."""
        sigma, t, m = point
        tb = torch.full((y.shape[0],), t, device=y.device, dtype=y.dtype)
        score = self.score_fn(y * m, tb)
        return y + (sigma * sigma * m) * score


def edm_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = 7.) -> list[float]:
    """EDM power-law grid: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho, i < n."""
    if n == 1:
        return [sigma_max]
    a, b = sigma_max ** (1. / rho), sigma_min ** (1. / rho)
    return [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)]


def logsnr_sigmas(sigma_max: float, sigma_min: float, n: int) -> list[float]:
    """Uniform grid in lambda = -log sigma (geometric in sigma)."""
    if n == 1:
        return [sigma_max]
    la, lb = math.log(sigma_max), math.log(sigma_min)
    return [math.exp(la + i / (n - 1) * (lb - la)) for i in range(n)]


def time_uniform_sigmas(view: VEView, t_max: float, t_min: float, n: int) -> list[float]:
    """Uniform grid in t mapped to noise levels."""
    if n == 1:
        return [view.sigma_of_t(t_max)]
    return [view.sigma_of_t(t_max + i / (n - 1) * (t_min - t_max)) for i in range(n)]


def check_eps(eps, T: float) -> float:
    """``eps`` (the smallest time the solvers reach) must be a number in (0, T)."""
    ok = isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < float(eps) < T
    if not ok:
        raise ValueError(f"eps must be a number in (0, T = {T}), got {eps!r}")
    return float(eps)


def tweedie_denoise(sde: SDE, score_fn: ScoreFn, x: Tensor, t: float) -> Tensor:
    """Final denoising step x0 = (x + s(t)^2 score(x, t)) / m(t) (one score evaluation)."""
    tb = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    m, s = sde.marginal_coeffs(torch.tensor([t], dtype=torch.float64))
    m, s = float(m[0]), float(s[0])
    return (x + (s * s) * score_fn(x, tb)) / m
