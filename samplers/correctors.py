"""Correctors: score-based MCMC at a fixed time t (``n_steps`` Langevin steps per call).

Every corrector is a small class built as ``cls(sde, score_fn, snr, n_steps, eps=1e-3)`` with
``update(x, t, generator=None, index=None) -> (x, x_mean)`` (``index``: the step's ladder index, passed
by ``pc_sample``). One Langevin step with step size ``a`` [batch] is

    x_mean = x + a / 2 * score(x, t),   x = x_mean + sqrt(a) z.

``langevin`` picks ``a`` from the signal-to-noise ratio (score SDE paper, Algorithm 4/5) with the
batch-mean norms of the published code by default; ``ald`` is NCSN's annealed-Langevin step at the
current noise level s(t). In both, ``snr`` is the ratio ||a/2 score|| / ||sqrt(a) z|| of the score SDE
code (for ``ald``: at a typical score size).
"""
from __future__ import annotations

import abc
from typing import Callable

import torch

from sde_lib.base import SDE
from sde_lib.checks import batch_view, check_choice, check_positive, randn_like

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]

CORRECTORS: dict[str, type["Corrector"]] = {}


def register_corrector(name: str):
    """Class decorator adding a corrector to ``CORRECTORS`` under ``name``."""
    def deco(cls):
        if name in CORRECTORS:
            raise ValueError(f"name: corrector {name!r} is already registered")
        cls.name = name
        CORRECTORS[name] = cls
        return cls
    return deco


def langevin_step(x: Tensor, score: Tensor, alpha: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """x_mean = x + alpha/2 score, x_new = x_mean + sqrt(alpha) noise; ``alpha`` is [batch]."""
    x_mean = x + batch_view(alpha / 2, x) * score
    return x_mean + batch_view(torch.sqrt(alpha), x) * noise, x_mean


class Corrector(abc.ABC):
    """Base corrector. ``eps`` is the smallest time the sampler visits (used by ``ald``)."""

    #: True when the corrector leaves x unchanged and calls no score (pc_sample then skips it)
    identity: bool = False

    def __init__(self, sde: SDE, score_fn: ScoreFn, snr: float, n_steps: int, eps: float = 1e-3):
        self.sde = sde
        self.score_fn = score_fn
        self.snr = float(snr)
        self.n_steps = int(n_steps)
        self.eps = float(eps)

    def step_size(self, x: Tensor, t: Tensor, score: Tensor, noise: Tensor,
                  index: Tensor | int | None = None) -> Tensor:
        """Langevin step size ``alpha`` [batch] for this step (``index``: the ladder index, when known)."""
        raise NotImplementedError

    def update(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None,
               index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        x_mean = x
        for _ in range(self.n_steps):
            score = self.score_fn(x, t)
            noise = randn_like(x, generator)
            x, x_mean = langevin_step(x, score, self.step_size(x, t, score, noise, index=index), noise)
        return x, x_mean


@register_corrector("langevin")
class LangevinCorrector(Corrector):
    """Langevin MCMC with the signal-to-noise step rule of the score SDE paper (Algorithm 4/5):
    eps = 2 a(t) (snr ||z|| / ||score||)^2, a(t) = sde.corrector_alpha(t), applied as
    x <- x + eps score + sqrt(2 eps) z, i.e. a Langevin step alpha = 2 eps; then
    ||eps score|| / ||sqrt(2 eps) z|| = snr sqrt(a(t)).

    ``step_norm="batch"`` (default) uses the batch means of ||z|| and ||score||, one step for the whole
    batch: the published rule of the score SDE code and diffusers' ``ScoreSdeVeScheduler.step_correct``
    (equal to it to float64 rounding). ``"sample"`` uses each sample's own norms, so a sample's step
    does not depend on the rest of the batch (a sample with a zero score does not move). Caveat of
    ``"sample"``: a step that depends on the state x makes the chain's stationary law ~ p(x) / alpha(x)
    instead of p(x); in high dimensions ||score|| concentrates and the two rules agree, but in 2-D the
    per-sample step has a heavy tail (||score|| -> 0 at a mode's centre, step ratios between samples
    of 0.005-209) and over-weights narrow modes (0.31-0.35 instead of 0.2 on the 0.2/0.8 mixture).
    """

    STEP_NORMS = ("batch", "sample")

    def __init__(self, sde, score_fn, snr, n_steps, eps=1e-3, step_norm: str = "batch"):
        super().__init__(sde, score_fn, snr, n_steps, eps)
        check_choice("step_norm", step_norm, self.STEP_NORMS)
        self.step_norm = step_norm

    def step_size(self, x, t, score, noise, index=None):
        B = x.shape[0]
        g = score.reshape(B, -1).norm(dim=-1)
        n = noise.reshape(B, -1).norm(dim=-1)
        if self.step_norm == "batch":
            g, n = g.mean().expand(B), n.mean().expand(B)
        ratio = torch.where(g > 0, self.snr * n / torch.where(g > 0, g, torch.ones_like(g)),
                            torch.zeros_like(g))
        return 4 * self.sde.corrector_alpha(t, index=index) * ratio ** 2       # alpha = 2 eps


@register_corrector("ald")
class AnnealedLangevinCorrector(Corrector):
    """NCSN's annealed Langevin step at the current noise level sigma_i = s(t) (sde.marginal_coeffs):
    x <- x + alpha_i/2 score + sqrt(alpha_i) z with alpha_i = step_lr * sigma_i^2 / sigma_min^2,
    sigma_min = s(eps) (the smallest level the sampler visits).

    Default ``step_lr = 4 snr^2 sigma_min^2``, i.e. alpha_i = 4 (snr sigma_i)^2: the score SDE code's
    step eps_i = 2 (snr sigma_i)^2 (alpha = 2 eps), for which ||alpha/2 score|| / ||sqrt(alpha) z|| = snr
    when ||score|| = sqrt(D) / sigma_i (the size of the perturbation kernel's score). Pass ``step_lr``
    for NCSN's own parameterization (NCSN: step_lr = 2e-5 with sigma_min = 0.01).
    """

    def __init__(self, sde, score_fn, snr, n_steps, eps=1e-3, step_lr: float | None = None):
        super().__init__(sde, score_fn, snr, n_steps, eps)
        if step_lr is not None:
            check_positive("step_lr", step_lr)
        self.step_lr = step_lr

    def step_size(self, x, t, score, noise, index=None):
        _, sigma = self.sde.marginal_coeffs(t)
        if self.step_lr is None:
            return 4 * (self.snr * sigma) ** 2
        _, sigma_min = self.sde.marginal_coeffs(torch.full_like(t[:1], self.eps))
        return self.step_lr * sigma ** 2 / sigma_min ** 2


@register_corrector("none")
class NoneCorrector(Corrector):
    """Identity: predictor-only sampling."""

    identity = True

    def update(self, x, t, generator=None, index=None):
        return x, x
