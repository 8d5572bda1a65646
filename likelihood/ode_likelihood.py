"""Exact log-likelihood through the probability-flow ODE (instantaneous change of variables).

With the probability-flow drift  f~(x, t) = f(x, t) - g(t)^2 score(x, t) / 2, the ODE dx/dt = f~ maps
data x(eps) = x to a latent z = x(T), and along the trajectory d log p_t(x(t)) / dt = -div f~(x(t), t), so

    log p_eps(x) = log p_T(z) + int_eps^T div f~(x(t), t) dt,

with p_T replaced by the prior. The state [x, delta] (delta = the running integral) is integrated
jointly from eps to T (by default with the lean Dormand-Prince of ``likelihood.dopri``; every other
method through ``torchdiffeq.odeint``). Each right-hand-side call evaluates the score once
under autograd and takes the divergence by vector-Jacobian products of that same graph.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torchdiffeq import odeint

from sde_lib.checks import (FiniteNormWatch, NonFiniteStateError, check_choice, check_generator, check_positive,
                            check_tensor, raise_if_non_finite)
from .divergence import DIVERGENCES, PROBES, check_score_graph
from .dopri import dormand_prince

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]


class FlowWithDivergence:
    """Right-hand side of the joint ODE on a flat state y = [x.flatten(), delta] ([B*D + B]).

    Returns [f~(x, t).flatten(), div f~(x, t)]; counts its calls in ``nfe`` (one score call each).
    No validation and no host synchronisation happen here (adaptive solvers may step past T), except at
    the first call: the score's output is checked once (``divergence.check_score_graph``: shaped like x,
    finite, and differentiable w.r.t. x, else ValueError naming score_fn).
    """

    def __init__(self, sde, score_fn: ScoreFn, x_shape: tuple[int, ...], divergence, probes: Tensor | None,
                 variable: str = "t"):
        self.sde = sde
        self.variable = variable
        self.score_fn = score_fn
        self.x_shape = x_shape
        self.B = x_shape[0]
        self.n = math.prod(x_shape)
        self.bshape = (self.B,) + (1,) * (len(x_shape) - 1)
        self.divergence = divergence
        self.probes = probes
        self.nfe = 0

    def time_map(self, v: float) -> tuple[float, float]:
        """(t, dt/dv) for the integration variable v = sigma or log sigma (sigma = s(t) / m(t)).

        For a kernel N(m x0, s^2 I) (affine drift f = a(t) x) d(sigma^2)/dt = g(t)^2 / m(t)^2, so
        dt/dsigma = 2 sigma m^2 / g^2 (and dt/dlog sigma = sigma dt/dsigma); host-side float64 scalars.
        """
        sigma = math.exp(v) if self.variable == "log_sigma" else v
        tt = self.sde.t_from_noise_level(torch.tensor([sigma], dtype=torch.float64))
        m = float(self.sde.marginal_coeffs(tt)[0][0])
        g = float(self.sde._sde(torch.zeros(1, 1, dtype=torch.float64), tt)[1].reshape(-1)[0])
        rate = 2. * sigma * m * m / (g * g)
        return float(tt[0]), rate * sigma if self.variable == "log_sigma" else rate

    def __call__(self, t: Tensor | float, y: Tensor, out: Tensor | None = None) -> Tensor:
        self.nfe += 1
        rate = None
        if self.variable != "t":
            t, rate = self.time_map(float(t))
        if isinstance(t, float):
            tb = torch.full((self.B,), t, dtype=y.dtype, device=y.device)
        else:
            tb = t.expand(self.B)
        with torch.enable_grad():
            x = y[:self.n].view(self.x_shape).detach().requires_grad_(True)
            score = self.score_fn(x, tb)
            if self.nfe == 1:         # first call: shape, finiteness, an autograd graph w.r.t. x (one sync)
                check_score_graph(score, x)
            if score.shape != x.shape:
                raise ValueError(f"score_fn must return a tensor shaped like x {tuple(x.shape)}, "
                                 f"got {tuple(score.shape)}")
            f, g = self.sde._sde(x, tb)
            drift = torch.addcmul(f, (-0.5 * g * g).view(self.bshape), score)
            div = self.divergence(drift, x, self.probes)
        res = torch.cat((drift.detach().reshape(-1), div), out=out) if out is not None \
            else torch.cat((drift.detach().reshape(-1), div))
        return res if rate is None else res.mul_(rate)


def _split_rms_norm(n: int) -> Callable[[Tensor], Tensor]:
    """Error norm of the flat state: max(RMS over the x part, RMS over the log-density part).

    Same as torchdiffeq's norm for a tuple state (x, delta): the log-density integral gets its own
    error control instead of being diluted among the B*D data coordinates.
    """
    def norm(e: Tensor) -> Tensor:
        return torch.maximum(e[:n].pow(2).mean(), e[n:].pow(2).mean()).sqrt()
    return norm


def _rk45(func, y0, t0, t1, rtol, atol, n, steps):
    """In-house lean Dormand-Prince 5(4) (``likelihood.dopri``)."""
    return dormand_prince(func, y0, t0, t1, rtol, atol, norm=_split_rms_norm(n))


def _torchdiffeq(torch_method: str, fixed: bool):
    """A torchdiffeq.odeint method; fixed-grid methods take ``steps`` uniform steps on [t0, t1]."""
    def integrate(func, y0, t0, t1, rtol, atol, n, steps):
        ts = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
        if fixed:
            options = {"grid_constructor": lambda f, y, t: torch.linspace(
                t0, t1, steps + 1, dtype=t.dtype, device=t.device)}
        else:
            watch = FiniteNormWatch(_split_rms_norm(n))          # stops at a non-finite error estimate
            options = {"norm": watch}
        try:
            return odeint(func, y0, ts, rtol=rtol, atol=atol, method=torch_method, options=options)[-1]
        except AssertionError as err:
            raise_if_non_finite(err, None if fixed else watch)
            raise
    integrate.__doc__ = f"torchdiffeq.odeint(method={torch_method!r})"
    return integrate


#: ODE solvers for the joint (x, log-density) system. Adaptive ones use rtol/atol, fixed-grid ones ``steps``.
#: ``rk45`` is the lean in-house Dormand-Prince 5(4); ``dopri5`` is the same pair through torchdiffeq.
METHODS: dict[str, Callable] = {
    "rk45": _rk45,
    "dopri5": _torchdiffeq("dopri5", False),
    "dopri8": _torchdiffeq("dopri8", False),
    "bosh3": _torchdiffeq("bosh3", False),
    "adaptive_heun": _torchdiffeq("adaptive_heun", False),
    "fehlberg2": _torchdiffeq("fehlberg2", False),
    "euler": _torchdiffeq("euler", True),
    "midpoint": _torchdiffeq("midpoint", True),
    "heun": _torchdiffeq("heun2", True),
    "heun3": _torchdiffeq("heun3", True),
    "rk4": _torchdiffeq("rk4", True),
}
FIXED_GRID = frozenset({"euler", "midpoint", "heun", "heun3", "rk4"})


def _check_args(sde, score_fn, x, hutchinson, rtol, atol, method, eps, generator, n_probes, max_batch, steps):
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable score_fn(x, t), got {type(score_fn).__name__}")
    if not (hasattr(sde, "_sde") and hasattr(sde, "_prior_logp") and hasattr(sde, "T")):
        raise ValueError(f"sde must be an sde_lib.SDE, got {type(sde).__name__}")
    check_tensor("x", x, min_dim=2)
    check_choice("hutchinson", hutchinson, DIVERGENCES)
    check_choice("method", method, METHODS)
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    check_positive("eps", eps)
    if not eps < sde.T:
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}), got {eps!r}")
    check_generator("generator", generator)
    check_positive("n_probes", n_probes, integer=True)
    if max_batch is not None:
        check_positive("max_batch", max_batch, integer=True)
    if steps is not None:
        if method not in FIXED_GRID:
            raise ValueError(f"steps is only used by the fixed-grid methods {sorted(FIXED_GRID)}; "
                             f"method {method!r} is adaptive (use rtol/atol), got steps={steps!r}")
        check_positive("steps", steps, integer=True)


def _span(sde, eps: float, variable: str) -> tuple[float, float]:
    """Integration interval in the variable: [eps, T] in t, [sigma(eps), sigma(T)] (or its log)."""
    if variable == "t":
        return float(eps), float(sde.T)
    lo, hi = sde.noise_level(torch.tensor([eps, sde.T], dtype=torch.float64)).tolist()
    return (math.log(lo), math.log(hi)) if variable == "log_sigma" else (lo, hi)


def _solve(sde, score_fn, x: Tensor, divergence, probes, rtol, atol, method, eps, steps, variable="t"):
    """One ODE solve for the batch x; returns (logp [B], z, nfe)."""
    func = FlowWithDivergence(sde, score_fn, tuple(x.shape), divergence, probes, variable)
    n = func.n
    y0 = torch.cat((x.reshape(-1), x.new_zeros(x.shape[0])))
    n_steps = steps if steps is not None else sde.N
    v0, v1 = _span(sde, eps, variable)
    yT = METHODS[method](func, y0, v0, v1, rtol, atol, n, n_steps)
    z = yT[:n].view(x.shape)
    logp = sde._prior_logp(z) + yT[n:]
    return logp, z, func.nfe


def log_likelihood(sde, score_fn: ScoreFn, x: Tensor, hutchinson: str = "rademacher", rtol: float = 1e-5,
                   atol: float = 1e-5, method: str = "rk45", eps: float = 1e-5,
                   generator: torch.Generator | None = None, n_probes: int = 1, max_batch: int | None = None,
                   steps: int | None = None, progress: bool = False,
                   variable: str = "auto") -> tuple[Tensor, Tensor, int]:
    """log p_eps(x) = log p_T(z) + int_eps^T div f~(x(t), t) dt in nats, by the probability-flow ODE.

    Args:
      sde, score_fn: the forward SDE and a score function ``score_fn(x, t)``.
      x: data [B, *shape] (any shape); device and dtype (float32 or float64) are kept throughout.
      hutchinson: "rademacher" | "gaussian" (Hutchinson trace estimator with ``n_probes`` probes per
        sample drawn once from ``generator`` and fixed along the trajectory) | "exact" (one VJP per
        data dimension; small D only).
      rtol, atol, method: solver tolerances and method (``METHODS``): "rk45" = Dormand-Prince 5(4),
        in-house lean implementation (default, fastest); "dopri5" = the same pair through torchdiffeq;
        dopri8, bosh3, adaptive_heun, fehlberg2 (torchdiffeq, adaptive); fixed grids euler, midpoint,
        heun, heun3, rk4 (torchdiffeq) with ``steps`` uniform steps (default ``sde.N``).
      eps: start time of the integration (the likelihood is that of p_eps).
      n_probes: Hutchinson probes per sample; the divergence estimates are averaged.
      max_batch: solve at most this many samples at a time (memory cap) and concatenate. Probes are
        drawn for the whole batch first, so chunking uses the same probes as one solve.
      progress: tqdm bar over the chunks.
      variable: the integration variable: "t" (the SDE time), "sigma" (the noise level s(t) / m(t);
        dt/dsigma = 2 sigma m^2 / g^2), "log_sigma", or "auto" (default): sigma when the SDE has no
        drift (VE: the ODE is then dx/dsigma = -sigma score, EDM's form), else t (VP, sub-VP: fewer
        steps in t; benchmarks/fewstep.py). The state stays x; only the independent variable changes.

    Returns:
      (logp [B] in nats, z = x(T) [B, *shape], nfe = number of score_fn calls).
    """
    _check_args(sde, score_fn, x, hutchinson, rtol, atol, method, eps, generator, n_probes, max_batch, steps)
    check_choice("variable", variable, ("auto", "t", "sigma", "log_sigma"))
    if variable == "auto":
        probe = torch.ones(1, 1, dtype=torch.float64)
        drift_free = bool(sde._sde(probe, torch.full((1,), 0.5 * sde.T, dtype=torch.float64))[0].eq(0).all())
        variable = "sigma" if drift_free else "t"
    divergence = DIVERGENCES[hutchinson]
    probes = None
    if hutchinson in PROBES:
        probes = PROBES[hutchinson]((n_probes, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    B = x.shape[0]
    chunk = B if max_batch is None else min(max_batch, B)
    starts = range(0, B, chunk)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="log_likelihood", unit="chunk")
    logps, zs, nfe = [], [], 0
    with torch.no_grad():
        for s in starts:
            pr = None if probes is None else probes[:, s:s + chunk]
            try:
                logp, z, n = _solve(sde, score_fn, x[s:s + chunk].detach(), divergence, pr, rtol, atol, method,
                                    eps, steps, variable)
            except NonFiniteStateError as err:
                raise NonFiniteStateError(f"score_fn returned non-finite values (NaN or inf) during the "
                                          f"probability-flow ODE solve: {err}") from err
            logps.append(logp)
            zs.append(z)
            nfe += n
    if len(logps) == 1:
        return logps[0], zs[0], nfe
    return torch.cat(logps), torch.cat(zs), nfe
