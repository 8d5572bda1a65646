"""Langevin dynamics with a noise-conditional score ``score_fn(x, sigma_batch)`` (NCSN).

``annealed_langevin`` is NCSN Algorithm 1 on an explicit noise ladder; ``langevin_dynamics`` is plain
Langevin MCMC at a single level (which, with the exact score of separated modes, keeps the mode
weights of its starting distribution instead of the data's: the failure annealing fixes).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from sde_lib.checks import (check_generator, check_positive, check_shape, check_tensor, randn,
                            randn_like)
from .correctors import langevin_step
from .pc import CountedScore, check_score_fn

Tensor = torch.Tensor
SigmaScoreFn = Callable[[Tensor, Tensor], Tensor]


def check_sigmas(sigmas) -> Tensor:
    """``sigmas`` must be a 1-D, non-empty, finite, positive, strictly monotone sequence; returned in
    float64, sorted from largest to smallest (the annealing order)."""
    try:
        s = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"sigmas must be a 1-D sequence of noise levels, got {sigmas!r}") from None
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence of noise levels, got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError(f"sigmas must be finite and > 0, got {s.tolist()}")
    d = s[1:] - s[:-1]
    if s.numel() > 1 and not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError("sigmas must be strictly monotone (ascending or descending) noise levels, "
                         f"got {s.tolist()}")
    return torch.sort(s, descending=True).values


def annealed_langevin(score_fn: SigmaScoreFn, sigmas: Sequence[float] | Tensor, shape,
                      n_steps_each: int = 100, step_lr: float = 2e-5, denoise: bool = True,
                      generator: torch.Generator | None = None, *, x_init: Tensor | None = None,
                      device="cpu", dtype: torch.dtype = torch.float32, return_nfe: bool = False,
                      progress: bool = False) -> Tensor | tuple[Tensor, int]:
    """NCSN Algorithm 1. For sigma_1 > ... > sigma_L (``sigmas`` in either order):
    alpha_i = step_lr * sigma_i^2 / sigma_L^2; repeat ``n_steps_each`` times
    x <- x + alpha_i / 2 * score_fn(x, sigma_i) + sqrt(alpha_i) z. Then (``denoise``)
    x <- x + sigma_L^2 score_fn(x, sigma_L).

    x starts at ``x_init`` or N(0, sigma_1^2 I). ``score_fn`` receives sigma as a [batch] tensor.
    Returns x, or (x, NFE) when ``return_nfe``.
    """
    check_score_fn(score_fn)
    shape = check_shape("shape", shape)
    levels = check_sigmas(sigmas)
    check_positive("n_steps_each", n_steps_each, integer=True, allow_zero=True)
    check_positive("step_lr", step_lr)
    check_generator("generator", generator)
    if x_init is None:
        x = randn(shape, generator=generator, device=device, dtype=dtype) * float(levels[0])
    else:
        check_tensor("x_init", x_init)
        if tuple(x_init.shape) != shape:
            raise ValueError(f"x_init must have shape {shape} (the requested shape), got {tuple(x_init.shape)}")
        x = x_init
    levels = levels.to(device=x.device, dtype=x.dtype)
    counted = CountedScore(score_fn)
    B = x.shape[0]
    sigma_L = levels[-1]
    with torch.no_grad():
        bar = tqdm(total=levels.numel() * n_steps_each, desc="annealed_langevin", disable=not progress,
                   leave=False)
        for sigma in levels:
            sigma_b = sigma.expand(B)
            alpha = step_lr * sigma_b ** 2 / sigma_L ** 2
            for _ in range(n_steps_each):
                score = counted(x, sigma_b)
                x, _ = langevin_step(x, score, alpha, randn_like(x, generator))
                bar.update(1)
        bar.close()
        if denoise:
            x = x + sigma_L ** 2 * counted(x, sigma_L.expand(B))
    return (x, counted.nfe) if return_nfe else x


def langevin_dynamics(score_fn: Callable, x_init: Tensor, step_size: float, n_steps: int,
                      generator: torch.Generator | None = None, *, sigma: float | None = None,
                      return_nfe: bool = False, progress: bool = False) -> Tensor | tuple[Tensor, int]:
    """Plain Langevin MCMC at one noise level: x <- x + step_size / 2 * score + sqrt(step_size) z,
    ``n_steps`` times from ``x_init``. ``score_fn(x)``, or ``score_fn(x, sigma_batch)`` when ``sigma``
    is given. Returns x (and the NFE when ``return_nfe``)."""
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
    check_tensor("x_init", x_init)
    check_positive("step_size", step_size)
    check_positive("n_steps", n_steps, integer=True, allow_zero=True)
    check_generator("generator", generator)
    if sigma is not None:
        check_positive("sigma", sigma)
    x = x_init
    B = x.shape[0]
    alpha = torch.full((B,), float(step_size), device=x.device, dtype=x.dtype)
    sigma_b = None if sigma is None else torch.full((B,), float(sigma), device=x.device, dtype=x.dtype)
    counted = CountedScore(score_fn)
    with torch.no_grad():
        for _ in tqdm(range(n_steps), desc="langevin", disable=not progress, leave=False):
            score = counted(x) if sigma_b is None else counted(x, sigma_b)
            x, _ = langevin_step(x, score, alpha, randn_like(x, generator))
    return (x, counted.nfe) if return_nfe else x
