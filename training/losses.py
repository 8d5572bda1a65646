"""Score-matching training losses for every SDE: continuous DSM, the discrete SMLD/DDPM losses, SSM and
exact (Hyvarinen) score matching, all with noise conditioning.

One training step draws a time t per sample, perturbs the data with the SDE's kernel
x_t = m(t) x_0 + s(t) z (z ~ N(0, I)) and scores the model's score s_theta(x_t, t) (a network output
turned into a score by ``models.get_score_fn``, i.e. by the SDE).

Per-sample objective, "sum form" (``reduce_mean=False``), with weight lambda(t):

* ``dsm``:      lambda/2 ||s_theta(x_t, t) + z / s(t)||^2   (Vincent's DSM; its target is grad log p_0t)
* ``ssm``:      lambda [v^T (d s_theta / dx) v + 1/2 (v^T s_theta)^2]  (sliced SM at x_t)
* ``exact_sm``: lambda [tr(d s_theta / dx) + 1/2 ||s_theta||^2]         (Hyvarinen's implicit SM at x_t)

lambda(t) = s(t)^2 by default, g(t)^2 with ``likelihood_weighting``. The three objectives differ by
terms that do not depend on the model: at a fixed t, dsm = exact_sm + lambda D / (2 s(t)^2).
With lambda = s^2 the DSM term is computed as 1/2 ||s(t) s_theta + z||^2 (no division by s(t)).

Reduction (the score-SDE convention): ``reduce_mean=False`` uses the sum form above (the 1/2 of the
DSM objective included); ``reduce_mean=True`` is the per-dimension mean *without* the 1/2, i.e. the
sum form times 2/D (for DSM: lambda mean_d (s_theta + z/s)_d^2). Either is then averaged over the batch.

Discrete training (``continuous=False``): ladder indices i ~ U{0, ..., N-1}, t_i = i T / (N - 1) (so
``sde.timestep_index(t_i) == i``), kernel ``sde.discrete_marginal_coeffs(t_i)`` = (m_i, s_i) and
lambda = s_i^2. For a VESDE this is the NCSN (SMLD) loss sum_i sigma_i^2 l(theta; sigma_i) over
``discrete_sigmas``; for a VPSDE the network predicts the noise, s_i s_theta = -eps_theta, and the loss
is DDPM's ||eps_theta(x_i, i) - z||^2.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch

from sde_lib.base import SDE
from sde_lib.checks import batch_view, check_choice, check_generator, check_tensor, rand, randn

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]
#: per_sample(score_fn, x_t, t, z, std, generator) -> [B]: the objective in sum form with lambda = s(t)^2
PerSampleFn = Callable[[ScoreFn, Tensor, Tensor, Tensor, Tensor, "torch.Generator | None"], Tensor]
LossFn = Callable[..., Tensor]


# ---------------------------------------------------------------------------- objectives
def _no_kwargs(name: str, kwargs: dict) -> None:
    if kwargs:
        raise ValueError(f"objective_kwargs: objective {name!r} takes no extra arguments, got {sorted(kwargs)}")


def _check_kwargs(name: str, fn: Callable, kwargs: dict, reserved: set[str]) -> None:
    """Every key of ``kwargs`` must be a keyword of ``fn`` that the loss does not set itself."""
    params = inspect.signature(fn).parameters
    allowed = sorted(k for k, p in params.items() if k not in reserved
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    bad = sorted(k for k in kwargs if k not in allowed)
    if bad:
        raise ValueError(f"objective_kwargs: objective {name!r} accepts {allowed}, got unknown {bad}")


def dsm_objective(**kwargs) -> PerSampleFn:
    """Denoising score matching: 1/2 ||s(t) s_theta(x_t, t) + z||^2 = s^2/2 ||s_theta + z/s||^2."""
    _no_kwargs("dsm", kwargs)

    def per_sample(score_fn, x_t, t, z, std, generator):
        r = batch_view(std, x_t) * score_fn(x_t, t) + z
        return 0.5 * r.pow(2).reshape(r.shape[0], -1).sum(-1)
    return per_sample


def ssm_objective(**kwargs) -> PerSampleFn:
    """Sliced score matching at the perturbed data, weighted by s(t)^2 (kwargs: n_projections,
    projection, variance_reduced, ... of ``training.objectives.sliced_score_matching``)."""
    from training.objectives import sliced_score_matching
    _check_kwargs("ssm", sliced_score_matching, kwargs, {"score_fn", "x", "t", "generator"})

    def per_sample(score_fn, x_t, t, z, std, generator):
        return std ** 2 * sliced_score_matching(score_fn, x_t, t, generator=generator, **kwargs)
    return per_sample


def exact_sm_objective(**kwargs) -> PerSampleFn:
    """Hyvarinen's implicit score matching (exact Jacobian trace) at the perturbed data, weighted by
    s(t)^2 (kwargs: max_dim, ... of ``training.objectives.exact_score_matching``)."""
    from training.objectives import exact_score_matching
    _check_kwargs("exact_sm", exact_score_matching, kwargs, {"score_fn", "x", "t", "generator"})

    def per_sample(score_fn, x_t, t, z, std, generator):
        return std ** 2 * exact_score_matching(score_fn, x_t, t, **kwargs)
    return per_sample


#: objective name -> builder(**objective_kwargs) -> per-sample loss in sum form with lambda = s(t)^2
LOSS_OBJECTIVES: dict[str, Callable[..., PerSampleFn]] = {
    "dsm": dsm_objective,
    "ssm": ssm_objective,
    "exact_sm": exact_sm_objective,
}


# ---------------------------------------------------------------------------- time sampling
def sample_times(sde: SDE, batch_size: int, continuous: bool, eps: float,
                 generator: torch.Generator | None = None, device="cpu",
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Training times [B] (unchecked helper of ``loss_fn``): t ~ U(eps, T) if ``continuous``, else ladder
    times t_i = i T / (N - 1) with i ~ U{0, ..., N-1}, so that ``sde.timestep_index(t_i) == i``."""
    u = rand((batch_size,), generator=generator, device=device, dtype=torch.float64)
    if continuous:
        return (eps + (sde.T - eps) * u).to(dtype)
    i = torch.floor(u * sde.N).clamp(max=sde.N - 1)
    return (i * (sde.T / max(sde.N - 1, 1))).to(dtype)


def _check_discrete_ladder(sde: SDE) -> None:
    """Discrete training needs a noise ladder with s_i > 0 at every level (SMLD sigmas, DDPM alphas)."""
    t = torch.arange(sde.N, dtype=torch.float64) * (sde.T / max(sde.N - 1, 1))
    _, std = sde.discrete_marginal_coeffs(t)
    if not bool((std > 0).all()):
        raise ValueError(f"continuous=False needs a discrete noise ladder with std > 0 at every level (the SMLD "
                         f"ladder of a VESDE, the DDPM chain of a VPSDE); {sde!r} has std = 0 at "
                         f"t = {float(t[std <= 0][0]):g}: use continuous=True")


def _check_shard(shard) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(isinstance(v, int) for v in shard)
    if not ok or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard!r}")
    return int(shard[0]), int(shard[1])


def _score_fn_builder():
    from models import get_score_fn  # models and training are siblings; imported when a loss is built
    return get_score_fn


# ---------------------------------------------------------------------------- the loss
def get_loss_fn(sde: SDE, train: bool = True, reduce_mean: bool = True, continuous: bool = True,
                likelihood_weighting: bool = False, eps: float = 1e-5, objective: str = "dsm",
                **objective_kwargs) -> LossFn:
    """Build ``loss_fn(model, batch, generator=None, shard=None) -> scalar`` (see the module docstring).

    ``shard=(rank, world_size)``: ``batch`` is rank's contiguous shard of a global batch of
    ``world_size * B`` rows; times and noise are drawn for the global batch and this shard's rows kept,
    so K data-parallel ranks with identically seeded generators see exactly the noise of one process
    (``dsm``; the projections of ``ssm`` are drawn per shard).

    The batch loss is mean_b w_b * per_sample_b with w = 1 (lambda = s^2) or g(t)^2 / s(t)^2
    (likelihood weighting, continuous only), times 2/D when ``reduce_mean``.
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"sde must be an sde_lib.SDE, got {type(sde).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0. < float(eps) < sde.T:
        raise ValueError(f"eps must be a number in (0, T) = (0, {sde.T}), got {eps!r}")
    if likelihood_weighting and not continuous:
        raise ValueError("likelihood_weighting is only defined for continuous training (continuous=True); "
                         "the discrete SMLD/DDPM losses use lambda = s_i^2")
    if not continuous:
        _check_discrete_ladder(sde)
    check_choice("objective", objective, LOSS_OBJECTIVES)
    per_sample = LOSS_OBJECTIVES[objective](**objective_kwargs)
    get_score_fn = _score_fn_builder()
    eps = float(eps)

    def loss_fn(model: torch.nn.Module, batch: Tensor, generator: torch.Generator | None = None,
                shard: tuple[int, int] | None = None) -> Tensor:
        if not callable(model):
            raise ValueError(f"model must be a callable network model(x, cond), got {type(model).__name__}")
        check_tensor("batch", batch, min_dim=2)
        check_generator("generator", generator)
        rank, world = _check_shard(shard)
        B = batch.shape[0]
        D = batch[0].numel()
        t_dtype = torch.promote_types(batch.dtype, torch.float32)   # no half-precision times
        rows = slice(rank * B, (rank + 1) * B)  # this shard of the global batch's noise
        t = sample_times(sde, B * world, continuous, eps, generator, batch.device, t_dtype)[rows]
        z = randn((B * world, *batch.shape[1:]), generator, batch.device, batch.dtype)[rows]
        m, std = sde.marginal_coeffs(t) if continuous else sde.discrete_marginal_coeffs(t)
        x_t = batch_view(m, batch) * batch + batch_view(std, batch) * z
        score_fn = get_score_fn(sde, model, continuous=continuous, train=train)
        losses = per_sample(score_fn, x_t, t, z, std, generator)
        if likelihood_weighting:
            g2 = sde._sde(torch.zeros_like(batch), t)[1] ** 2
            losses = losses * (g2 / std ** 2)
        if reduce_mean:
            losses = losses * (2. / D)
        return losses.mean()

    loss_fn.sde = sde
    loss_fn.objective = objective
    return loss_fn


__all__ = ["get_loss_fn", "LOSS_OBJECTIVES", "sample_times", "dsm_objective", "ssm_objective",
           "exact_sm_objective"]
