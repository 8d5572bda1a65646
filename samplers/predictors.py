"""Predictors: one step of a reverse-time SDE solver from t to t + dt (dt < 0).

Every predictor is a small class built as ``cls(sde, score_fn, probability_flow=False, dt=None, **kwargs)``
with ``update(x, t, generator=None, index=None) -> (x, x_mean)``: ``x`` is the new (noisy) state and
``x_mean`` the same step without its final noise (what a denoised sampler returns). ``index`` is the
step's ladder index i (``pc_sample`` passes N-1-k at its k-th step); without it the SDE derives it from
t (``sde.ladder_index``). All SDE-specific math comes from the SDE object (``sde.reverse``,
``_discretize``, ``ancestral_step``); no predictor inspects the SDE type.
"""
from __future__ import annotations

import abc
import math
from typing import Callable

import torch

from sde_lib.base import SDE
from sde_lib.checks import batch_view, check_choice, randn_like

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]

PREDICTORS: dict[str, type["Predictor"]] = {}


def register_predictor(name: str):
    """Class decorator adding a predictor to ``PREDICTORS`` under ``name``."""
    def deco(cls):
        if name in PREDICTORS:
            raise ValueError(f"name: predictor {name!r} is already registered")
        cls.name = name
        PREDICTORS[name] = cls
        return cls
    return deco


class Predictor(abc.ABC):
    """Base predictor. ``dt`` (negative) is the step of the time grid; default ``-T / N``."""

    #: True when the predictor leaves x unchanged and calls no score (pc_sample then skips it)
    identity: bool = False

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False,
                 dt: float | None = None):
        self.sde = sde
        self.score_fn = score_fn
        self.probability_flow = bool(probability_flow)
        self.rsde = sde.reverse(score_fn, probability_flow)
        self.dt = float(dt) if dt is not None else -sde.T / sde.N

    @abc.abstractmethod
    def update(self, x: Tensor, t: Tensor, generator: torch.Generator | None = None,
               index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """One step at times ``t`` [batch] (ladder index ``index`` when known); returns (x, x_mean)."""


@register_predictor("euler_maruyama")
class EulerMaruyamaPredictor(Predictor):
    """x_mean = x + f_rev(x, t) dt,  x = x_mean + g_rev(t) sqrt(-dt) z  (f_rev, g_rev of the reverse SDE)."""

    def update(self, x, t, generator=None, index=None):
        drift, diffusion = self.rsde._sde(x, t)
        x_mean = x + drift * self.dt
        if self.probability_flow:
            return x_mean, x_mean
        z = randn_like(x, generator)
        return x_mean + batch_view(diffusion, x) * math.sqrt(-self.dt) * z, x_mean


@register_predictor("reverse_diffusion")
class ReverseDiffusionPredictor(Predictor):
    """Reverse of the discrete chain x_{i+1} = x_i + f_i + G_i z:
    x_mean = x - f_i + G_i^2 score (G_i^2 / 2 for the probability flow),  x = x_mean + G_i z (0 for PF)."""

    def mean(self, x: Tensor, t: Tensor, index: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """(x_mean, G) of one reverse-diffusion step at ladder index ``index``; one score evaluation."""
        f, G = self.rsde._discretize(x, t, index=index)
        return x - f, G

    def update(self, x, t, generator=None, index=None):
        x_mean, G = self.mean(x, t, index)
        if self.probability_flow:
            return x_mean, x_mean
        z = randn_like(x, generator)
        return x_mean + batch_view(G, x) * z, x_mean


@register_predictor("ancestral_sampling")
class AncestralSamplingPredictor(Predictor):
    """Ancestral sampling of the SDE's discrete chain: (mean, std) = sde.ancestral_step(x, t, score),
    x = mean + std z (DDPM for VP, the SMLD posterior for VE), and no noise at the final step (ladder
    index 0, DDPM Algorithm 2's z = 0 at t = 1), so ``denoise=False`` returns the chain's x_0.

    ``variance``: "fixed_large" (sigma_i^2 = beta_i, the DDPM / score SDE default for VP) or
    "fixed_small" (the posterior variance beta~_i = beta_i (1 - alphabar_{i-1}) / (1 - alphabar_i));
    None uses the SDE's own default (``sde.default_ancestral_variance``: fixed_large for VP, the SMLD
    posterior for VE).
    """

    def __init__(self, sde, score_fn, probability_flow=False, dt=None, variance: str | None = None):
        if probability_flow:
            raise ValueError("probability_flow must be False for the ancestral_sampling predictor "
                             "(ancestral sampling has no deterministic version)")
        super().__init__(sde, score_fn, probability_flow, dt)
        if variance is not None:
            check_choice("variance", variance, sde.ANCESTRAL_VARIANCES)
        self.variance = variance

    def update(self, x, t, generator=None, index=None):
        score = self.score_fn(x, t)
        mean, std = self.sde.ancestral_step(x, t, score, index=index, variance=self.variance)
        last = self.sde.ladder_index(t, index) == 0
        std = torch.where(last, torch.zeros_like(std), std)
        z = randn_like(x, generator)
        return mean + batch_view(std, x) * z, mean


@register_predictor("none")
class NonePredictor(Predictor):
    """Identity: corrector-only sampling (e.g. NCSN annealed Langevin)."""

    identity = True

    def update(self, x, t, generator=None, index=None):
        return x, x
