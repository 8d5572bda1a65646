"""The training loop: Adam with warmup and clipping, EMA, atomic checkpoints, exact resume, logging.

    train(config, workdir)   # rerunning on the same workdir continues from the newest readable checkpoint

Each step is ``training.step.optimizer_step`` (loss, clipped Adam step with warmup, EMA update); around
it the loop draws batches, logs (``training.logs``), evaluates the EMA weights on a test batch, writes
checkpoints (``training.checkpoint``) and snapshot PNGs of samples (``training.inference.draw_samples``).

Determinism: the model is initialised from ``config.seed``; batches come from a CPU generator seeded
with ``seed + 1``, loss noise from a generator seeded with ``seed + 2`` on the training device. Their
states, the torch RNG and model/EMA/optimizer are checkpointed, so stopping at step k and rerunning on
the same workdir gives bitwise the parameters of one uninterrupted run (on CPU).

Nothing lost (each refusal is a ValueError naming the setting, before any work): the workdir must be a
writable folder (``training.workdir.check_workdir``) and is locked for the run (``WorkdirLock``: a
second trainer refuses; a lock left by a killed trainer does not block); temporary files of a write
interrupted by a crash are removed; a workdir whose checkpoint files are all unreadable is refused
instead of silently restarting at step 0 (``config.training.restart_from_scratch=True`` trains from
step 0 there anyway, leaving the unreadable files alone); an evaluation that fails saves the step's
state before the error is raised.

Data parallel (``torchrun --nproc_per_node=K``, see ``training.distributed``): the model is wrapped in
DistributedDataParallel; every step draws the *global* batch indices and the loss noise for the global
batch from generators seeded identically on all ranks, and each rank keeps its contiguous shard. With
equal shards DDP's gradient average is the global-batch gradient, so K ranks follow the single-process
run up to float rounding, and checkpoints (written by rank 0 only) resume with any K.
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings

import torch

from models import ExponentialMovingAverage
from plotting import save_samples_png
from scoredata import is_image

# the loop's building blocks; also importable from here (tests replace build_loss_fn on this module)
from .build import (Components, build_components, build_loss_fn, build_optimizer, check_config,  # noqa: F401
                    make_generators, resolve_device, run_info)
from .checkpoint import CheckpointManager, capture_state, checkpoint_dir, restore_state
from .run_config import check_recorded
from .distributed import barrier
from .inference import draw_samples
from .logs import CsvLog, RunLog, read_csv_log, remove_log_temporaries  # noqa: F401
from .step import NonFinite, draw_batch, fork_rng, lr_at, make_grad_scaler, optimizer_step  # noqa: F401
from .workdir import WorkdirLock, check_workdir

log = logging.getLogger(__name__)


def _nonfinite(err: NonFinite, step: int, mgr: CheckpointManager) -> FloatingPointError:
    last = [(step, path) for step, _, path in mgr.list() if mgr.is_readable(path)]
    where = f"last good checkpoint: {last[0][1]} (step {last[0][0]})" if last else "no checkpoint was written yet"
    return FloatingPointError(f"non-finite {err.what} ({err.value}) at step {step}; training stopped, "
                              f"nothing was saved for this step ({where})")


class EvaluationFailed(RuntimeError):
    """The evaluation loss failed at a step; the step's training state was saved first."""


def _unreadable_error(mgr: CheckpointManager, workdir: str) -> ValueError:
    files = mgr.list()
    names = ", ".join(os.path.basename(p) for _, _, p in files[:3]) + (", ..." if len(files) > 3 else "")
    return ValueError(f"none of the {len(files)} checkpoint files in {mgr.directory} is readable ({names}); "
                      f"refusing to train from step 0 over them. Move them away, use another --workdir, or set "
                      f"config.training.restart_from_scratch=True to train from step 0 in {workdir} (the "
                      f"unreadable files are kept and never counted as checkpoints)")


def _resume(config, workdir: str, mgr: CheckpointManager, model, ema, optimizer, gens, scaler) -> tuple[int, bool]:
    """(step to continue from, whether a checkpoint was loaded); refuses a workdir of unreadable files."""
    loaded = mgr.load_latest()
    if loaded is None:
        if mgr.list():
            if not bool(getattr(config.training, "restart_from_scratch", False)):
                raise _unreadable_error(mgr, workdir)
            log.warning("every checkpoint in %s is unreadable; training from step 0 "
                        "(config.training.restart_from_scratch)", mgr.directory)
        return 0, False
    state, path = loaded
    check_recorded(state, config, path)
    step = restore_state(state, model, ema, optimizer, gens)
    if scaler is not None and "grad_scaler" in state.get("extra", {}):
        scaler.load_state_dict(state["extra"]["grad_scaler"])
    log.info("resumed from %s (step %d)", path, step)
    return step, True


def train(config, workdir: str, progress: bool = True) -> None:
    """Train (or resume training of) a score model on ``config``'s data, writing into ``workdir``.

    ``workdir`` receives ``checkpoints/`` (periodic + resume), ``samples/`` (snapshot PNGs),
    ``tensorboard/``, ``log.csv`` and ``loss_curve.png``. Rerunning on the same workdir continues from
    the newest readable checkpoint up to ``config.training.n_iters``. A bad config, data split or
    workdir raises ValueError before anything is written (see the module docstring).
    """
    tr = config.training
    check_config(config, "train")
    info = run_info(config)
    device = info.device
    if int(getattr(tr, "num_threads", 0)) > 0:
        torch.set_num_threads(int(tr.num_threads))
    n_iters = int(tr.n_iters)
    if int(tr.batch_size) % info.world_size:
        raise ValueError(f"config.training.batch_size ({tr.batch_size}) must be divisible by the "
                         f"number of processes ({info.world_size})")

    comp = build_components(config, device)
    lock = None
    if info.is_main:
        check_workdir(workdir)
        lock = WorkdirLock(workdir).acquire()
    try:
        _train(config, workdir, progress, info, comp)
    finally:
        if lock is not None:
            lock.release()
    return None


def _train(config, workdir: str, progress: bool, info, comp: Components) -> None:
    tr = config.training
    device, n_iters = info.device, int(tr.n_iters)
    sde, model = comp.sde, comp.model
    loss_fn = build_loss_fn(config, sde, train=True)
    eval_loss_fn = build_loss_fn(config, sde, train=False)
    optimizer = build_optimizer(config, model.parameters())
    ema = ExponentialMovingAverage(model.parameters(), decay=float(config.model.ema_rate))
    gens = make_generators(config, device)
    scaler = make_grad_scaler(config, device)
    mgr = CheckpointManager(checkpoint_dir(workdir), keep=int(tr.keep_checkpoints))
    if info.is_main:
        for path in mgr.remove_temporary_files() + remove_log_temporaries(workdir):
            log.warning("removed %s, left by a write that was interrupted", path)

    def save(step: int, kind: str) -> str:
        extra = {"grad_scaler": scaler.state_dict()} if scaler is not None else None
        return mgr.save(capture_state(step, model, ema, optimizer, gens, extra=extra, config=config), kind)

    step, loaded = _resume(config, workdir, mgr, model, ema, optimizer, gens, scaler)
    barrier(info)  # every rank has read the checkpoint before rank 0 may write the next one
    if info.is_main and step == 0 and not loaded and n_iters == 0:  # still leave a (untrained) checkpoint
        save(0, "ckpt")
    if step >= n_iters:
        log.info("nothing to do: checkpoint step %d >= n_iters %d", step, n_iters)
        return None

    train_model = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if bool(getattr(tr, "compile", False)):
        train_model = torch.compile(train_model)
    log.info("training %s with %s on %s from step %d to %d in %s", config.model.name, type(sde).__name__,
             device, step, n_iters, workdir)
    bar = _progress_bar(progress and info.is_main, n_iters, step)
    logs = RunLog(workdir, step, enabled=info.is_main, echo=bar is None)
    grad_clip = float(config.optim.grad_clip)
    max_norm = grad_clip if grad_clip > 0 else math.inf
    log_freq = max(1, int(tr.log_freq))
    random_flip = bool(getattr(config.data, "random_flip", False)) and is_image(config)
    window_loss, window_n, t_window = 0., 0, time.perf_counter()
    try:
        while step < n_iters:
            s = step + 1
            batch = draw_batch(comp.train_data, gens["data"], int(tr.batch_size), info.rank, info.world_size,
                               random_flip).to(device, non_blocking=True)
            try:
                loss_value, lr, grad_norm = optimizer_step(config, model, train_model, optimizer, ema, loss_fn,
                                                           batch, s, gens["noise"], info, max_norm, scaler)
            except NonFinite as e:
                raise _nonfinite(e, s, mgr) from None
            step = s
            window_loss += loss_value
            window_n += 1
            if bar is not None:
                bar.update(1)

            periodic = int(tr.snapshot_freq) > 0 and step % int(tr.snapshot_freq) == 0
            resume = int(tr.snapshot_freq_for_preemption) > 0 and step % int(tr.snapshot_freq_for_preemption) == 0
            if step % log_freq == 0 or step == n_iters:
                elapsed = time.perf_counter() - t_window
                rate = window_n / elapsed if elapsed > 0 else float("nan")
                mean_loss = window_loss / window_n
                eval_loss = None
                if info.is_main and comp.test_data is not None and int(tr.eval_freq) > 0 and \
                        (step % int(tr.eval_freq) == 0 or step == n_iters):
                    try:
                        eval_loss = _eval_loss(config, eval_loss_fn, model, ema, comp.test_data, step, device)
                    except Exception as e:  # keep the step's work before reporting
                        path = save(step, "ckpt" if periodic else "resume")
                        raise EvaluationFailed(f"evaluation at step {step} failed ({type(e).__name__}: {e}); the "
                                           f"training state of step {step} was saved to {path}, so rerunning "
                                           f"continues from there (config.training.eval_freq=0 turns the "
                                           f"evaluation off)") from e
                logs.log(step, loss=mean_loss, lr=lr, grad_norm=grad_norm, steps_per_sec=rate, eval_loss=eval_loss)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4g}", steps_per_s=f"{rate:.1f}")
                window_loss, window_n, t_window = 0., 0, time.perf_counter()

            t_side = time.perf_counter()  # checkpoints and snapshots do not count towards steps/s
            if info.is_main and (periodic or resume or step == n_iters):
                save(step, "ckpt" if periodic else "resume")
            if info.is_main and periodic and bool(tr.snapshot_sampling):
                _snapshot(config, workdir, step, comp, ema, device)
            t_window += time.perf_counter() - t_side
    finally:
        if bar is not None:
            bar.close()
        logs.close()
    barrier(info)  # the final checkpoint is on disk before any rank returns
    return None


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, mininterval=0.5)


@torch.no_grad()
def _eval_loss(config, loss_fn, model, ema, test_data, step, device) -> float:
    """Loss of the EMA weights on one test batch (its own seeded generators; training RNG untouched)."""
    with fork_rng(device):
        g = torch.Generator().manual_seed(int(config.seed) + 7919 * step)
        batch = draw_batch(test_data, g, min(int(config.eval.batch_size), int(test_data.shape[0]))).to(device)
        noise = torch.Generator(device=device).manual_seed(int(config.seed) + 7919 * step + 1)
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        try:
            return float(loss_fn(model, batch, generator=noise))
        finally:
            ema.restore(model.parameters())


def _snapshot(config, workdir: str, step: int, comp: Components, ema, device) -> str:
    """Samples of the EMA model with a small step count, as ``samples/step_<step>.png`` (RNG untouched)."""
    model = comp.model
    n = int(config.training.n_snapshot_samples)
    with fork_rng(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        try:
            g = torch.Generator(device=device).manual_seed(int(config.seed) + 104729)
            x, _ = draw_samples(config, comp.sde, model, n, generator=g, device=device, n_steps=100)
        finally:
            ema.restore(model.parameters())
    path = os.path.join(workdir, "samples", f"step_{step:09d}.png")
    return save_samples_png(config, x, path, data=comp.train_data, title=f"step {step}")
