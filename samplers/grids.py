"""Noise-level grids of the few-step solvers (``GRIDS`` registry), on the VE-equivalent noise level
sigma = s(t) / m(t) of any SDE (see ``fast_common.VEView``).

``n`` levels, descending, from sigma_hi (sigma(T), or ``sigma_max``) to sigma_lo (sigma(eps), or
``sigma_min``), with i = 0 .. n-1 and r = i / (n - 1):

* ``"edm"``:            sigma_i = (a + r (b - a))^rho,  a = sigma_hi^(1/rho), b = sigma_lo^(1/rho)
                        (Karras et al. 2022; rho = 7 by default),
* ``"logsnr"``:         lambda_i = lambda_hi + r (lambda_lo - lambda_hi), lambda = -log sigma
                        (uniform in half-log-SNR, i.e. geometric in sigma),
* ``"time"``:           t_i = t_hi + r (t_lo - t_hi), sigma_i = sigma(t_i)   (uniform in SDE time),
* ``"time_quadratic"``: t_i = (sqrt(t_hi) + r (sqrt(t_lo) - sqrt(t_hi)))^2   (DPM-Solver's t_order = 2),
* ``"vp_time"``:        u_i = u_hi + r (u_lo - u_hi),  u = log(1 + sigma^2)^(1 / (2 power))
                        (schedule free: see ``vp_time_sigmas``).

"time" and "time_quadratic" place the levels by the SDE's own schedule (a sub-VP SDE reaches
sigma(eps) = 1e-4 where the VP SDE stops at 1e-2; other betas give other levels), while the
probability-flow ODE in (y, sigma) is the same for every SDE. "vp_time" is the time-power grid of
one reference process made a function of sigma alone, so every SDE gets the same levels over its
range.
"""
from __future__ import annotations

import math
from typing import Callable

from sde_lib.checks import check_choice, check_positive

__all__ = ["GRIDS", "sigma_grid", "edm_sigmas", "logsnr_sigmas", "time_sigmas", "vp_time_sigmas"]


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


def time_sigmas(view, sigma_max: float, sigma_min: float, n: int, power: float = 1.) -> list[float]:
    """Uniform grid in t^(1/power) between t(sigma_max) and t(sigma_min), mapped to noise levels."""
    if n == 1:
        return [sigma_max]
    a = view.time_of_sigma(sigma_max) ** (1. / power)
    b = view.time_of_sigma(sigma_min) ** (1. / power)
    ts = [(a + i / (n - 1) * (b - a)) ** power for i in range(n)]
    # the end points exactly (no round trip through t)
    return [sigma_max] + [view.sigma_of_t(t) for t in ts[1:-1]] + [sigma_min]


def vp_time_sigmas(sigma_max: float, sigma_min: float, n: int, power: float = 2.) -> list[float]:
    """Uniform grid in u = log(1 + sigma^2)^(1 / (2 power)): sigma_i = sqrt(exp(u_i^(2 power)) - 1).

    log(1 + sigma^2) = -log(alphabar) is the integrated beta of a variance-preserving process; for the
    linear VP schedule with beta_min = 0 it is beta_max t^2 / 2, so this is the grid uniform in
    t^(1 / power) of that reference process (``power`` 1: time-uniform, 2: time-quadratic), written in
    sigma alone. Near sigma = 0 it is the power law u ~ sigma^(1 / power) (EDM's grid with rho = power:
    at low noise D(y, sigma) - D(y, 0) ~ sigma^2, and equidistributing the local error h^(p+1) sigma^2
    of an order-p step in lambda = -log sigma gives the level density sigma^(2 / (p+1)), i.e. power =
    (p + 1) / 2); above sigma ~ 1 (unit-scale data) the levels thin out only logarithmically in sigma.
    """
    if n == 1:
        return [sigma_max]
    check_positive("power", power)
    a = math.log1p(sigma_max ** 2) ** (0.5 / power)
    b = math.log1p(sigma_min ** 2) ** (0.5 / power)
    mid = [math.sqrt(math.expm1((a + i / (n - 1) * (b - a)) ** (2. * power))) for i in range(1, n - 1)]
    return [sigma_max] + mid + [sigma_min]


#: grid name -> (view, sigma_hi, sigma_lo, n, rho, power) -> n noise levels, descending
GRIDS: dict[str, Callable[..., list[float]]] = {
    "edm": lambda view, hi, lo, n, rho, power: edm_sigmas(hi, lo, n, rho),
    "logsnr": lambda view, hi, lo, n, rho, power: logsnr_sigmas(hi, lo, n),
    "time": lambda view, hi, lo, n, rho, power: time_sigmas(view, hi, lo, n, 1.),
    "time_quadratic": lambda view, hi, lo, n, rho, power: time_sigmas(view, hi, lo, n, 2.),
    "vp_time": lambda view, hi, lo, n, rho, power: vp_time_sigmas(hi, lo, n, power),
}


def sigma_grid(view, n: int, kind: str, eps: float, sigma_min=None, sigma_max=None, rho: float = 7.,
               power: float = 2.) -> list[float]:
    """``n`` noise levels from sigma(T) down to sigma(eps) (or ``sigma_min``) on the grid ``kind``
    (``rho``: the "edm" power, ``power``: the "vp_time" power).

    With ``sigma_max`` below sigma(T) the first level stays at sigma(T) (where the starting points
    live) and the grid proper spans [sigma_min, sigma_max] with the remaining n - 1 levels (EDM's
    sigma_max cap).
    """
    from .fast_common import check_eps

    check_eps(eps, view.sde.T)
    check_choice("grid", kind, GRIDS)
    check_positive("rho", rho)
    check_positive("power", power)
    s_T = view.sigma_of_t(view.sde.T)
    smin = view.sigma_of_t(eps) if sigma_min is None else float(sigma_min)
    if not 0 < smin < s_T:
        raise ValueError(f"sigma_min must lie in (0, sigma(T) = {s_T:.4g}), got {sigma_min!r}")
    head, smax, m = [], s_T, n
    if sigma_max is not None:
        if not smin < float(sigma_max) <= s_T:
            raise ValueError(f"sigma_max must lie in (sigma_min = {smin:.4g}, sigma(T) = {s_T:.4g}], "
                             f"got {sigma_max!r}")
        if float(sigma_max) < s_T and n > 1:
            head, smax, m = [s_T], float(sigma_max), n - 1
    return head + GRIDS[kind](view, smax, smin, m, rho, power)
