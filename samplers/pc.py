"""Predictor-corrector sampling of the reverse-time SDE (score SDE paper, Algorithm 1).

On the grid t_0 = T > t_1 > ... > t_{N-1} = eps (``linspace(T, eps, N)``, N = sde.N) each step runs
the corrector at t_i and then the predictor from t_i with dt = -(T - eps) / (N - 1), the grid spacing.
"""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from sde_lib.base import SDE
from sde_lib.checks import check_choice, check_generator, check_positive, check_shape, check_tensor
from .correctors import CORRECTORS
from .predictors import PREDICTORS

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]


class CountedScore:
    """Wraps a score function and counts its calls in ``nfe``: one call on a batch counts once."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.score_fn(x, t)


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
              progress: bool = False) -> tuple[Tensor, int]:
    """Predictor-corrector sampler. Returns (samples [shape], NFE = counted score_fn calls).

    x_T ~ prior (or ``z``); for t in linspace(T, eps, sde.N): x = corrector(x, t); x = predictor(x, t),
    the predictor stepping dt = -(T - eps) / (N - 1). ``denoise`` returns the last predictor step's
    noise-free mean x_mean (with predictor "none" this is x itself, as in the score SDE code).
    ``corrector_kwargs`` go to the corrector class (``{"step_lr": 2e-5}`` for "ald",
    ``{"step_norm": "batch"}`` for "langevin"). ``project(x, x_mean, t) -> (x, x_mean)``, if given,
    runs after every corrector and predictor update that runs (not after a "none" one; used for
    inpainting). ``z`` (the starting points at T) replaces the prior draw and fixes device and dtype.
    NFE = N * (n_steps [corrector] + 1 [predictor]), without the terms of a "none" corrector/predictor.
    """
    check_score_fn(score_fn)
    shape = check_shape("shape", shape)
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("corrector", corrector, CORRECTORS)
    check_positive("snr", snr, allow_zero=True)
    check_positive("n_steps", n_steps, integer=True, allow_zero=True)
    eps = check_eps(eps, sde.T)
    check_generator("generator", generator)
    if project is not None and not callable(project):
        raise ValueError(f"project must be callable project(x, x_mean, t) or None, got {type(project).__name__}")
    x = initial_state("z", sde, shape, z, generator, device, dtype)

    N = sde.N
    counted = CountedScore(score_fn)
    dt = -(sde.T - eps) / (N - 1) if N > 1 else -(sde.T - eps)
    pred = PREDICTORS[predictor](sde, counted, probability_flow, dt=dt)
    corr = CORRECTORS[corrector](sde, counted, snr, n_steps, eps=eps, **(corrector_kwargs or {}))
    timesteps = time_grid(sde, eps, N, device=x.device, dtype=x.dtype)
    B = x.shape[0]
    x_mean = x
    with torch.no_grad():
        for t in tqdm(timesteps, desc="pc_sample", disable=not progress, leave=False):
            vec_t = t.expand(B)
            if not corr.identity:
                x, x_mean = corr.update(x, vec_t, generator)
                if project is not None:
                    x, x_mean = project(x, x_mean, vec_t)
            if pred.identity:
                x_mean = x
            else:
                x, x_mean = pred.update(x, vec_t, generator)
                if project is not None:
                    x, x_mean = project(x, x_mean, vec_t)
    return (x_mean if denoise else x), counted.nfe
