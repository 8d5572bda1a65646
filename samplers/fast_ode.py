"""Few-step deterministic solvers of the probability-flow ODE in the VE-equivalent variable.

All of them work on y = x / m(t) with noise level sigma = s(t) / m(t) (see ``fast_common``), so one
implementation serves VE, VP and sub-VP. Heun (and the exponential integrators with ``denoise=True``)
end with the denoising step y_0 = D(y, sigma_min) (the limit of every update below as sigma_next -> 0).

* ``heun``: EDM's 2nd-order Heun on the power-law grid (rho = 7), ``steps`` grid intervals,
  NFE = 2 steps - 1 (the last interval, down to sigma = 0, is a single Euler/denoising step).
  With ``sigma_data`` = c it steps the same ODE in the angle form (u = y / sqrt(c^2 + sigma^2),
  phi = arctan(sigma / c)), which is exact for N(0, c^2) data and much less prone to over-spreading
  narrow modes at few steps.
* ``dpm_solver_2`` / ``dpm_solver_3``: *multistep* exponential integrators (DPM-Solver++(2M)/(3M) by
  default, data prediction) in lambda = -log sigma on a grid uniform in lambda, ``steps`` = NFE.
  By default every evaluation goes into the integration: ``steps`` intervals from sigma(T) down to
  sigma(eps) and the sample returned is y(sigma(eps)) (DPM-Solver's default; no final denoising
  evaluation); ``denoise=True`` spends the last NFE on y_0 = D(y, sigma(eps)) instead. The exact solution

      y(lambda_t) = e^{-h} y_s + int_0^h e^{-(h-u)} D(lambda_s + u) du,      h = lambda_t - lambda_s,

  is integrated with D replaced by the Lagrange polynomial through the last k denoiser values
  (k = order, lower at the start and, with ``lower_order_final``, at the end); the moments of the
  polynomial against e^{-(h-u)} are exact. The noise-prediction form (``prediction="noise"``,
  DPM-Solver) integrates y_t = y_s - sigma_s int_0^h e^{-u} eps(lambda_s + u) du with
  eps = (y - D) / sigma interpolated the same way.
* ``ddim``: the first-order member (y_t = (sigma_t/sigma_s) y_s + (1 - sigma_t/sigma_s) D_s).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from sde_lib.checks import check_choice, check_positive
from .fast_common import VEView, finish, register_solver, start
from .grids import sigma_grid

Tensor = torch.Tensor


@register_solver("heun")
def heun(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, rho: float = 7.,
         eps: float = 1e-3, sigma_min: float | None = None, sigma_max: float | None = None,
         sigma_data: float | None = None, grid: str = "edm") -> Tensor:
    """EDM deterministic Heun (Algorithm 1 of Karras et al. 2022), NFE = 2 ``steps`` - 1.

    Grid: ``steps`` levels sigma_0 = sigma(T) > ... > sigma_{steps-1} = sigma(eps) on the power law
    with ``rho`` (see ``_sigma_grid``), then sigma = 0. Each interval but the last: Euler predictor
    and trapezoidal corrector; the last interval (to sigma = 0) is the denoising step y = D(y, sigma_min).

    ``sigma_data`` = None: the EDM ODE dy/dsigma = (y - D) / sigma, stepped in sigma.
    ``sigma_data`` = c: the same ODE in the variance-normalised state u = y / sqrt(c^2 + sigma^2) and the
    angle phi = arctan(sigma / c) (the v-prediction / TrigFlow form), stepped in phi:

        du/dphi = (c u - D sqrt(c^2 + sigma^2) / c) / sigma,

    which is exactly stationary for N(mu = 0, c^2 I) data; c -> infinity recovers the EDM form.
    """
    view = VEView(sde, score_fn, z)
    sigmas = sigma_grid(view, steps, grid, eps, sigma_min, sigma_max, rho)
    points, y = start(view, z, sigmas)
    if sigma_data is not None:
        check_positive("sigma_data", sigma_data)
        return finish(view, _heun_angle(view, y, sigmas, points, float(sigma_data), progress))
    for i in tqdm(range(steps), desc="heun", disable=not progress):
        s_cur = sigmas[i]
        D = view.denoise(y, points[i])
        if i == steps - 1:            # the Euler step to sigma = 0 is the denoising step y = D
            y = D
            break
        s_next = sigmas[i + 1]
        d = (y - D) / s_cur
        y_pred = y + (s_next - s_cur) * d
        d_next = (y_pred - view.denoise(y_pred, points[i + 1])) / s_next
        y = y + (s_next - s_cur) * (0.5 * d + 0.5 * d_next)
    return finish(view, y)


def _heun_angle(view: VEView, y: Tensor, sigmas: list[float], points, c: float, progress: bool) -> Tensor:
    """Heun in (u, phi), u = y / r, r = sqrt(c^2 + sigma^2), phi = arctan(sigma / c); ends with y = D."""

    def radius(s):
        return math.sqrt(c * c + s * s)

    def slope(u, i):
        s = sigmas[i]
        r = radius(s)
        return (c * u - view.denoise(u * r, points[i]) * (r / c)) / s

    u = y / radius(sigmas[0])
    n = len(sigmas)
    for i in tqdm(range(n), desc="heun", disable=not progress):
        if i == n - 1:
            return view.denoise(u * radius(sigmas[i]), points[i])
        dphi = math.atan(sigmas[i + 1] / c) - math.atan(sigmas[i] / c)
        d = slope(u, i)
        u_pred = u + dphi * d
        u = u + dphi * (0.5 * d + 0.5 * slope(u_pred, i + 1))
    return u  # not reached


# ----------------------------------------------------------------------------- exponential integrators
def _phi_data(h: float, n_max: int) -> list[float]:
    """B_n(h) = int_0^h e^{-(h-u)} u^n du, n <= n_max: B_0 = 1 - e^{-h}, B_n = h^n - n B_{n-1}."""
    out = [-math.expm1(-h)]
    for n in range(1, n_max + 1):
        out.append(h ** n - n * out[-1])
    return out


def _phi_noise(h: float, n_max: int) -> list[float]:
    """A_n(h) = int_0^h e^{-u} u^n du, n <= n_max: A_0 = 1 - e^{-h}, A_n = n A_{n-1} - h^n e^{-h}."""
    out = [-math.expm1(-h)]
    for n in range(1, n_max + 1):
        out.append(n * out[-1] - h ** n * math.exp(-h))
    return out


def _interp_weights(nodes: list[float], moments: list[float]) -> list[float]:
    """Weights w_j with sum_j w_j f(u_j) = sum_n c_n moments[n] for the interpolating polynomial
    sum_n c_n u^n of f through ``nodes`` (Lagrange basis expanded in monomials)."""
    k = len(nodes)
    weights = []
    for j in range(k):
        poly = np.poly1d([1.])
        for l in range(k):
            if l != j:
                poly = poly * np.poly1d([1., -nodes[l]]) / (nodes[j] - nodes[l])
        coeffs = poly.coeffs[::-1]  # c_0, c_1, ...
        weights.append(float(sum(c * moments[n] for n, c in enumerate(coeffs))))
    return weights


def _ei_update(y: Tensor, sigma: float, lam: float, lam_next: float, hist, prediction: str) -> Tensor:
    """Exponential-integrator step from (lam, y) to lam_next with the polynomial through ``hist``
    [(lambda_j, value_j)] (data: D values; noise: eps values)."""
    h = lam_next - lam
    nodes = [lj - lam for lj, _ in hist]
    k = len(hist)
    if prediction == "data":
        w = _interp_weights(nodes, _phi_data(h, k - 1))
        return math.exp(-h) * y + sum(wj * v for wj, (_, v) in zip(w, hist))
    w = _interp_weights(nodes, _phi_noise(h, k - 1))
    return y - sigma * sum(wj * v for wj, (_, v) in zip(w, hist))


def dpm_multistep(sde, score_fn, z: Tensor, steps: int, order: int, generator=None, progress: bool = False,
                  prediction: str = "data", grid: str = "logsnr", lower_order_final: bool | None = None,
                  eps: float = 1e-3, sigma_min: float | None = None, sigma_max: float | None = None,
                  rho: float = 7., denoise: bool = False) -> Tensor:
    """Multistep exponential integrator of order ``order`` (``steps`` = NFE), see the module docstring.

    Grid: noise levels from sigma(T) to sigma(eps) (or ``sigma_min``) (``grid`` = "logsnr": uniform
    in lambda; "edm": power law with ``rho``; "time": uniform in t): ``steps`` + 1 levels and
    ``steps`` steps, returning y(sigma_min) (``denoise=False``, default), or ``steps`` levels,
    ``steps`` - 1 steps and the denoising step y_0 = D(y, sigma_min) (``denoise=True``).
    Order schedule: step i -> i+1 uses the last min(order, i+1) model values (order 1, 2, 3, 3, ...),
    and at most n-1-i of them with ``lower_order_final`` (n = number of levels; first order into
    the last level, as in DPM-Solver++; default: on when steps < 10).
    """
    check_choice("prediction", prediction, ("data", "noise"))
    if not isinstance(denoise, bool):
        raise ValueError(f"denoise must be a bool, got {denoise!r}")
    view = VEView(sde, score_fn, z)
    if lower_order_final is None:
        lower_order_final = steps < 10
    n_levels = steps if denoise else steps + 1
    last = n_levels - 1
    sigmas = sigma_grid(view, n_levels, grid, eps, sigma_min, sigma_max, rho)
    lams = [-math.log(s) for s in sigmas]
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []  # (lambda_j, model value), newest last
    for i in tqdm(range(steps), desc=f"dpm_solver_{order}", disable=not progress):
        D = view.denoise(y, points[i])
        if i == last:                  # denoise=True: limit of the update as sigma_next -> 0
            y = D
            break
        value = D if prediction == "data" else (y - D) / sigmas[i]
        hist = (hist + [(lams[i], value)])[-order:]
        k = min(order, len(hist))
        if lower_order_final:
            k = min(k, last - i)
        y = _ei_update(y, sigmas[i], lams[i], lams[i + 1], hist[-k:], prediction)
    # denoise=True ended with y = D (sigma = 0); otherwise the state is y(sigma_min): x = m(t_min) y
    return finish(view, y, None if denoise else points[last])


@register_solver("ddim")
def ddim(sde, score_fn, z, steps, generator=None, progress=False, **kwargs) -> Tensor:
    """First-order exponential integrator (DDIM): y_t = (sigma_t / sigma_s) y_s + (1 - sigma_t / sigma_s) D_s."""
    return dpm_multistep(sde, score_fn, z, steps, 1, generator, progress, **kwargs)


ddim.forwards_to = dpm_multistep


@register_solver("dpm_solver_2")
def dpm_solver_2(sde, score_fn, z, steps, generator=None, progress=False, **kwargs) -> Tensor:
    """DPM-Solver++(2M): multistep, second order, data prediction, grid uniform in lambda, ``steps`` steps
    ending at sigma(eps) without a denoising evaluation (all by default); NFE = ``steps``."""
    return dpm_multistep(sde, score_fn, z, steps, 2, generator, progress, **kwargs)


dpm_solver_2.forwards_to = dpm_multistep


@register_solver("dpm_solver_3")
def dpm_solver_3(sde, score_fn, z, steps, generator=None, progress=False, **kwargs) -> Tensor:
    """DPM-Solver++(3M): multistep, third order (orders 1, 2, 3, 3, ...), data prediction, grid uniform
    in lambda, ``steps`` steps ending at sigma(eps) without a denoising evaluation (all by default); NFE = ``steps``."""
    return dpm_multistep(sde, score_fn, z, steps, 3, generator, progress, **kwargs)


dpm_solver_3.forwards_to = dpm_multistep
