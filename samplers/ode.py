"""Probability-flow ODE dx/dt = f(x, t) - g(t)^2 score(x, t) / 2: sampling, encoding and decoding.

Solved with ``torchdiffeq.odeint`` on the tensors' own device and dtype (no numpy round trips); each
ODE function call makes exactly one score evaluation, and the NFE is counted. Adaptive methods get
their starting step from a probe inside the interval and are told to land exactly on the end time
(``step_t``), so the score is never queried outside [eps, T].
"""
from __future__ import annotations

from typing import Callable

import torch
from torchdiffeq import odeint

from sde_lib.base import SDE
from sde_lib.checks import (FiniteNormWatch, NonFiniteStateError, check_choice, check_generator, check_positive,
                            check_shape, check_tensor, raise_if_non_finite)
from .pc import CountedScore, check_eps, check_score_fn, initial_state
from .predictors import ReverseDiffusionPredictor

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]

#: user-facing method name -> torchdiffeq method
ODE_METHODS: dict[str, str] = {"rk45": "dopri5", "dopri5": "dopri5", "bosh3": "bosh3",
                               "adaptive_heun": "adaptive_heun", "euler": "euler", "heun": "heun2",
                               "midpoint": "midpoint", "rk4": "rk4"}
#: torchdiffeq methods with error control (the others run ``steps`` equal steps)
ADAPTIVE_METHODS = frozenset({"dopri5", "bosh3", "adaptive_heun"})


def probability_flow_fn(sde: SDE, score_fn: ScoreFn, batch: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The ODE right-hand side ``fn(t, x)`` (t a 0-d tensor): one score evaluation per call."""
    rsde = sde.reverse(score_fn, probability_flow=True)

    def fn(t: Tensor, x: Tensor) -> Tensor:
        return rsde._sde(x, t.to(x.dtype).expand(batch))[0]
    return fn


def _rms(v: Tensor) -> float:
    return float(v.pow(2).mean().sqrt())


def _rms_norm(v: Tensor) -> Tensor:
    """torchdiffeq's default error norm for a tensor state (RMS), as a tensor."""
    return v.abs().pow(2).mean().sqrt()


def initial_step(fn, t0: float, t1: float, y0: Tensor, f0: Tensor, order: int, rtol: float,
                 atol: float) -> float:
    """Hairer, Norsett & Wanner's starting step (Solving ODEs I, II.4), as in torchdiffeq, but with the
    probe point kept inside [t0, t1] (torchdiffeq's probe can land far outside the interval, where a
    VP/sub-VP marginal is undefined). One score evaluation. Returns the step magnitude."""
    span = abs(t1 - t0)
    direction = 1. if t1 > t0 else -1.
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    t_probe = torch.tensor(t0 + direction * h0, device=y0.device, dtype=y0.dtype)
    f1 = fn(t_probe, y0 + (direction * h0) * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1. / order)
    return min(100 * h0, h1, span)


#: order of the adaptive methods (for the starting step)
_ORDERS = {"dopri5": 5, "bosh3": 3, "adaptive_heun": 2}


def solve_probability_flow(sde: SDE, score_fn: ScoreFn, x: Tensor, t0: float, t1: float,
                           method: str = "rk45", rtol: float = 1e-5, atol: float = 1e-5,
                           steps: int = 100) -> tuple[Tensor, int]:
    """Integrate the probability-flow ODE from t0 to t1 starting at x. Returns (x(t1), NFE)."""
    counted = CountedScore(score_fn)
    fn = probability_flow_fn(sde, counted, x.shape[0])
    solver = ODE_METHODS[method]
    ts = torch.tensor([t0, t1], device=x.device, dtype=x.dtype)
    with torch.no_grad():
        if solver in ADAPTIVE_METHODS:
            f0 = fn(ts[0], x)
            h = initial_step(fn, t0, t1, x, f0, _ORDERS[solver], rtol, atol)
            first_call = [True]

            def rhs(t, y):  # the solver's first call is f(t0, x): reuse f0 (no extra score call)
                if first_call[0] and y is x and float(t) == float(ts[0]):
                    first_call[0] = False
                    return f0
                first_call[0] = False
                return fn(t, y)
            watch = FiniteNormWatch(_rms_norm)           # torchdiffeq's default norm, watched for NaN/inf
            options = {"step_t": ts[1:], "first_step": h, "norm": watch}
        else:
            rhs, watch = fn, None
            options = {"grid_constructor": lambda f, y0, t: torch.linspace(
                float(t[0]), float(t[-1]), steps + 1, device=t.device, dtype=t.dtype)}
        try:
            try:
                out = odeint(rhs, x, ts, rtol=rtol, atol=atol, method=solver, options=options)
            except AssertionError as err:
                raise_if_non_finite(err, watch)
                raise
        except NonFiniteStateError as err:
            raise NonFiniteStateError(f"score_fn returned non-finite values (NaN or inf) during the "
                                      f"probability-flow ODE solve from t={t0:g} to t={t1:g}: {err}") from err
    return out[-1], counted.nfe


def _check_solver_args(method, rtol, atol, steps, eps, T) -> float:
    check_choice("method", method, ODE_METHODS)
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    check_positive("steps", steps, integer=True)
    return check_eps(eps, T)


def ode_sample(sde: SDE, score_fn: ScoreFn, shape, method: str = "rk45", rtol: float = 1e-5,
               atol: float = 1e-5, eps: float = 1e-3, z: Tensor | None = None, denoise: bool = False,
               generator: torch.Generator | None = None, device="cpu", dtype: torch.dtype = torch.float32,
               steps: int = 100) -> tuple[Tensor, int]:
    """Sample by solving the probability-flow ODE from T (x_T = z, or a prior draw) down to eps.

    ``method``: rk45 (= dopri5), dopri5, bosh3, adaptive_heun (adaptive, rtol/atol) or euler, heun,
    midpoint, rk4 (``steps`` equal steps). ``denoise`` adds one reverse-diffusion mean step at eps
    (x + G_0^2 score - f_0 at ladder index 0; one more NFE). Returns (samples, NFE). A score whose first
    evaluation is misshapen or non-finite, or an adaptive solve that meets NaN/inf, raises ValueError
    naming score_fn.
    """
    check_score_fn(score_fn)
    shape = check_shape("shape", shape)
    eps = _check_solver_args(method, rtol, atol, steps, eps, sde.T)
    check_generator("generator", generator)
    x = initial_state("z", sde, shape, z, generator, device, dtype)
    x, nfe = solve_probability_flow(sde, score_fn, x, sde.T, eps, method, rtol, atol, steps)
    if denoise:
        counted = CountedScore(score_fn)
        pred = ReverseDiffusionPredictor(sde, counted, probability_flow=False)
        with torch.no_grad():
            # the chain's last level (ladder index 0), whatever floor(eps (N - 1) / T) says
            x, _ = pred.mean(x, torch.full((x.shape[0],), eps, device=x.device, dtype=x.dtype), index=0)
        nfe += counted.nfe
    return x, nfe


def encode(sde: SDE, score_fn: ScoreFn, x: Tensor, rtol: float = 1e-5, atol: float = 1e-5,
           eps: float = 1e-3, method: str = "rk45", steps: int = 100,
           return_nfe: bool = False) -> Tensor | tuple[Tensor, int]:
    """Data -> latent: solve the probability-flow ODE from eps to T starting at ``x``."""
    check_score_fn(score_fn)
    check_tensor("x", x)
    eps = _check_solver_args(method, rtol, atol, steps, eps, sde.T)
    z, nfe = solve_probability_flow(sde, score_fn, x, eps, sde.T, method, rtol, atol, steps)
    return (z, nfe) if return_nfe else z


def decode(sde: SDE, score_fn: ScoreFn, z: Tensor, rtol: float = 1e-5, atol: float = 1e-5,
           eps: float = 1e-3, method: str = "rk45", steps: int = 100,
           return_nfe: bool = False) -> Tensor | tuple[Tensor, int]:
    """Latent -> data: solve the probability-flow ODE from T to eps starting at ``z``."""
    check_score_fn(score_fn)
    check_tensor("z", z)
    eps = _check_solver_args(method, rtol, atol, steps, eps, sde.T)
    x, nfe = solve_probability_flow(sde, score_fn, z, sde.T, eps, method, rtol, atol, steps)
    return (x, nfe) if return_nfe else x
