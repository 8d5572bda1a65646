"""Using a trained score model as its config says, on one process or sharded across torchrun ranks:

* ``draw_samples``: ``config.sampling.method`` "pc" (``samplers.pc_sample`` with the configured predictor,
  corrector, snr, steps) or "ode" (``samplers.ode_sample``), in batches of ``config.sampling.batch_size``;
* ``likelihood_stats``: bits/dim or NLL of given points with ``config.eval``'s solver settings
  (``evaluation.split_likelihood``).

Under torchrun each rank works on its contiguous shard (``training.distributed.shard_slice``) with its
own generator stream (``rank_generator``) and every rank returns the gathered result.
"""
from __future__ import annotations

import copy
import inspect

import torch

from evaluation.split_likelihood import likelihood_values, summarize_likelihood
from models import get_score_fn
from samplers import CORRECTORS, ODE_METHODS, PREDICTORS, ode_sample, pc_sample
from sde_lib import get_sde
from sde_lib.checks import check_choice, check_positive

from .distributed import RunInfo, all_sum, gather_rows, rank_generator, shard_slice

Tensor = torch.Tensor


def score_fn_for(config, sde, model):
    """The score function of a network (eval mode, ``models.get_score_fn``) as config.training trained it."""
    return get_score_fn(sde, model, continuous=bool(config.training.continuous), train=False)


# ----------------------------------------------------------------------------- sampling
def sampling_sde(config, sde, n_steps: int | None):
    """The SDE used for PC sampling: ``sde`` itself, or a copy with ``N = n_steps`` (fewer predictor
    steps) for continuous-time models. Discrete models keep their ladder (their labels depend on N)."""
    if n_steps is None or not bool(config.training.continuous) or int(n_steps) >= sde.N:
        return sde
    cfg = copy.deepcopy(config)
    cfg.model.num_scales = int(n_steps)
    return get_sde(cfg)


def check_sampling_config(config) -> None:
    """``config.sampling``: method in {pc, ode}; predictor / corrector registered; ODE method known;
    n_steps_each >= 1 when a corrector runs (0 would silently run none: use corrector "none");
    batch_size and num_samples >= 1."""
    s = config.sampling
    check_choice("config.sampling.method", str(s.method), ("pc", "ode"))
    check_choice("config.sampling.predictor", str(s.predictor), PREDICTORS)
    check_choice("config.sampling.corrector", str(s.corrector), CORRECTORS)
    check_choice("config.sampling.ode_method", str(s.ode_method), ODE_METHODS)
    check_positive("config.sampling.n_steps_each", s.n_steps_each, integer=True, allow_zero=True)
    if int(s.n_steps_each) == 0 and not CORRECTORS[str(s.corrector)].identity:
        raise ValueError(f"config.sampling.n_steps_each must be >= 1 with corrector {str(s.corrector)!r} "
                         f"(0 would run no corrector step; set config.sampling.corrector='none' for that), got 0")
    check_positive("config.sampling.batch_size", s.batch_size, integer=True)
    check_positive("config.sampling.num_samples", s.num_samples, integer=True)


def corrector_kwargs(config) -> dict:
    """``config.sampling.corrector_kwargs`` (optional) restricted to the keywords the chosen corrector
    accepts, so one config can carry e.g. ``{"step_norm": "batch"}`` for ``langevin`` and still run
    with ``corrector="none"``."""
    kw = dict(config.sampling.get("corrector_kwargs", None) or {})
    params = inspect.signature(CORRECTORS[str(config.sampling.corrector)].__init__).parameters
    return {k: v for k, v in kw.items() if k in params}


def draw_samples(config, sde, model, n: int, generator: torch.Generator | None = None, device="cpu",
                 n_steps: int | None = None, progress: bool = False,
                 info: RunInfo | None = None) -> tuple[torch.Tensor, int]:
    """``n`` samples [n, *config.data.shape] by ``config.sampling.method`` ("pc" | "ode"), in batches of
    ``config.sampling.batch_size``; returns (samples on CPU, total NFE). ``n_steps`` coarsens the PC
    sampler (continuous models) and loosens the ODE tolerances to 1e-3 (for cheap snapshots).

    ``info`` (a distributed ``RunInfo``): each rank draws its shard of the ``n`` samples with its own
    generator stream (``rank_generator``); all ranks return the gathered samples and the summed NFE.
    """
    s = config.sampling
    check_sampling_config(config)
    info = info or RunInfo(device=torch.device(device))
    total = n
    rows = shard_slice(n, info)
    n = rows.stop - rows.start
    generator = rank_generator(generator, info)
    method = str(s.method)
    score_fn = score_fn_for(config, sde, model)
    shape = tuple(int(d) for d in config.data.shape)
    bs = max(1, int(s.batch_size))
    out, nfe = [], 0
    for start in range(0, n, bs):
        b = min(bs, n - start)
        if method == "pc":
            x, k = pc_sample(sampling_sde(config, sde, n_steps), score_fn, (b, *shape),
                             predictor=str(s.predictor), corrector=str(s.corrector), snr=float(s.snr),
                             n_steps=int(s.n_steps_each), probability_flow=bool(s.probability_flow),
                             denoise=bool(s.noise_removal), eps=float(s.eps), generator=generator,
                             device=device, corrector_kwargs=corrector_kwargs(config), progress=progress)
        else:
            tol = 1e-3 if n_steps is not None else None
            x, k = ode_sample(sde, score_fn, (b, *shape), method=str(s.ode_method),
                              rtol=tol or float(s.rtol), atol=tol or float(s.atol), eps=float(s.eps),
                              denoise=bool(s.noise_removal), generator=generator, device=device)
        out.append(x.detach().cpu())
        nfe += int(k)
    x = gather_rows(torch.cat(out) if out else torch.empty((0, *shape)), info)
    if x.shape[0] != total:
        raise RuntimeError(f"gathered {x.shape[0]} samples, expected {total}")
    return x, int(round(all_sum(nfe, info)))


def likelihood_stats(config, sde, model, x: torch.Tensor, generator: torch.Generator | None = None,
                     progress: bool = False, info: RunInfo | None = None) -> dict:
    """Bits/dim (dequantized, discrete data) or NLL in nats per sample (toy data) on ``x``:
    mean, standard error, n, NFE (``evaluation.split_likelihood``).

    ``info`` (a distributed ``RunInfo``): each rank evaluates its contiguous shard of ``x`` (its own
    dequantization / probe stream); per-point values are gathered, so every rank returns the statistics
    of all of ``x``.
    """
    info = info or RunInfo(device=x.device)
    values, nfe = likelihood_values(config, sde, score_fn_for(config, sde, model), x[shard_slice(x.shape[0], info)],
                                    generator=rank_generator(generator, info), progress=progress)
    values = gather_rows(values, info)
    nfe = None if nfe is None else int(round(all_sum(nfe, info)))
    return summarize_likelihood(config, values, nfe, x)
