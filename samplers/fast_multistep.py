"""Multistep probability-flow ODE solvers that spend one score evaluation per step: iPNDM, UniPC, DEIS.

All of them work in the VE-equivalent variable y = x / m(t), sigma = s(t) / m(t) (``fast_common``),
where the probability-flow ODE is dy/dsigma = eps(y, sigma) = (y - D(y, sigma)) / sigma, and on a grid
from ``samplers.grids``. ``steps`` = NFE. By default (``denoise=False``) the ``steps`` evaluations sit at
``steps`` + 1 levels sigma_0 = sigma(T) > ... > sigma_steps = sigma(eps) (the last one is not evaluated)
and the sample is x = m(eps) y(sigma(eps)); ``denoise=True`` uses ``steps`` levels and spends the last
evaluation on the denoising step y_0 = D(y, sigma(eps)). The order at step i is
min(order, i + 1) (warm start from the evaluations made so far) and, with ``lower_order_final``,
at most the number of steps left (``None``: on when steps < 10).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from sde_lib.checks import check_choice, check_positive
from .fast_common import VEView, finish, register_solver, start
from .fast_ode import _phi_data
from .grids import sigma_grid

Tensor = torch.Tensor

#: Adams-Bashforth coefficients for equal steps (newest value first), orders 1-4
AB_FIXED = ((1.,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def lagrange_integrals(nodes: list[float], a: float, b: float) -> list[float]:
    """w_j = int_a^b l_j(u) du for the Lagrange basis polynomials l_j on ``nodes`` (exact)."""
    c = nodes[0]
    scale = max([abs(n - c) for n in nodes] + [abs(b - a)]) or 1.
    u = [(n - c) / scale for n in nodes]
    ua, ub = (a - c) / scale, (b - c) / scale
    out = []
    for j in range(len(u)):
        poly = np.poly1d([1.])
        for l in range(len(u)):
            if l != j:
                poly = poly * np.poly1d([1., -u[l]]) / (u[j] - u[l])
        P = poly.integ()
        out.append(float(P(ub) - P(ua)) * scale)
    return out


def _check_common(order: int, max_order: int, denoise, lower_order_final) -> None:
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= max_order:
        raise ValueError(f"order must be an int in [1, {max_order}], got {order!r}")
    if not isinstance(denoise, bool):
        raise ValueError(f"denoise must be a bool, got {denoise!r}")
    if lower_order_final is not None and not isinstance(lower_order_final, bool):
        raise ValueError(f"lower_order_final must be a bool or None, got {lower_order_final!r}")


def _levels(view: VEView, steps: int, grid, eps, sigma_min, sigma_max, rho, denoise: bool):
    sigmas = sigma_grid(view, steps if denoise else steps + 1, grid, eps, sigma_min, sigma_max, rho)
    return sigmas, len(sigmas) - 1


def _order_at(i: int, n_hist: int, order: int, last: int, lower_order_final: bool) -> int:
    k = min(order, n_hist)
    return min(k, last - i) if lower_order_final else k


# ----------------------------------------------------------------------------- iPNDM
@register_solver("ipndm")
def ipndm(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, order: int = 4,
          coefficients: str = "fixed", grid: str = "edm", rho: float = 7., eps: float = 1e-3,
          sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool = False,
          lower_order_final: bool | None = False) -> Tensor:
    """Improved PNDM (Zhang & Chen 2022; Zhou et al. 2024): Adams-Bashforth in the EDM variable sigma.

    With d_j = (y_j - D(y_j, sigma_j)) / sigma_j (the slope dy/dsigma) and k = the current order:

        y_{i+1} = y_i + (sigma_{i+1} - sigma_i) sum_{j<k} b^k_j d_{i-j},

    ``coefficients="fixed"`` (iPNDM as published): the equal-step Adams-Bashforth weights
    b^1 = (1), b^2 = (3, -1)/2, b^3 = (23, -16, 5)/12, b^4 = (55, -59, 37, -9)/24, which on the
    power-law grid (``grid="edm"``, rho = 7) are exact to order k in the grid variable's smooth
    spacing only up to second order; ``"variable"``: the variable-step weights
    int_{sigma_i}^{sigma_{i+1}} l_j(sigma) dsigma of the Lagrange polynomial through the last k
    (sigma_j, d_j) (exactly order k on any grid). Orders 1, 2, 3, 4, 4, ... (``order`` <= 4).
    """
    _check_common(order, 4, denoise, lower_order_final)
    check_choice("coefficients", coefficients, ("fixed", "variable"))
    view = VEView(sde, score_fn, z)
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise)
    lof = steps < 10 if lower_order_final is None else lower_order_final
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []
    for i in tqdm(range(steps), desc="ipndm", disable=not progress):
        D = view.denoise(y, points[i])
        if i == last:
            y = D
            break
        hist = (hist + [(sigmas[i], (y - D) / sigmas[i])])[-order:]
        k = _order_at(i, len(hist), order, last, lof)
        use = hist[-k:][::-1]                                   # newest first
        h = sigmas[i + 1] - sigmas[i]
        if coefficients == "fixed":
            w = [h * b for b in AB_FIXED[k - 1]]
        else:
            w = lagrange_integrals([s for s, _ in use], sigmas[i], sigmas[i + 1])
        y = y + sum(wj * d for wj, (_, d) in zip(w, use))
    return finish(view, y, None if denoise else points[last])


# ----------------------------------------------------------------------------- UniPC
def _unipc_step(y_s: Tensor, lam_s: float, lam_t: float, D_s: Tensor, older, D_t, variant: str) -> Tensor:
    """One UniP (``D_t`` None) or UniC (``D_t`` = D at the predicted point) update in lambda, data form.

    y_t = e^{-h} y_s + (1 - e^{-h}) D_s + B(h) sum_m a_m (D_m - D_s) / r_m,  h = lam_t - lam_s,
    r_m = (lam_m - lam_s) / h over the older values (r < 0) and, for UniC, r = 1 for D_t. The a_m solve
    sum_m a_m r_m^(k-1) = B_k(h) / (B(h) h^k), k = 1..K (K differences; B_k = int_0^h e^{-(h-u)} u^k du),
    so the update is exact for D polynomial of degree K in lambda; with K = 1 UniPC takes a = 1/2.
    B(h) = h ("bh1") or 1 - e^{-h} ("bh2").
    """
    h = lam_t - lam_s
    out = math.exp(-h) * y_s + (-math.expm1(-h)) * D_s
    diffs = [((lm - lam_s) / h, Dm - D_s) for lm, Dm in older]
    if D_t is not None:
        diffs.append((1., D_t - D_s))
    K = len(diffs)
    if K == 0:
        return out
    Bh = h if variant == "bh1" else -math.expm1(-h)
    if K == 1:
        a = [0.5]
    else:
        moments = _phi_data(h, K)
        R = np.array([[r ** (k - 1) for r, _ in diffs] for k in range(1, K + 1)])
        g = np.array([moments[k] / (Bh * h ** k) for k in range(1, K + 1)])
        a = np.linalg.solve(R, g).tolist()
    return out + sum((Bh * am / r) * dm for am, (r, dm) in zip(a, diffs))


@register_solver("unipc")
def unipc(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, order: int = 3,
          variant: str = "bh2", grid: str = "time_quadratic", rho: float = 7., eps: float = 1e-3,
          sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool = False,
          lower_order_final: bool | None = True, corrector: bool = True) -> Tensor:
    """UniPC (Zhao et al. 2023), data prediction, in lambda = -log sigma (equations in ``_unipc_step``).

    Step i -> i+1: the predictor UniP of order k = min(order, i + 1) uses D_i and the k - 1 values
    before it. The evaluation D_{i+1} at the predicted point is then used twice: by the corrector UniC
    (order k + 1), which redoes step i -> i+1 with D_{i+1} added and gives the state the next step
    starts from, and as the newest value of the history (UniPC's free corrector: no extra NFE). No
    corrector after the last step (it would cost an evaluation). ``order`` in [1, 3].
    """
    _check_common(order, 3, denoise, lower_order_final)
    check_choice("variant", variant, ("bh1", "bh2"))
    if not isinstance(corrector, bool):
        raise ValueError(f"corrector must be a bool, got {corrector!r}")
    view = VEView(sde, score_fn, z)
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise)
    lof = steps < 10 if lower_order_final is None else lower_order_final
    lams = [-math.log(s) for s in sigmas]
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []       # (lambda_j, D_j), newest last
    prev = None                                  # (y_s, index s, older values used) of the last step
    for i in tqdm(range(steps), desc="unipc", disable=not progress):
        D = view.denoise(y, points[i])
        if corrector and prev is not None:
            y_s, s, older = prev
            y = _unipc_step(y_s, lams[s], lams[i], hist[-1][1], older, D, variant)
        if i == last:
            y = D
            break
        hist = (hist + [(lams[i], D)])[-order:]
        k = _order_at(i, len(hist), order, last, lof)
        older = hist[-k:-1][::-1]
        prev = (y, i, older)
        y = _unipc_step(y, lams[i], lams[i + 1], D, older, None, variant)
    return finish(view, y, None if denoise else points[last])


# ----------------------------------------------------------------------------- DEIS
_GL_U, _GL_W = np.polynomial.legendre.leggauss(24)


def _deis_weights(view: VEView, t_nodes: list[float], s_a: float, s_b: float) -> list[float]:
    """w_j = int_{s_a}^{s_b} l_j(t(sigma)) dsigma, l_j the Lagrange basis in t on ``t_nodes``;
    24-point Gauss-Legendre in log sigma (the integrand sigma l_j(t(sigma)) is smooth there)."""
    la, lb = math.log(s_a), math.log(s_b)
    u = 0.5 * (lb - la) * _GL_U + 0.5 * (lb + la)
    sig = np.exp(u)
    t = view.sde.t_from_noise_level(torch.from_numpy(sig)).numpy()
    scale = max(abs(tn - t_nodes[0]) for tn in t_nodes) or 1.
    out = []
    for j, tj in enumerate(t_nodes):
        lj = np.ones_like(t)
        for l, tl in enumerate(t_nodes):
            if l != j:
                lj = lj * ((t - tl) / scale) / ((tj - tl) / scale)
        out.append(float(0.5 * (lb - la) * np.sum(_GL_W * sig * lj)))
    return out


@register_solver("deis")
def deis(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, order: int = 3,
         variable: str = "t", grid: str = "logsnr", rho: float = 7., eps: float = 1e-3,
         sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool = False,
         lower_order_final: bool | None = True) -> Tensor:
    """DEIS (Zhang & Chen 2022) with the noise prediction extrapolated by Adams-Bashforth.

    The exponential-integrator form of the probability-flow ODE in the VE-equivalent variable is
    y(sigma_{i+1}) = y(sigma_i) + int eps(y, sigma) dsigma, eps = (y - D) / sigma. DEIS replaces eps by
    the Lagrange polynomial through the last k values eps_j:

        y_{i+1} = y_i + sum_{j<k} C_ij eps_{i-j},   C_ij = int_{sigma_i}^{sigma_{i+1}} l_j(v(sigma)) dsigma,

    with the polynomial in v = t, the SDE time (``variable="t"``: tAB-DEIS, weights by quadrature) or
    in v = sigma (``"sigma"``: rhoAB-DEIS, exact weights). Orders 1, 2, 3, 3, ... (``order`` <= 4).
    """
    _check_common(order, 4, denoise, lower_order_final)
    check_choice("variable", variable, ("t", "sigma"))
    view = VEView(sde, score_fn, z)
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise)
    lof = steps < 10 if lower_order_final is None else lower_order_final
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []        # (v_j, eps_j), newest last
    for i in tqdm(range(steps), desc="deis", disable=not progress):
        D = view.denoise(y, points[i])
        if i == last:
            y = D
            break
        v = points[i][1] if variable == "t" else sigmas[i]
        hist = (hist + [(v, (y - D) / sigmas[i])])[-order:]
        k = _order_at(i, len(hist), order, last, lof)
        use = hist[-k:]
        nodes = [vj for vj, _ in use]
        if k == 1:
            w = [sigmas[i + 1] - sigmas[i]]
        elif variable == "t":
            w = _deis_weights(view, nodes, sigmas[i], sigmas[i + 1])
        else:
            w = lagrange_integrals(nodes, sigmas[i], sigmas[i + 1])
        y = y + sum(wj * e for wj, (_, e) in zip(w, use))
    return finish(view, y, None if denoise else points[last])
