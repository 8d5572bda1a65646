"""The training loop: Adam with warmup and clipping, EMA, atomic checkpoints, exact resume, logging.

One step at step s (1-based) on a batch x drawn from the in-memory training tensor:
    loss = loss_fn(model, x, generator=noise_gen)          (training.losses.get_loss_fn)
    lr_s = lr * min(1, s / warmup);  g <- clip(grad loss, grad_clip);  Adam step;  EMA update.

Determinism: the model is initialised from ``config.seed``; batches come from a CPU generator seeded
with ``seed + 1``, loss noise from a generator seeded with ``seed + 2`` on the training device. Their
states, the torch RNG and model/EMA/optimizer are checkpointed, so stopping at step k and rerunning on
the same workdir gives bitwise the parameters of one uninterrupted run (on CPU).

Data parallel (``torchrun --nproc_per_node=K``, see ``training.distributed``): the model is wrapped in
DistributedDataParallel; every step draws the *global* batch indices and the loss noise for the global
batch from generators seeded identically on all ranks, and each rank keeps its contiguous shard. With
equal shards DDP's gradient average is the global-batch gradient, so K ranks follow the single-process
run up to float rounding, and checkpoints (written by rank 0 only) resume with any K.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import os
import time
import warnings

import torch

from .checkpoint import CheckpointManager, capture_state, restore_state
from .distributed import RunInfo, all_mean, barrier, device_for_rank, init_distributed

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- run set-up
def resolve_device(config) -> torch.device:
    """``config.device``: "auto" -> cuda if available else cpu; otherwise any torch device string.
    A CUDA device without an index becomes ``cuda:LOCAL_RANK`` under torchrun."""
    name = str(getattr(config, "device", "auto"))
    if name == "auto":
        return device_for_rank(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"config.device must be 'auto', 'cpu' or a cuda device, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config.device is {name!r} but CUDA is not available")
    return device_for_rank(dev)


def run_info(config) -> RunInfo:
    """This process's place in the run: joins the torchrun process group when launched by torchrun."""
    return init_distributed(resolve_device(config))


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def make_generators(config, device: torch.device) -> dict[str, torch.Generator]:
    """Seeded generators, identical on every rank: ``data`` (CPU; global batch indices) and ``noise``
    (training device; loss noise drawn for the global batch, see ``loss_fn(..., shard=)``)."""
    seed = int(config.seed)
    data = torch.Generator().manual_seed(seed + 1)
    noise = torch.Generator(device=device).manual_seed(seed + 2)
    return {"data": data, "noise": noise}


# ----------------------------------------------------------------------------- components
@dataclasses.dataclass
class Components:
    sde: object
    model: torch.nn.Module
    train_data: torch.Tensor
    test_data: torch.Tensor | None


def check_data_shape(config, data: torch.Tensor, split: str) -> None:
    want = tuple(int(s) for s in config.data.shape)
    got = tuple(data.shape[1:])
    if got != want:
        raise ValueError(f"config.data.shape is {want} but the {split} split of dataset "
                         f"{config.data.dataset!r} has samples of shape {got}")


def check_model_io(config, sde, model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward pass on two samples: the score must have the data's shape."""
    from models import get_score_fn

    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        t = torch.full((x.shape[0],), 0.5 * sde.T, device=x.device, dtype=x.dtype)
        try:
            out = get_score_fn(sde, model, continuous=bool(config.training.continuous))(x, t)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"config.model ({config.model.name!r}) cannot process data of shape "
                             f"{tuple(x.shape[1:])} (config.data.shape): {str(e).splitlines()[0]}") from None
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"config.model ({config.model.name!r}) returns shape {tuple(out.shape[1:])} for "
                         f"data of shape {tuple(x.shape[1:])} (config.data.shape)")


def build_components(config, device: torch.device | str = "cpu", need_test: bool = False) -> Components:
    """Validate the config by building everything: SDE, model (seeded), data splits, a forward pass.

    Raises ValueError / FileNotFoundError with a one-line message on a bad config.
    """
    from sde_lib import get_sde
    from models import get_model
    from scoredata import get_dataset

    sde = get_sde(config)
    train_data = get_dataset(config, "train")          # data first: a missing path fails in no time
    check_data_shape(config, train_data, "train")
    test_data = None
    try:
        test_data = get_dataset(config, "test")
        check_data_shape(config, test_data, "test")
    except (ValueError, FileNotFoundError, KeyError) as e:
        if need_test:
            raise
        log.warning("no usable test split (%s); evaluation losses are skipped", e)
    torch.manual_seed(int(config.seed))
    model = get_model(config).to(device)
    check_model_io(config, sde, model, train_data[:2].to(device))
    return Components(sde, model, train_data, test_data)


def build_loss_fn(config, sde, train: bool = True):
    """``training.losses.get_loss_fn`` configured from ``config.training``."""
    from training.losses import get_loss_fn

    tr = config.training
    objective_kwargs = dict(tr.get("objective_kwargs", None) or {})
    return get_loss_fn(sde, train=train, reduce_mean=bool(tr.reduce_mean), continuous=bool(tr.continuous),
                       likelihood_weighting=bool(tr.likelihood_weighting), eps=float(tr.eps),
                       objective=str(tr.objective), **objective_kwargs)


def build_optimizer(config, params) -> torch.optim.Optimizer:
    """Adam(lr, betas=(beta1, 0.999), eps, weight_decay) from ``config.optim``."""
    o = config.optim
    if str(o.optimizer).lower() != "adam":
        raise ValueError(f"config.optim.optimizer must be 'Adam', got {o.optimizer!r}")
    return torch.optim.Adam(params, lr=float(o.lr), betas=(float(o.beta1), 0.999), eps=float(o.eps),
                            weight_decay=float(o.weight_decay))


def lr_at(config, step: int) -> float:
    """Linear warmup: lr * min(1, step / warmup) for the 1-based step being taken."""
    warmup = int(config.optim.warmup)
    lr = float(config.optim.lr)
    return lr if warmup <= 0 else lr * min(1., step / warmup)


def draw_batch(data: torch.Tensor, generator: torch.Generator, batch_size: int, rank: int = 0,
               world_size: int = 1, random_flip: bool = False) -> torch.Tensor:
    """A uniformly drawn (with replacement) global batch of ``batch_size`` rows; this rank's shard.

    With ``random_flip`` (images), each sample is mirrored along its last axis with probability 1/2.
    All draws come from ``generator`` and are made for the whole global batch, so every rank consumes
    the generator identically.
    """
    idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
    flip = torch.rand(batch_size, generator=generator) < 0.5 if random_flip else None
    per_rank = batch_size // world_size
    sl = slice(rank * per_rank, (rank + 1) * per_rank)
    x = data[idx[sl]]
    if flip is not None:
        f = flip[sl]
        x = torch.where(f.reshape(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)
    return x


# ----------------------------------------------------------------------------- logging
class CsvLog:
    """Append-only CSV metrics log; on resume, rows after the resumed step are dropped first."""
    FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_sec", "eval_loss"]

    def __init__(self, path: str, start_step: int):
        self.path = path
        rows = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in self.FIELDS})
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.FIELDS)

    def write(self, **row) -> None:
        self._w.writerow({k: row.get(k, "") for k in self.FIELDS})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_csv_log(path: str) -> dict[str, list[float]]:
    """Columns of a ``CsvLog`` file as float lists (empty cells skipped per column)."""
    out: dict[str, list[float]] = {k: [] for k in CsvLog.FIELDS}
    if not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k in CsvLog.FIELDS:
                if r.get(k):
                    out[k].append(float(r[k]))
    return out


class _Tensorboard:
    """SummaryWriter when tensorboard imports; otherwise a no-op (one warning)."""

    def __init__(self, logdir: str, purge_step: int):
        self._w = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as e:  # tensorboard missing or broken
            log.warning("TensorBoard logging disabled (%s: %s)", type(e).__name__, e)
            return
        self._w = SummaryWriter(log_dir=logdir, purge_step=purge_step if purge_step > 0 else None)

    def scalars(self, step: int, **values) -> None:
        if self._w is not None:
            for k, v in values.items():
                if v is not None:
                    self._w.add_scalar(k, v, step)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


# ----------------------------------------------------------------------------- the loop
def _autocast(config, device: torch.device):
    if str(getattr(config.training, "mixed_precision", "none")) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _fork_rng(device: torch.device):
    """Run side work (snapshots, eval losses) without touching the training RNG streams."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def _nonfinite(what: str, value: float, step: int, mgr: CheckpointManager) -> FloatingPointError:
    last = mgr.list()
    where = f"last good checkpoint: {last[0][2]} (step {last[0][0]})" if last else "no checkpoint was written yet"
    return FloatingPointError(f"non-finite {what} ({value}) at step {step}; training stopped, "
                              f"nothing was saved for this step ({where})")


def train(config, workdir: str, progress: bool = True) -> None:
    """Train (or resume training of) a score model on ``config``'s data, writing into ``workdir``.

    ``workdir`` receives ``checkpoints/`` (periodic + resume), ``samples/`` (snapshot PNGs),
    ``tensorboard/``, ``log.csv`` and ``loss_curve.png``. Rerunning on the same workdir continues from
    the newest readable checkpoint up to ``config.training.n_iters``.
    """
    from models import ExponentialMovingAverage

    tr = config.training
    info = run_info(config)
    device = info.device
    if int(getattr(tr, "num_threads", 0)) > 0:
        torch.set_num_threads(int(tr.num_threads))
    n_iters = int(tr.n_iters)
    if n_iters < 0:
        raise ValueError(f"config.training.n_iters must be >= 0, got {n_iters}")
    if int(tr.batch_size) % info.world_size:
        raise ValueError(f"config.training.batch_size ({tr.batch_size}) must be divisible by the "
                         f"number of processes ({info.world_size})")

    comp = build_components(config, device)
    sde, model = comp.sde, comp.model
    loss_fn = build_loss_fn(config, sde, train=True)
    eval_loss_fn = build_loss_fn(config, sde, train=False)
    optimizer = build_optimizer(config, model.parameters())
    ema = ExponentialMovingAverage(model.parameters(), decay=float(config.model.ema_rate))
    gens = make_generators(config, device)
    mgr = CheckpointManager(checkpoint_dir(workdir), keep=int(tr.keep_checkpoints))

    step = 0
    loaded = mgr.load_latest()
    if loaded is not None:
        state, path = loaded
        step = restore_state(state, model, ema, optimizer, gens)
        log.info("resumed from %s (step %d)", path, step)
    barrier(info)  # every rank has read the checkpoint before rank 0 may write the next one
    if info.is_main:
        os.makedirs(workdir, exist_ok=True)
        if step == 0 and loaded is None and n_iters == 0:  # still leave a (untrained) checkpoint behind
            mgr.save(capture_state(0, model, ema, optimizer, gens), "ckpt")
    if step >= n_iters:
        log.info("nothing to do: checkpoint step %d >= n_iters %d", step, n_iters)
        return None

    train_model = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if bool(getattr(tr, "compile", False)):
        train_model = torch.compile(train_model)
    shard_kw = {"shard": (info.rank, info.world_size)} if info.distributed else {}
    log.info("training %s with %s on %s from step %d to %d in %s", config.model.name, type(sde).__name__,
             device, step, n_iters, workdir)
    bar = _progress_bar(progress and info.is_main, n_iters, step)
    writers = _Writers(config, workdir, step, comp, info, echo=bar is None)
    grad_clip = float(config.optim.grad_clip)
    max_norm = grad_clip if grad_clip > 0 else math.inf
    log_freq = max(1, int(tr.log_freq))
    from scoredata import is_image
    random_flip = bool(getattr(config.data, "random_flip", False)) and is_image(config)
    window_loss, window_n, t_window = 0., 0, time.perf_counter()
    try:
        while step < n_iters:
            s = step + 1
            batch = draw_batch(comp.train_data, gens["data"], int(tr.batch_size), info.rank, info.world_size,
                               random_flip).to(device, non_blocking=True)
            model.train()
            optimizer.zero_grad(set_to_none=True)
            with _autocast(config, device):
                loss = loss_fn(train_model, batch, generator=gens["noise"], **shard_kw)
            loss_value = all_mean(float(loss.detach()), info)  # the global-batch loss, on every rank
            if not math.isfinite(loss_value):
                raise _nonfinite("loss", loss_value, s, mgr)
            loss.backward()
            lr = lr_at(config, s)
            for group in optimizer.param_groups:
                group["lr"] = lr
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
            if not math.isfinite(grad_norm):
                raise _nonfinite("gradient norm", grad_norm, s, mgr)
            optimizer.step()
            ema.update(model.parameters())
            step = s
            window_loss += loss_value
            window_n += 1
            if bar is not None:
                bar.update(1)

            if step % log_freq == 0 or step == n_iters:
                elapsed = time.perf_counter() - t_window
                rate = window_n / elapsed if elapsed > 0 else float("nan")
                mean_loss = window_loss / window_n
                eval_loss = None
                if info.is_main and comp.test_data is not None and int(tr.eval_freq) > 0 and \
                        (step % int(tr.eval_freq) == 0 or step == n_iters):
                    eval_loss = _eval_loss(config, eval_loss_fn, model, ema, comp.test_data, step, device)
                writers.log(step, loss=mean_loss, lr=lr, grad_norm=grad_norm, steps_per_sec=rate,
                            eval_loss=eval_loss)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4g}", steps_per_s=f"{rate:.1f}")
                window_loss, window_n, t_window = 0., 0, time.perf_counter()

            t_side = time.perf_counter()  # checkpoints and snapshots do not count towards steps/s
            periodic = int(tr.snapshot_freq) > 0 and step % int(tr.snapshot_freq) == 0
            resume = int(tr.snapshot_freq_for_preemption) > 0 and step % int(tr.snapshot_freq_for_preemption) == 0
            if info.is_main and (periodic or resume or step == n_iters):
                mgr.save(capture_state(step, model, ema, optimizer, gens), "ckpt" if periodic else "resume")
            if info.is_main and periodic and bool(tr.snapshot_sampling):
                writers.snapshot(step, sde, model, ema)
            t_window += time.perf_counter() - t_side
    finally:
        if bar is not None:
            bar.close()
        writers.close()
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
    with _fork_rng(device):
        g = torch.Generator().manual_seed(int(config.seed) + 7919 * step)
        batch = draw_batch(test_data, g, min(int(config.eval.batch_size), int(test_data.shape[0]))).to(device)
        noise = torch.Generator(device=device).manual_seed(int(config.seed) + 7919 * step + 1)
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        try:
            return float(loss_fn(model, batch, generator=noise))
        finally:
            ema.restore(model.parameters())


class _Writers:
    """All file outputs of a run (main rank only): CSV, TensorBoard, snapshot PNGs, loss curve."""

    def __init__(self, config, workdir: str, start_step: int, comp: Components, info: RunInfo,
                 echo: bool = True):
        self.config, self.workdir, self.comp, self.info = config, workdir, comp, info
        self.echo = echo
        self.enabled = info.is_main
        if not self.enabled:
            return
        self.csv = CsvLog(os.path.join(workdir, "log.csv"), start_step)
        self.tb = _Tensorboard(os.path.join(workdir, "tensorboard"), start_step)

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        self.csv.write(step=step, **values)
        self.tb.scalars(step, **values)
        if self.echo:
            log.info("step %d: %s", step, ", ".join(f"{k}={v:.5g}" for k, v in values.items() if v is not None))

    def snapshot(self, step: int, sde, model, ema) -> None:
        """Samples of the EMA model with a small step count, as a PNG in ``samples/``."""
        from plotting import save_samples_png
        from training.evaluate import draw_samples

        cfg = self.config
        n = int(cfg.training.n_snapshot_samples)
        device = self.info.device
        with _fork_rng(device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
            try:
                g = torch.Generator(device=device).manual_seed(int(cfg.seed) + 104729)
                x, _ = draw_samples(cfg, sde, model, n, generator=g, device=device, n_steps=100)
            finally:
                ema.restore(model.parameters())
        path = os.path.join(self.workdir, "samples", f"step_{step:09d}.png")
        save_samples_png(cfg, x, path, data=self.comp.train_data, title=f"step {step}")

    def close(self) -> None:
        if not self.enabled:
            return
        self.csv.close()
        self.tb.close()
        from plotting import loss_curve
        cols = _csv_loss_columns(self.csv.path)
        if cols[0]:
            loss_curve(os.path.join(self.workdir, "loss_curve.png"), *cols)


def _csv_loss_columns(path: str):
    steps, losses = [], []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("step") and r.get("loss"):
                steps.append(int(r["step"]))
                losses.append(float(r["loss"]))
    return steps, losses
