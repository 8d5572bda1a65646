"""Evaluation of a trained checkpoint: likelihood (bits/dim or nats), sample quality, a sample figure.

``evaluate(config, workdir, eval_folder)`` loads the newest readable checkpoint (EMA weights unless
``config.eval.ckpt == "raw"``) and writes ``<workdir>/<eval_folder>/metrics.json`` (and a per-step
copy) plus a PNG of samples. The building blocks (``load_trained``, ``draw_samples``, ``likelihood_stats``,
``sample_stats``, ``save_samples_png``) are shared with ``main.py``'s sample / likelihood / encode modes.
"""
from __future__ import annotations

import copy
import json
import logging
import os

import torch

from evaluation import eval_subset, sample_stats  # noqa: F401  (sample_stats re-exported for main.py)
from evaluation import mean_se as _mean_se  # noqa: F401  (old name, used by benchmarks/engine.py)
from evaluation.split_likelihood import likelihood_values, summarize_likelihood
from plotting import save_samples_png  # noqa: F401  (re-exported: main.py, the training loop)

from .checkpoint import CheckpointManager, restore_state
from .distributed import RunInfo, all_sum, current_info, gather_rows, rank_generator, shard_slice

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- loading
def load_trained(config, workdir: str, device: torch.device | str | None = None, which: str | None = None):
    """(sde, model in eval mode, step, checkpoint path) from the newest readable checkpoint in ``workdir``.

    ``which`` = "ema" (default from ``config.eval.ckpt``) copies the EMA weights into the model.
    Raises FileNotFoundError when ``workdir`` holds no readable checkpoint.
    """
    from sde_lib import get_sde
    from models import get_model, ExponentialMovingAverage
    from .train import checkpoint_dir, resolve_device

    device = resolve_device(config) if device is None else torch.device(device)
    which = str(which or getattr(config.eval, "ckpt", "ema"))
    if which not in ("ema", "raw"):
        raise ValueError(f"config.eval.ckpt must be 'ema' or 'raw', got {which!r}")
    sde = get_sde(config)
    model = get_model(config)
    mgr = CheckpointManager(checkpoint_dir(workdir), keep=1)
    loaded = mgr.load_latest()
    if loaded is None:
        raise FileNotFoundError(f"no readable checkpoint in {checkpoint_dir(workdir)}; train first "
                                f"(--mode train --workdir {workdir})")
    state, path = loaded
    ema = ExponentialMovingAverage(model.parameters(), decay=float(config.model.ema_rate))
    try:
        restore_state(state, model, ema if which == "ema" else None, restore_rng=False)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if which == "ema" and "ema" in state:
        ema.copy_to(model.parameters())
    model.to(device).eval()
    return sde, model, int(state["step"]), path


def score_fn_for(config, sde, model):
    from models import get_score_fn
    return get_score_fn(sde, model, continuous=bool(config.training.continuous), train=False)


# ----------------------------------------------------------------------------- sampling
def sampling_sde(config, sde, n_steps: int | None):
    """The SDE used for PC sampling: ``sde`` itself, or a copy with ``N = n_steps`` (fewer predictor
    steps) for continuous-time models. Discrete models keep their ladder (their labels depend on N)."""
    if n_steps is None or not bool(config.training.continuous) or int(n_steps) >= sde.N:
        return sde
    from sde_lib import get_sde
    cfg = copy.deepcopy(config)
    cfg.model.num_scales = int(n_steps)
    return get_sde(cfg)


def check_sampling_config(config) -> None:
    """``config.sampling``: method in {pc, ode}; predictor / corrector registered; ODE method known."""
    from samplers import CORRECTORS, PREDICTORS, ODE_METHODS
    from sde_lib.checks import check_choice

    s = config.sampling
    check_choice("config.sampling.method", str(s.method), ("pc", "ode"))
    check_choice("config.sampling.predictor", str(s.predictor), PREDICTORS)
    check_choice("config.sampling.corrector", str(s.corrector), CORRECTORS)
    check_choice("config.sampling.ode_method", str(s.ode_method), ODE_METHODS)


def corrector_kwargs(config) -> dict:
    """``config.sampling.corrector_kwargs`` (optional) restricted to the keywords the chosen corrector
    accepts, so one config can carry e.g. ``{"step_norm": "batch"}`` for ``langevin`` and still run
    with ``corrector="none"``."""
    import inspect
    from samplers import CORRECTORS

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
    from samplers import pc_sample, ode_sample

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


# ----------------------------------------------------------------------------- statistics
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


# ----------------------------------------------------------------------------- the entry point
def write_json(path: str, obj: dict) -> str:
    from .checkpoint import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))
    return path


def evaluate(config, workdir: str, eval_folder: str = "eval", progress: bool = False) -> dict:
    """Evaluate the newest checkpoint in ``workdir``; write metrics JSON and a sample PNG into
    ``workdir/eval_folder``. Returns the metrics dict (keys: step, checkpoint, likelihood stats
    ``bpd``/``bpd_se`` or ``nll_nats``/``nll_nats_se``, sample statistics, paths)."""
    from scoredata import get_dataset

    sde, model, step, path = load_trained(config, workdir)
    device = next(model.parameters()).device
    info = current_info(device)  # under torchrun: likelihood and sampling sharded, rank 0 writes
    out_dir = os.path.join(workdir, eval_folder)
    if info.is_main:
        os.makedirs(out_dir, exist_ok=True)
    test = get_dataset(config, "test")
    seed = int(config.seed)
    metrics: dict = {"step": step, "checkpoint": path, "weights": str(config.eval.ckpt)}
    if bool(config.eval.enable_bpd):
        x = eval_subset(config, test).to(device)
        g = torch.Generator(device=device).manual_seed(seed + 11)
        metrics.update(likelihood_stats(config, sde, model, x, generator=g, progress=progress and info.is_main,
                                        info=info))
    if bool(config.eval.enable_sampling):
        g = torch.Generator(device=device).manual_seed(seed + 12)
        samples, nfe = draw_samples(config, sde, model, int(config.eval.num_samples), generator=g,
                                    device=device, progress=progress and info.is_main, info=info)
        metrics["sampling_nfe"] = nfe
        metrics.update(sample_stats(config, samples, test, generator=torch.Generator().manual_seed(seed + 13)))
        png = os.path.join(out_dir, f"samples_{step}.png")
        metrics["samples_png"] = save_samples_png(config, samples, png, data=test, title=f"step {step}") \
            if info.is_main else png
    metrics["metrics_json"] = os.path.join(out_dir, "metrics.json")
    if info.is_main:
        write_json(os.path.join(out_dir, f"metrics_{step}.json"), metrics)
        write_json(metrics["metrics_json"], metrics)
    log.info("evaluation at step %d: %s", step, metrics)
    return metrics
