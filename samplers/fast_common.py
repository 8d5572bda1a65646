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


def start(view: VEView, z: Tensor, sigmas: list[float]):
    """Grid points (sigma, t, m) with the first pinned to t = T, and the starting y = z / m(T)."""
    T = view.sde.T
    points = [(sigmas[0], T, view.mean_coeff(T))] + [view.point(s) for s in sigmas[1:]]
    return points, z / points[0][2]


def finish(view: VEView, y: Tensor, point: tuple[float, float, float] | None = None) -> Tensor:
    """Back to the data variable: x = m(t) y at the last grid point ``point`` = (sigma, t, m) when the
    solver stops at sigma > 0, or x = m(0) y after a step to sigma = 0 (``point`` None; m(0) = 1 for
    VE/VP/sub-VP)."""
    m = view.mean_coeff(0.) if point is None else point[2]
    return y * m if m != 1. else y


def is_drift_free(sde: SDE) -> bool:
    """Whether the forward SDE has no drift (f = 0: VE), asked of the SDE itself at t = T / 2."""
    x = torch.ones(1, 1, dtype=torch.float64)
    return bool(sde._sde(x, torch.full((1,), 0.5 * float(sde.T), dtype=torch.float64))[0].eq(0).all())


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
