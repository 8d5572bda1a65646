"""Predictor-corrector sampling of the reverse-time SDE (score SDE paper, Algorithm 1).

On the grid t_0 = T > t_1 > ... > t_{N-1} = eps (``linspace(T, eps, N)``, N = sde.N) each step runs
the corrector at t_i and then the predictor from t_i with dt = -(T - eps) / (N - 1), the grid spacing.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from tqdm.auto import tqdm

from sde_lib.base import SDE
from sde_lib.checks import (check_choice, check_generator, check_positive, check_score_output, check_shape,
                            check_tensor)
from .correctors import CORRECTORS
from .predictors import PREDICTORS

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]


class CountedScore:
    """Wraps a score function and counts its calls in ``nfe``: one call on a batch counts once.

    The FIRST call's output is checked (``sde_lib.checks.check_score_output``): a tensor shaped exactly
    like x (a [B, 1] score for [B, 2] data would otherwise broadcast silently) holding only finite
    values, else ``ValueError`` naming score_fn. Later calls are passed through unchecked, so the check
    costs one host synchronisation per sampler call, not one per step. Every sampler (PC, ODE,
    annealed Langevin, controllable generation, the fast solvers) counts through this class.
    Extra positional arguments are passed on (``langevin_dynamics`` calls ``score_fn(x)``).
    """

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: Tensor, *args) -> Tensor:
        self.nfe += 1
        out = self.score_fn(x, *args)
        if self.nfe == 1:
            check_score_output(out, x, "score_fn")
        return out


def check_score_fn(score_fn) -> None:
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable score_fn(x, t) -> tensor like x, "
                         f"got {type(score_fn).__name__}")


def check_eps(eps, T: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < float(eps) < T:
        raise ValueError(f"eps must be a number in (0, T) = (0, {T}), got {eps!r}")
    return float(eps)


def initial_state(name: str, sde: SDE, shape, z: Tensor | None, generator, device, dtype) -> Tensor:
    """``z`` checked against ``shape``, or a draw from the prior p_T with ``generator``."""
    if z is None:
        return sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
    check_tensor(name, z)
    if tuple(z.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (the requested shape), got {tuple(z.shape)}")
    return z


def time_grid(sde: SDE, eps: float, N: int, device="cpu", dtype=torch.float32) -> Tensor:
    """The PC sampler's times linspace(T, eps, N)."""
    return torch.linspace(sde.T, eps, N, device=device, dtype=dtype)


def pc_sample(sde: SDE, score_fn: ScoreFn, shape, predictor: str = "reverse_diffusion",
              corrector: str = "langevin", snr: float = 0.16, n_steps: int = 1,
              probability_flow: bool = False, denoise: bool = True, eps: float = 1e-3,
              generator: torch.Generator | None = None, device="cpu", dtype: torch.dtype = torch.float32,
              z: Tensor | None = None, corrector_kwargs: dict | None = None,
              project: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
              progress: bool = False, predictor_kwargs: dict | None = None) -> tuple[Tensor, int]:
    """Predictor-corrector sampler. Returns (samples [shape], NFE = counted score_fn calls).

    x_T ~ prior (or ``z``); for step k = 0..N-1 at t_k in linspace(T, eps, sde.N): x = corrector(x, t_k);
    x = predictor(x, t_k), the predictor stepping dt = -(T - eps) / (N - 1). Both receive the step's
    ladder index i = N - 1 - k (``index=``), so the discrete chains (DDPM / SMLD steps, the langevin
    corrector's alpha_i) visit every level once: floor(t_k (N - 1) / T) would be off by one once
    eps (N - 1) / T >= 1. ``denoise`` returns the last predictor step's noise-free mean x_mean; with
    predictor "none" (corrector-only sampling: annealed Langevin, NCSNv2) it takes the final denoising
    step at t_{N-1} = eps, Tweedie's posterior mean (x + s(eps)^2 score(x, eps)) / m(eps) (for VE:
    NCSNv2's x + sigma_L^2 s(x, sigma_L)), one more score evaluation.
    ``corrector_kwargs`` go to the corrector class (``{"step_lr": 2e-5}`` for "ald",
    ``{"step_norm": "sample"}`` for "langevin", whose default is the published batch-mean rule);
    ``predictor_kwargs`` to the predictor class (``{"variance": "fixed_small"}`` for
    "ancestral_sampling"). ``project(x, x_mean, t) -> (x, x_mean)``, if given,
    runs after every corrector and predictor update that runs (not after a "none" one; used for
    inpainting). ``z`` (the starting points at T) replaces the prior draw and fixes device and dtype.
    NFE = N * (n_steps [corrector] + 1 [predictor]), without the terms of a "none" corrector/predictor,
    plus 1 for the denoising step of predictor "none". A corrector other than "none" needs n_steps >= 1
    (0 would silently run no corrector).
    """
    check_score_fn(score_fn)
    shape = check_shape("shape", shape)
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("corrector", corrector, CORRECTORS)
    check_positive("snr", snr, allow_zero=True)
    check_positive("n_steps", n_steps, integer=True, allow_zero=True)
    if n_steps == 0 and not CORRECTORS[corrector].identity:
        raise ValueError(f"n_steps must be >= 1 with corrector {corrector!r} (0 would run no corrector step; "
                         f"use corrector='none' for predictor-only sampling), got 0")
    eps = check_eps(eps, sde.T)
    check_generator("generator", generator)
    if project is not None and not callable(project):
        raise ValueError(f"project must be callable project(x, x_mean, t) or None, got {type(project).__name__}")
    x = initial_state("z", sde, shape, z, generator, device, dtype)

    N = sde.N
    counted = CountedScore(score_fn)
    dt = -(sde.T - eps) / (N - 1) if N > 1 else -(sde.T - eps)
    pred = build_from_registry("predictor", predictor, PREDICTORS, predictor_kwargs, {"sde", "score_fn",
                               "probability_flow", "dt"}, sde, counted, probability_flow, dt=dt)
    corr = build_from_registry("corrector", corrector, CORRECTORS, corrector_kwargs, {"sde", "score_fn", "snr",
                               "n_steps", "eps"}, sde, counted, snr, n_steps, eps=eps)
    pred_update, corr_update = _with_index(pred.update), _with_index(corr.update)
    timesteps = time_grid(sde, eps, N, device=x.device, dtype=x.dtype)
    ladder = torch.arange(N - 1, -1, -1, device=x.device)             # step k -> ladder index N - 1 - k
    B = x.shape[0]
    x_mean = x
    with torch.no_grad():
        for k, t in enumerate(tqdm(timesteps, desc="pc_sample", disable=not progress, leave=False)):
            vec_t = t.expand(B)
            index = ladder[k].expand(B)
            if not corr.identity:
                x, x_mean = corr_update(x, vec_t, generator, index)
                if project is not None:
                    x, x_mean = project(x, x_mean, vec_t)
            if pred.identity:
                x_mean = x
            else:
                x, x_mean = pred_update(x, vec_t, generator, index)
                if project is not None:
                    x, x_mean = project(x, x_mean, vec_t)
        if denoise and pred.identity and not corr.identity:
            x_mean = tweedie_denoise(sde, counted, x, timesteps[-1].expand(B))
    return (x_mean if denoise else x), counted.nfe


def tweedie_denoise(sde: SDE, score_fn: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
    """E[x_0 | x_t = x] = (x + s(t)^2 score(x, t)) / m(t) (Tweedie's formula for p_0t = N(m x_0, s^2 I))."""
    m, s = sde.marginal_coeffs(t)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (x + s.reshape(shape) ** 2 * score_fn(x, t)) / m.reshape(shape)


def build_from_registry(kind: str, name: str, registry: dict, kwargs: dict | None, fixed: set, *args, **kw):
    """``registry[name](*args, **kw, **kwargs)``; every key of ``kwargs`` (the user's ``{kind}_kwargs``)
    must be a keyword of that class that the sampler does not set itself (else ValueError)."""
    cls = registry[name]
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{kind}_kwargs must be a dict of keyword arguments or None, got {type(kwargs).__name__}")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        allowed = sorted(k for k, p in params.items() if k != "self" and k not in fixed
                         and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        bad = sorted(k for k in kwargs if k not in allowed)
        if bad:
            raise ValueError(f"{kind}_kwargs: {kind} {name!r} accepts {allowed}, got unknown {bad}")
    return cls(*args, **kw, **kwargs)


def _with_index(update: Callable) -> Callable:
    """``update(x, t, generator, index)``, dropping ``index`` for a registered class that predates it."""
    if "index" in inspect.signature(update).parameters:
        return lambda x, t, generator, index: update(x, t, generator, index=index)
    return lambda x, t, generator, index: update(x, t, generator)
