"""Multistep probability-flow ODE solvers that spend one score evaluation per step: iPNDM, UniPC, DEIS.

All of them work in the VE-equivalent variable y = x / m(t), sigma = s(t) / m(t) (``fast_common``),
where the probability-flow ODE is dy/dsigma = eps(y, sigma) = (y - D(y, sigma)) / sigma, and on a grid
from ``samplers.grids``. ``steps`` = NFE. By default (``denoise=False``) the ``steps`` evaluations sit at
``steps`` + 1 levels sigma_0 = sigma(T) > ... > sigma_steps = sigma(eps) (the last one is not evaluated)
and the sample is x = m(eps) y(sigma(eps)); ``denoise=True`` uses ``steps`` levels and spends the last
evaluation on the denoising step y_0 = D(y, sigma(eps)); ``denoise="free"`` integrates like False and
returns the solver's own estimate of D(y, sigma(eps)) from its last polynomial, without an evaluation
(the limit every solver converges to is then the converged ODE followed by the denoising step, the
score SDE sampler's output). The order at step i is
min(order, i + 1) (warm start from the evaluations made so far) and, with ``lower_order_final``,
at most the number of steps left (``None``: on when steps < 10; UniPC's "low_noise" variant keeps
order 2 to the end below the data scale, its one-difference update there staying bounded over long
final steps).

Default grids (``grid=None``) are functions of sigma alone (``samplers.grids``), so that every SDE
gets the same noise levels over its range: "vp_time" with ``power`` = 1.5 (UniPC), 3 (iPNDM), 2 (DEIS
on VP / sub-VP); DEIS keeps "logsnr" on drift-free (VE) SDEs.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from sde_lib.checks import check_choice, check_positive
from .fast_common import VEView, finish, is_drift_free, register_solver, start
from .fast_ode import _phi_data
from .grids import sigma_grid

Tensor = torch.Tensor

#: Adams-Bashforth coefficients for equal steps (newest value first), orders 1-4
AB_FIXED = ((1.,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))
#: Adams-Moulton coefficients for equal steps (the new point first), orders 2-5
AM_FIXED = {2: (1 / 2, 1 / 2), 3: (5 / 12, 8 / 12, -1 / 12), 4: (9 / 24, 19 / 24, -5 / 24, 1 / 24),
            5: (251 / 720, 646 / 720, -264 / 720, 106 / 720, -19 / 720)}


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


def lagrange_at(nodes: list[float], u: float) -> list[float]:
    """l_j(u) for the Lagrange basis polynomials l_j on ``nodes`` (the interpolant's weights at u)."""
    out = []
    for j, nj in enumerate(nodes):
        w = 1.
        for l, nl in enumerate(nodes):
            if l != j:
                w *= (u - nl) / (nj - nl)
        out.append(w)
    return out


def _check_common(order: int, max_order: int, denoise, lower_order_final) -> None:  # noqa: D401
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= max_order:
        raise ValueError(f"order must be an int in [1, {max_order}], got {order!r}")
    if denoise not in (False, True, "free"):
        raise ValueError(f"denoise must be False, True or 'free', got {denoise!r}")
    if lower_order_final is not None and not isinstance(lower_order_final, bool):
        raise ValueError(f"lower_order_final must be a bool or None, got {lower_order_final!r}")


def default_grid(sde, grid, drift_free_grid: str, other_grid: str) -> str:
    """``grid`` if given, else the solver's default for this SDE: one grid for drift-free SDEs (VE),
    one for the others (VP, sub-VP), as measured by benchmarks/fewstep.py."""
    if grid is not None:
        return grid
    return drift_free_grid if is_drift_free(sde) else other_grid


def _levels(view: VEView, steps: int, grid, eps, sigma_min, sigma_max, rho, denoise, power: float = 2.):
    sigmas = sigma_grid(view, steps if denoise is True else steps + 1, grid, eps, sigma_min, sigma_max, rho,
                        power)
    return sigmas, len(sigmas) - 1


def _end(view: VEView, y: Tensor, points, last: int, denoise, D_free: Tensor | None) -> Tensor:
    """The sample: D (denoise=True, y already = D), the free estimate D_free ("free") or x = m y."""
    if denoise is True:
        return finish(view, y)
    if denoise == "free":
        return finish(view, D_free)
    return finish(view, y, points[last])


def long_final_step(sigmas: list[float], factor: float = 1.5) -> bool:
    """Whether the last step is long in log sigma: log(sigma_{n-1} / sigma_n) > ``factor`` times the
    mean log-step (time and vp_time grids, EDM grids). Extrapolating a high-order polynomial over such a
    step is unstable, so ``lower_order_final=None`` lowers the final orders exactly then."""
    if len(sigmas) < 3:
        return True
    mean = math.log(sigmas[0] / sigmas[-1]) / (len(sigmas) - 1)
    return math.log(sigmas[-2] / sigmas[-1]) > factor * mean


def _order_at(i: int, n_hist: int, order: int, last: int, lower_order_final: bool, floor: int = 1) -> int:
    """min(order, n_hist) and, with ``lower_order_final``, at most max(``floor``, steps left)."""
    k = min(order, n_hist)
    return min(k, max(floor, last - i)) if lower_order_final else k


# ----------------------------------------------------------------------------- iPNDM
@register_solver("ipndm")
def ipndm(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, order: int = 4,
          coefficients: str = "fixed", grid: str | None = None, rho: float = 7., eps: float = 1e-3,
          sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool | str = False,
          lower_order_final: bool | None = False, corrector: bool = False, power: float = 3.) -> Tensor:
    """Improved PNDM (Zhang & Chen 2022; Zhou et al. 2024): Adams-Bashforth in the EDM variable sigma.

    With d_j = (y_j - D(y_j, sigma_j)) / sigma_j (the slope dy/dsigma) and k = the current order:

        y_{i+1} = y_i + (sigma_{i+1} - sigma_i) sum_{j<k} b^k_j d_{i-j},

    ``coefficients="fixed"`` (iPNDM as published): the equal-step Adams-Bashforth weights
    b^1 = (1), b^2 = (3, -1)/2, b^3 = (23, -16, 5)/12, b^4 = (55, -59, 37, -9)/24, which on the
    power-law grid (``grid="edm"``, rho = 7) are exact to order k in the grid variable's smooth
    spacing only up to second order; ``"variable"``: the variable-step weights
    int_{sigma_i}^{sigma_{i+1}} l_j(sigma) dsigma of the Lagrange polynomial through the last k
    (sigma_j, d_j) (exactly order k on any grid). Orders 1, 2, 3, 4, 4, ... (``order`` <= 4).
    ``corrector=True`` adds the Adams-Moulton corrector in PEC mode (as UniPC does): the slope
    d_{i+1} evaluated at the predicted point redoes step i -> i+1 with the k + 1 slopes
    (d_{i+1}, d_i, ...) (fixed: b = (1, 1)/2, (5, 8, -1)/12, (9, 19, -5, 1)/24, (251, 646, -264, 106,
    -19)/720; variable: the Lagrange integrals), and d_{i+1} is kept: no extra evaluation.
    Default grid (``grid=None``): "vp_time" with ``power=3`` for every SDE (the published EDM power
    law is ``grid="edm"``, ``rho=7``).
    """
    _check_common(order, 4, denoise, lower_order_final)
    check_choice("coefficients", coefficients, ("fixed", "variable"))
    _check_bool("corrector", corrector)
    view = VEView(sde, score_fn, z)
    grid = default_grid(sde, grid, "vp_time", "vp_time")
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise, power)
    lof = steps < 10 if lower_order_final is None else lower_order_final
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []
    use: list = []
    prev = None
    for i in tqdm(range(steps), desc="ipndm", disable=not progress):
        D = view.denoise(y, points[i])
        if i == last:
            y = D
            break
        d = (y - D) / sigmas[i]
        if corrector and prev is not None:
            y_s, s_s, used = prev
            nodes = [(sigmas[i], d)] + used
            if coefficients == "fixed":
                w = [(sigmas[i] - s_s) * b for b in AM_FIXED[len(nodes)]]
            else:
                w = lagrange_integrals([sj for sj, _ in nodes], s_s, sigmas[i])
            y = y_s + sum(wj * dj for wj, (_, dj) in zip(w, nodes))
        hist = (hist + [(sigmas[i], d)])[-order:]
        k = _order_at(i, len(hist), order, last, lof)
        use = hist[-k:][::-1]                                   # newest first
        h = sigmas[i + 1] - sigmas[i]
        if coefficients == "fixed":
            w = [h * b for b in AB_FIXED[k - 1]]
        else:
            w = lagrange_integrals([s for s, _ in use], sigmas[i], sigmas[i + 1])
        prev = (y, sigmas[i], use)
        y = y + sum(wj * dj for wj, (_, dj) in zip(w, use))
    D_free = None
    if denoise == "free":          # D = y - sigma d with the slope polynomial extrapolated to sigma_min
        lw = lagrange_at([s for s, _ in use], sigmas[last])
        D_free = y - sigmas[last] * sum(wj * dj for wj, (_, dj) in zip(lw, use))
    return _end(view, y, points, last, denoise, D_free)


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


# ----------------------------------------------------------------------------- UniPC
def low_noise_k1(h: float, r: float) -> float:
    """w = int_0^h e^{-(h-u)} (e^{-2u} - 1) du / (e^{-2 r h} - 1) = -(1 - e^{-h})^2 / (e^{-2 r h} - 1): the
    weight of D_m - D_s that makes the one-difference update exact for D(lambda) = a + b e^{-2 lambda}
    = a + b sigma^2, the low-noise expansion D(y, sigma) = y + sigma^2 grad log p(y) + O(sigma^4) of any
    smooth data density. Corrector (r = 1): tanh(h / 2); predictor (r < 0): bounded by
    (1 - e^{-h})^2 / (e^{2|r|h} - 1), which vanishes over long steps (a damped extrapolation)."""
    return -(-math.expm1(-h)) ** 2 / math.expm1(-2. * r * h)


def _unipc_step(y_s: Tensor, lam_s: float, lam_t: float, D_s: Tensor, older, D_t, variant: str,
                sigma_data: float = 1.) -> Tensor:
    """One UniP (``D_t`` None) or UniC (``D_t`` = D at the predicted point) update in lambda, data form.

    y_t = e^{-h} y_s + (1 - e^{-h}) D_s + B(h) sum_m a_m (D_m - D_s) / r_m,  h = lam_t - lam_s,
    r_m = (lam_m - lam_s) / h over the older values (r < 0) and, for UniC, r = 1 for D_t. The a_m solve
    sum_m a_m r_m^(k-1) = B_k(h) / (B(h) h^k), k = 1..K (K differences; B_k = int_0^h e^{-(h-u)} u^k du),
    so the update is exact for D polynomial of degree K in lambda. With K = 1 UniPC takes a = 1/2 and
    B(h) = h ("bh1") or 1 - e^{-h} ("bh2"); ``"exact"`` solves the K = 1 condition too (exact for D
    linear in lambda); ``"low_noise"`` is "bh1" above the data scale (sigma_s > ``sigma_data``) and
    below it takes the K = 1 weight ``low_noise_k1``, exact for D = a + b sigma^2 (the universal
    low-noise behaviour of the denoiser, where a polynomial in lambda is the wrong model and its
    extrapolation unstable over the long last steps of a few-step grid).
    """
    h = lam_t - lam_s
    out = math.exp(-h) * y_s + (-math.expm1(-h)) * D_s
    diffs = [((lm - lam_s) / h, Dm - D_s) for lm, Dm in older]
    if D_t is not None:
        diffs.append((1., D_t - D_s))
    K = len(diffs)
    if K == 0:
        return out
    if K == 1 and variant == "low_noise" and math.exp(-lam_s) <= sigma_data:
        return out + low_noise_k1(h, diffs[0][0]) * diffs[0][1]
    Bh = -math.expm1(-h) if variant == "bh2" else h
    if K == 1 and variant in ("bh1", "bh2", "low_noise"):
        a = [0.5]
    else:
        moments = _phi_data(h, K)
        R = np.array([[r ** (k - 1) for r, _ in diffs] for k in range(1, K + 1)])
        g = np.array([moments[k] / (Bh * h ** k) for k in range(1, K + 1)])
        a = np.linalg.solve(R, g).tolist()
    return out + sum((Bh * am / r) * dm for am, (r, dm) in zip(a, diffs))


@register_solver("unipc")
def unipc(sde, score_fn, z: Tensor, steps: int, generator=None, progress: bool = False, order: int = 3,
          variant: str = "low_noise", grid: str | None = None, rho: float = 7., eps: float = 1e-3,
          sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool | str | None = False,
          lower_order_final: bool | None = True, corrector: bool = True, power: float = 1.5,
          sigma_data: float = 1.) -> Tensor:
    """UniPC (Zhao et al. 2023), data prediction, in lambda = -log sigma (equations in ``_unipc_step``).

    Step i -> i+1: the predictor UniP of order k = min(order, i + 1) uses D_i and the k - 1 values
    before it. The evaluation D_{i+1} at the predicted point is then used twice: by the corrector UniC
    (order k + 1), which redoes step i -> i+1 with D_{i+1} added and gives the state the next step
    starts from, and as the newest value of the history (UniPC's free corrector: no extra NFE). No
    corrector after the last step (it would cost an evaluation). ``order`` in [1, 4] (orders 1, 2, 3,
    3, ... by default and, with ``lower_order_final``, at most the number of steps left: down to 1
    for bh1 / bh2 / exact, whose one-difference extrapolation in lambda is unstable over the long last
    steps of a few-step grid, and for ``variant="low_noise"`` (default) down to 2 below the data
    scale ``sigma_data`` (1: data of unit scale, the VP convention), where its one-difference weight
    is the damped sigma^2 extrapolation of ``low_noise_k1``, and to 1 above it). Default grid
    (``grid=None``): "vp_time" with ``power=1.5`` for every SDE (power = (p + 1) / 2 for the order
    p = 2 that a few-step run's warm-started, lowered schedule 1, 2, 3, ..., 2 averages; see
    ``grids.vp_time_sigmas``). ``denoise`` (default False; None means False).
    """
    denoise = False if denoise is None else denoise
    _check_common(order, 4, denoise, lower_order_final)
    check_choice("variant", variant, ("bh1", "bh2", "exact", "low_noise"))
    _check_bool("corrector", corrector)
    check_positive("sigma_data", sigma_data)
    view = VEView(sde, score_fn, z)
    grid = default_grid(sde, grid, "vp_time", "vp_time")
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise, power)
    lof = steps < 10 if lower_order_final is None else lower_order_final
    lams = [-math.log(s) for s in sigmas]
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []       # (lambda_j, D_j), newest last
    prev = None                                  # (y_s, index s, older values used) of the last step
    for i in tqdm(range(steps), desc="unipc", disable=not progress):
        D = view.denoise(y, points[i])
        if corrector and prev is not None:
            y_s, s, older = prev
            y = _unipc_step(y_s, lams[s], lams[i], hist[-1][1], older, D, variant, sigma_data)
        if i == last:
            y = D
            break
        hist = (hist + [(lams[i], D)])[-order:]
        floor = 2 if variant == "low_noise" and sigmas[i] <= sigma_data else 1
        k = _order_at(i, len(hist), order, last, lof, floor)
        older = hist[-k:-1][::-1]
        prev = (y, i, older)
        y = _unipc_step(y, lams[i], lams[i + 1], D, older, None, variant, sigma_data)
    D_free = None
    if denoise == "free":          # the data-prediction polynomial of the last step, at lambda_min
        nodes = [lams[prev[1]]] + [lm for lm, _ in prev[2]]
        vals = [hist[-1][1]] + [Dm for _, Dm in prev[2]]
        D_free = sum(wj * v for wj, v in zip(lagrange_at(nodes, lams[last]), vals))
    return _end(view, y, points, last, denoise, D_free)


# ----------------------------------------------------------------------------- DEIS
_GL_U, _GL_W = np.polynomial.legendre.leggauss(24)      # 24-point Gauss-Legendre nodes / weights on [-1, 1]


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
         variable: str = "t", grid: str | None = None, rho: float = 7., eps: float = 1e-3,
         sigma_min: float | None = None, sigma_max: float | None = None, denoise: bool | str = False,
         lower_order_final: bool | None = None, corrector: bool = False, power: float = 2.) -> Tensor:
    """DEIS (Zhang & Chen 2022) with the noise prediction extrapolated by Adams-Bashforth.

    The exponential-integrator form of the probability-flow ODE in the VE-equivalent variable is
    y(sigma_{i+1}) = y(sigma_i) + int eps(y, sigma) dsigma, eps = (y - D) / sigma. DEIS replaces eps by
    the Lagrange polynomial through the last k values eps_j:

        y_{i+1} = y_i + sum_{j<k} C_ij eps_{i-j},   C_ij = int_{sigma_i}^{sigma_{i+1}} l_j(v(sigma)) dsigma,

    with the polynomial in v = t, the SDE time (``variable="t"``: tAB-DEIS, weights by quadrature) or
    in v = sigma (``"sigma"``: rhoAB-DEIS, exact weights). Orders 1, 2, 3, 3, ... (``order`` <= 4).
    ``corrector=True``: the Adams-Moulton corrector in PEC mode (the new eps_{i+1}, evaluated at the
    predicted point, redoes step i -> i+1 with the polynomial through k + 1 values, and is kept;
    unstable at 5-6 steps on narrow modes, hence off by default). Default grid (``grid=None``):
    uniform in log-SNR for drift-free SDEs (VE), "vp_time" with ``power=2`` otherwise (VP, sub-VP: the
    time-quadratic grid of the reference VP process, the same levels for every such SDE);
    ``lower_order_final=None``: lower the final orders only when the last step is long in log sigma
    (``long_final_step``: the vp_time and time-quadratic grids, not the log-SNR one).
    """
    _check_common(order, 4, denoise, lower_order_final)
    check_choice("variable", variable, ("t", "sigma"))
    _check_bool("corrector", corrector)
    view = VEView(sde, score_fn, z)
    grid = default_grid(sde, grid, "logsnr", "vp_time")
    sigmas, last = _levels(view, steps, grid, eps, sigma_min, sigma_max, rho, denoise, power)
    lof = long_final_step(sigmas) if lower_order_final is None else lower_order_final
    points, y = start(view, z, sigmas)
    hist: list[tuple[float, Tensor]] = []        # (v_j, eps_j), newest last
    use, nodes, prev = [], [], None
    for i in tqdm(range(steps), desc="deis", disable=not progress):
        D = view.denoise(y, points[i])
        if i == last:
            y = D
            break
        v = points[i][1] if variable == "t" else sigmas[i]
        e_new = (y - D) / sigmas[i]
        if corrector and prev is not None:
            y_s, s_s, used = prev
            cn = used + [(v, e_new)]
            cnodes = [vj for vj, _ in cn]
            w = _deis_weights(view, cnodes, s_s, sigmas[i]) if variable == "t" else \
                lagrange_integrals(cnodes, s_s, sigmas[i])
            y = y_s + sum(wj * e for wj, (_, e) in zip(w, cn))
        hist = (hist + [(v, e_new)])[-order:]
        k = _order_at(i, len(hist), order, last, lof)
        use = hist[-k:]
        nodes = [vj for vj, _ in use]
        if k == 1:
            w = [sigmas[i + 1] - sigmas[i]]
        elif variable == "t":
            w = _deis_weights(view, nodes, sigmas[i], sigmas[i + 1])
        else:
            w = lagrange_integrals(nodes, sigmas[i], sigmas[i + 1])
        prev = (y, sigmas[i], use)
        y = y + sum(wj * e for wj, (_, e) in zip(w, use))
    D_free = None
    if denoise == "free":          # D = y - sigma eps with eps extrapolated to the last level
        v_last = points[last][1] if variable == "t" else sigmas[last]
        lw = lagrange_at(nodes, v_last)
        D_free = y - sigmas[last] * sum(wj * e for wj, (_, e) in zip(lw, use))
    return _end(view, y, points, last, denoise, D_free)
