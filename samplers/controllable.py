"""Controllable generation with an unconditional score: inpainting, colorization, class guidance.

* ``inpaint``: PC sampling (``pc_sample`` with its ``project`` hook, i.e. the registered PREDICTORS /
  CORRECTORS) where after every corrector and predictor update the known pixels (mask == 1) are
  replaced by the data re-noised to the state's current level, ``m(t) x + s(t) z`` with fresh z; the
  output carries the known pixels exactly (the score SDE paper's inpainting).
* ``annealed_langevin_inpaint``: NCSN Algorithm 2 (annealed Langevin with y = x + sigma_i z drawn once
  per level and ``x <- x (1 - m) + y m`` after every step).
* ``colorize``: the decoupled construction: an orthonormal channel transform M whose first row is
  (1, 1, 1) / sqrt(3), so the first coordinate of M c is sqrt(3) * gray; inpaint that coordinate in the
  transformed space (the score there is M score(M^T u), the SDE is unchanged because it is isotropic),
  then map back with M^T.
* ``conditional_score_fn``: ``score(x, t) + scale * grad_x log p_t(y | x)`` with a time-dependent
  classifier ``classifier_fn(x, t) -> logits``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from sde_lib.base import SDE
from sde_lib.checks import (batch_view, check_choice, check_generator, check_positive, check_tensor, randn,
                            randn_like)
from .correctors import CORRECTORS, langevin_step
from .langevin import check_sigmas
from .pc import CountedScore, check_score_fn, pc_sample
from .predictors import PREDICTORS

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["check_mask", "inpaint", "annealed_langevin_inpaint", "color_transform", "colorize",
           "conditional_score_fn", "transformed_score_fn"]


# ---------------------------------------------------------------------------- validation
def check_mask(mask, x: Tensor, name: str = "mask") -> Tensor:
    """``mask`` must be a tensor broadcastable to ``x``'s shape holding only 0 and 1 (bool allowed).

    Returns a bool tensor expanded to ``x.shape`` on ``x``'s device (True = known pixel)."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor broadcastable to x {tuple(x.shape)} with values "
                         f"in {{0, 1}}, got {type(mask).__name__}")
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), tuple(x.shape))
    except RuntimeError:
        shape = None
    if shape != tuple(x.shape):
        raise ValueError(f"{name} must be broadcastable to x's shape {tuple(x.shape)}, got shape "
                         f"{tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must be binary (values 0 or 1; 1 keeps x), got other values")
        mask = mask == 1
    return mask.to(x.device).expand(x.shape)


def _check_sde(sde) -> None:
    if not isinstance(sde, SDE):
        raise ValueError(f"sde must be an sde_lib.SDE, got {type(sde).__name__}")


# ---------------------------------------------------------------------------- PC inpainting
def _known_projector(sde: SDE, x: Tensor, mask: Tensor, dt: float, corrector_runs: bool,
                     predictor_runs: bool, generator):
    """``project(x_state, x_mean, t)`` for ``pc_sample``: known pixels <- m(t') x + s(t') z.

    pc_sample calls it after the corrector (state at level t) and after the predictor (state moved to
    t' = t + dt, dt < 0); which of the two a call is follows from the identity flags of the pair.
    """
    phases = (["corrector"] if corrector_runs else []) + (["predictor"] if predictor_runs else [])
    calls = [0]

    def project(x_state: Tensor, x_mean: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        phase = phases[calls[0] % len(phases)]
        calls[0] += 1
        level = (t + dt).clamp(min=0.) if phase == "predictor" else t
        m, s = sde.marginal_coeffs(level)
        known_mean = batch_view(m, x) * x
        known = known_mean + batch_view(s, x) * randn_like(x, generator)
        return torch.where(mask, known, x_state), torch.where(mask, known_mean, x_mean)

    return project


def inpaint(sde: SDE, score_fn: ScoreFn, x: Tensor, mask: Tensor, predictor: str = "reverse_diffusion",
            corrector: str = "langevin", snr: float = 0.16, n_steps: int = 1, probability_flow: bool = False,
            denoise: bool = True, eps: float = 1e-3, generator: torch.Generator | None = None,
            return_nfe: bool = False, **pc_kwargs) -> Tensor | tuple[Tensor, int]:
    """Fill the pixels where ``mask == 0`` given ``x`` where ``mask == 1`` (mask broadcastable to x).

    PC sampling from x_T ~ prior (known pixels m(T) x + s(T) z) on linspace(T, eps, N); after every
    corrector update at t and predictor update t -> t + dt the known pixels are set to m x + s z at the
    state's new level with fresh z from ``generator``. Returns a tensor like x whose known pixels equal
    x exactly (and the NFE when ``return_nfe``). Other keywords go to ``pc_sample`` (e.g.
    ``corrector_kwargs``, ``progress``).
    """
    _check_sde(sde)
    check_score_fn(score_fn)
    check_tensor("x", x)
    mask = check_mask(mask, x)
    check_generator("generator", generator)
    for key in ("shape", "z", "project", "device", "dtype"):
        if key in pc_kwargs:
            raise ValueError(f"{key} is set by inpaint from x and mask; do not pass it")
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("corrector", corrector, CORRECTORS)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < sde.T:
        raise ValueError(f"eps must be a number in (0, T) = (0, {sde.T}), got {eps!r}")
    N = sde.N
    dt = -(sde.T - eps) / (N - 1) if N > 1 else -(sde.T - eps)
    corrector_runs = not CORRECTORS[corrector].identity
    predictor_runs = not PREDICTORS[predictor].identity
    project = None
    if corrector_runs or predictor_runs:
        project = _known_projector(sde, x, mask, dt, corrector_runs, predictor_runs, generator)
    z = sde.prior_sampling(tuple(x.shape), generator=generator, device=x.device, dtype=x.dtype)
    T = torch.full((x.shape[0],), sde.T, device=x.device, dtype=x.dtype)
    m_T, s_T = sde.marginal_coeffs(T)
    z = torch.where(mask, batch_view(m_T, x) * x + batch_view(s_T, x) * randn_like(x, generator), z)
    out, nfe = pc_sample(sde, score_fn, tuple(x.shape), predictor=predictor, corrector=corrector, snr=snr,
                         n_steps=n_steps, probability_flow=probability_flow, denoise=denoise, eps=eps,
                         generator=generator, z=z, project=project, **pc_kwargs)
    out = torch.where(mask, x, out)
    return (out, nfe) if return_nfe else out


# ---------------------------------------------------------------------------- NCSN Algorithm 2
def annealed_langevin_inpaint(score_fn: ScoreFn, sigmas: Sequence[float] | Tensor, x: Tensor, mask: Tensor,
                              n_steps_each: int = 100, step_lr: float = 2e-5,
                              generator: torch.Generator | None = None, denoise: bool = True,
                              x_init: Tensor | None = None, return_nfe: bool = False,
                              progress: bool = False) -> Tensor | tuple[Tensor, int]:
    """NCSN Algorithm 2. For sigma_1 > ... > sigma_L (``sigmas`` in either order), alpha_i =
    step_lr sigma_i^2 / sigma_L^2: draw y = x + sigma_i z once per level, then ``n_steps_each`` times
    x <- x + alpha_i/2 score_fn(x, sigma_i) + sqrt(alpha_i) z;  x <- x (1 - m) + y m.

    Starts from ``x_init`` (else N(0, sigma_1^2 I) on the unknown pixels). ``denoise`` adds the final
    step x <- x + sigma_L^2 score_fn(x, sigma_L). The known pixels of the output equal x exactly.
    ``score_fn(x, sigma)`` receives sigma as a [batch] tensor.
    """
    check_score_fn(score_fn)
    check_tensor("x", x)
    mask = check_mask(mask, x)
    levels = check_sigmas(sigmas)
    check_positive("n_steps_each", n_steps_each, integer=True, allow_zero=True)
    check_positive("step_lr", step_lr)
    check_generator("generator", generator)
    levels = levels.to(device=x.device, dtype=x.dtype)
    if x_init is None:
        cur = randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * levels[0]
    else:
        check_tensor("x_init", x_init)
        if tuple(x_init.shape) != tuple(x.shape):
            raise ValueError(f"x_init must have the shape of x {tuple(x.shape)}, got {tuple(x_init.shape)}")
        cur = x_init
    counted = CountedScore(score_fn)
    B = x.shape[0]
    sigma_L = levels[-1]
    with torch.no_grad():
        bar = tqdm(total=levels.numel() * n_steps_each, desc="ald_inpaint", disable=not progress, leave=False)
        for sigma in levels:
            sigma_b = sigma.expand(B)
            alpha = step_lr * sigma_b ** 2 / sigma_L ** 2
            y = x + sigma * randn_like(x, generator)
            cur = torch.where(mask, y, cur)
            for _ in range(n_steps_each):
                cur, _ = langevin_step(cur, counted(cur, sigma_b), alpha, randn_like(x, generator))
                cur = torch.where(mask, y, cur)
                bar.update(1)
        bar.close()
        if denoise:
            cur = cur + sigma_L ** 2 * counted(cur, sigma_L.expand(B))
    out = torch.where(mask, x, cur)
    return (out, counted.nfe) if return_nfe else out


# ---------------------------------------------------------------------------- colorization
def color_transform(dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """Orthonormal 3x3 M with rows (1,1,1)/sqrt3, (1,-1,0)/sqrt2, (1,1,-2)/sqrt6: (M c)_0 = sqrt3 mean(c)."""
    M = torch.tensor([[1. / math.sqrt(3.)] * 3,
                      [1. / math.sqrt(2.), -1. / math.sqrt(2.), 0.],
                      [1. / math.sqrt(6.), 1. / math.sqrt(6.), -2. / math.sqrt(6.)]], dtype=torch.float64)
    return M.to(device=device, dtype=dtype)


def _apply_channels(M: Tensor, x: Tensor) -> Tensor:
    """Per pixel c -> M c on the channel axis (dim 1) of [B, 3, ...]."""
    return torch.einsum("ij,bj...->bi...", M, x)


def transformed_score_fn(score_fn: ScoreFn, M: Tensor) -> ScoreFn:
    """Score in the coordinates u = M x (M orthogonal on channels): grad_u log p(M^T u) = M score(M^T u)."""
    def fn(u: Tensor, t: Tensor) -> Tensor:
        Mu = M.to(device=u.device, dtype=u.dtype)
        return _apply_channels(Mu, score_fn(_apply_channels(Mu.T, u), t))
    return fn


def colorize(sde: SDE, score_fn: ScoreFn, gray: Tensor, **pc_kwargs) -> Tensor | tuple[Tensor, int]:
    """Colour images [B, 3, H, W] whose channel mean is ``gray`` [B, 1, H, W] (model space).

    u = M c with M = ``color_transform()``; u_0 = sqrt(3) gray is known, u_1, u_2 are inpainted with the
    score M score(M^T u) (the SDE is isotropic, so it is the same in u-space); the result is M^T u, whose
    channel mean equals ``gray`` up to float rounding. Keywords go to ``inpaint`` (``generator``, ...).
    """
    check_tensor("gray", gray)
    if gray.dim() != 4 or gray.shape[1] != 1:
        raise ValueError(f"gray must have shape [batch, 1, H, W], got {tuple(gray.shape)}")
    M = color_transform(dtype=gray.dtype, device=gray.device)
    known = torch.zeros(gray.shape[0], 3, *gray.shape[2:], device=gray.device, dtype=gray.dtype)
    known[:, :1] = math.sqrt(3.) * gray
    mask = torch.tensor([1., 0., 0.], device=gray.device, dtype=gray.dtype).reshape(1, 3, 1, 1)
    # the user's score is checked (shape like u, finite) at its first call, before the channel transform
    res = inpaint(sde, transformed_score_fn(CountedScore(score_fn), M), known, mask, **pc_kwargs)
    if isinstance(res, tuple):
        return _apply_channels(M.T, res[0]), res[1]
    return _apply_channels(M.T, res)


# ---------------------------------------------------------------------------- class guidance
def _check_labels(y, x: Tensor, n_classes: int) -> Tensor:
    if isinstance(y, bool):
        raise ValueError(f"y must be an int class label or a [batch] integer tensor, got {y!r}")
    if isinstance(y, int):
        labels = torch.full((x.shape[0],), y, dtype=torch.long, device=x.device)
    elif isinstance(y, torch.Tensor) and not torch.is_floating_point(y) and y.dtype != torch.bool \
            and y.dim() == 1 and y.shape[0] in (1, x.shape[0]):
        labels = y.to(device=x.device, dtype=torch.long).expand(x.shape[0])
    else:
        raise ValueError(f"y must be an int class label or an integer tensor of shape [{x.shape[0]}], got "
                         f"{y if not isinstance(y, torch.Tensor) else f'tensor {tuple(y.shape)} {y.dtype}'}")
    if bool((labels < 0).any()) or bool((labels >= n_classes).any()):
        raise ValueError(f"y must hold class labels in [0, {n_classes}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


def conditional_score_fn(score_fn: ScoreFn, classifier_fn: Callable[[Tensor, Tensor], Tensor], y,
                         scale: float = 1.) -> ScoreFn:
    """grad_x log p_t(x | y) ~= score_fn(x, t) + scale * grad_x log softmax(classifier_fn(x, t))_y.

    ``classifier_fn(x, t) -> logits [batch, n_classes]`` is a time-dependent classifier of p_t(y | x);
    ``y`` an int or a [batch] integer tensor; ``scale`` the guidance strength (1 = Bayes' rule). The
    gradient is taken with autograd even when called under ``torch.no_grad`` (as samplers do).
    """
    check_score_fn(score_fn)
    if not callable(classifier_fn):
        raise ValueError(f"classifier_fn must be callable classifier_fn(x, t) -> logits, "
                         f"got {type(classifier_fn).__name__}")
    check_positive("scale", scale, allow_zero=True)
    if not (isinstance(y, int) or isinstance(y, torch.Tensor)) or isinstance(y, bool):
        raise ValueError(f"y must be an int class label or a [batch] integer tensor, got {y!r}")

    def fn(x: Tensor, t: Tensor) -> Tensor:
        score = score_fn(x, t)
        if scale == 0:
            return score
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = classifier_fn(xg, t)
            labels = _check_labels(y, x, logits.shape[-1])
            logp = torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).sum()
            grad, = torch.autograd.grad(logp, xg)
        return score + scale * grad.to(score.dtype)

    return fn
