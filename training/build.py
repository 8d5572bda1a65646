"""From a config to the objects of a run, and the one place where a config is validated.

Each builder checks its own part of the config and raises ValueError naming the key (``config.training.sde``,
``config.model.name``, ``config.data.shape``, ``config.sampling.predictor``, ...):

    resolve_device(config)             config.device
    get_sde(config)                    config.training.sde and the SDE's parameters   (sde_lib)
    data_spec(config)                  config.data without reading data               (scoredata)
    build_components(config, device)   the data splits, the model (seeded) and one forward pass
    build_loss_fn(config, sde)         config.training's loss options                 (training.losses)
    build_optimizer(config, params)    config.optim
    check_training_config(config)      config.training's counts, frequencies, mixed precision
    check_sampling_config(config)      config.sampling                                (training.inference)

``check_config(config, purpose)`` runs exactly the checks a purpose needs and nothing else: "train"
adds the loss and optimizer options; "use" (sample, likelihood, encode, eval and the workflows on a
trained run) never builds a loss, reads no data set and builds no network (``training.run.open_run``
builds the network when it loads the checkpoint).
"""
from __future__ import annotations

import dataclasses
import logging

import torch

from models import get_model, get_score_fn
from scoredata import DataSpec, data_spec, get_dataset
from sde_lib import get_sde
from sde_lib.base import SDE
from sde_lib.checks import check_choice, check_positive

from .distributed import RunInfo, device_for_rank, init_distributed
from .inference import check_sampling_config

log = logging.getLogger(__name__)
PURPOSES = ("train", "use")


# ----------------------------------------------------------------------------- device, generators
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


def make_generators(config, device: torch.device) -> dict[str, torch.Generator]:
    """Seeded generators, identical on every rank: ``data`` (CPU; global batch indices) and ``noise``
    (training device; loss noise drawn for the global batch, see ``loss_fn(..., shard=)``)."""
    seed = int(config.seed)
    data = torch.Generator().manual_seed(seed + 1)
    noise = torch.Generator(device=device).manual_seed(seed + 2)
    return {"data": data, "noise": noise}


# ----------------------------------------------------------------------------- data and model
@dataclasses.dataclass
class Components:
    sde: SDE
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


def _where(config) -> str:
    path = str(getattr(config.data, "path", "") or "")
    return f"dataset {config.data.dataset!r}" + (f" ({path})" if path else "")


def build_components(config, device: torch.device | str = "cpu", need_test: bool | None = None) -> Components:
    """What training needs: SDE, data splits, the model (seeded), checked with one forward pass.

    Both splits are read and checked up front, so bad data (a corrupt image, non-finite values) in
    either stops the run before any work. An empty train split is refused; an empty test split is
    refused when ``need_test`` (default: evaluation is on, config.training.eval_freq > 0), else the
    evaluation losses are skipped with a warning. Raises ValueError / FileNotFoundError with a one-line
    message on a bad config.
    """
    if need_test is None:
        need_test = int(config.training.eval_freq) > 0
    sde = get_sde(config)
    train_data = get_dataset(config, "train")          # data first: a missing path fails in no time
    check_data_shape(config, train_data, "train")
    if train_data.shape[0] == 0:
        raise ValueError(f"the train split of {_where(config)} is empty; training needs data")
    test_data = get_dataset(config, "test")
    check_data_shape(config, test_data, "test")
    if test_data.shape[0] == 0:
        if need_test:
            raise ValueError(f"the test split of {_where(config)} is empty; the evaluation losses "
                             f"(config.training.eval_freq={int(config.training.eval_freq)}) need test data: "
                             f"provide some, or set config.training.eval_freq=0 to train without them")
        log.warning("the test split of %s is empty; evaluation losses are skipped", _where(config))
        test_data = None
    torch.manual_seed(int(config.seed))
    model = get_model(config).to(device)
    check_model_io(config, sde, model, train_data[:2].to(device))
    return Components(sde, model, train_data, test_data)


# ----------------------------------------------------------------------------- loss and optimizer
def build_loss_fn(config, sde, train: bool = True):
    """``training.losses.get_loss_fn`` configured from ``config.training``."""
    from training.losses import get_loss_fn  # looked up at call time (tests replace it)

    tr = config.training
    objective_kwargs = dict(tr.get("objective_kwargs", None) or {})
    return get_loss_fn(sde, train=train, reduce_mean=bool(tr.reduce_mean), continuous=bool(tr.continuous),
                       likelihood_weighting=bool(tr.likelihood_weighting), eps=float(tr.eps),
                       objective=str(tr.objective), **objective_kwargs)


def check_optim_config(config) -> None:
    """``config.optim``: the optimizer is Adam (the only one of the training loop); lr > 0, beta1 in
    [0, 1), eps > 0, weight_decay >= 0, warmup >= 0 steps, grad_clip finite (<= 0: no clipping)."""
    o = config.optim
    if str(o.optimizer).lower() != "adam":
        raise ValueError(f"config.optim.optimizer must be 'Adam', got {o.optimizer!r}")
    check_positive("config.optim.lr", o.lr)
    check_positive("config.optim.eps", o.eps)
    check_positive("config.optim.weight_decay", o.weight_decay, allow_zero=True)
    check_positive("config.optim.warmup", o.warmup, integer=True, allow_zero=True)
    beta1 = o.beta1
    if isinstance(beta1, bool) or not isinstance(beta1, (int, float)) or not 0. <= float(beta1) < 1.:
        raise ValueError(f"config.optim.beta1 must be a number in [0, 1), got {beta1!r}")
    clip = o.grad_clip
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or float(clip) != float(clip) or \
            abs(float(clip)) == float("inf"):
        raise ValueError(f"config.optim.grad_clip must be a finite number (<= 0: no clipping), got {clip!r}")


MIXED_PRECISION = ("none", "bf16", "fp16")


def check_training_config(config, device: torch.device | None = None) -> None:
    """``config.training``'s counts and switches: batch_size >= 1, n_iters >= 0, the frequencies >= 0
    (0: never), keep_checkpoints >= 1, mixed_precision one of ``MIXED_PRECISION`` ("fp16" needs a CUDA
    device: autocast float16 with a GradScaler), and config.eval.batch_size >= 1 (evaluation losses)."""
    tr = config.training
    check_positive("config.training.batch_size", tr.batch_size, integer=True)
    check_positive("config.training.n_iters", tr.n_iters, integer=True, allow_zero=True)
    for key in ("log_freq", "eval_freq", "snapshot_freq", "snapshot_freq_for_preemption"):
        check_positive(f"config.training.{key}", tr[key], integer=True, allow_zero=True)
    check_positive("config.training.keep_checkpoints", tr.keep_checkpoints, integer=True)
    if bool(tr.snapshot_sampling):
        check_positive("config.training.n_snapshot_samples", tr.n_snapshot_samples, integer=True)
    check_positive("config.eval.batch_size", config.eval.batch_size, integer=True)
    mp = str(getattr(tr, "mixed_precision", "none"))
    check_choice("config.training.mixed_precision", mp, MIXED_PRECISION)
    device = device if device is not None else resolve_device(config)
    if mp == "fp16" and device.type != "cuda":
        raise ValueError(f"config.training.mixed_precision='fp16' needs a CUDA device (autocast float16 with a "
                         f"GradScaler), but training runs on {device}; use 'bf16' or 'none' on a CPU")


def build_optimizer(config, params) -> torch.optim.Optimizer:
    """Adam(lr, betas=(beta1, 0.999), eps, weight_decay) from ``config.optim``."""
    o = config.optim
    check_optim_config(config)
    return torch.optim.Adam(params, lr=float(o.lr), betas=(float(o.beta1), 0.999), eps=float(o.eps),
                            weight_decay=float(o.weight_decay))


# ----------------------------------------------------------------------------- validation
@dataclasses.dataclass(frozen=True)
class CheckedConfig:
    """What ``check_config`` built on the way: the device, the SDE and the data spec."""
    device: torch.device
    sde: SDE
    data: DataSpec


def check_eval_config(config) -> None:
    """``config.eval.ckpt``: which weights a trained run is used with ("ema" or "raw")."""
    check_choice("config.eval.ckpt", str(getattr(config.eval, "ckpt", "ema")), ("ema", "raw"))


def check_config(config, purpose: str = "use") -> CheckedConfig:
    """Validate what ``purpose`` ("train" | "use") needs of ``config``, raising ValueError naming the
    first bad key. Both: device, SDE, data spec (no data read), sampling settings. "use": also
    config.eval.ckpt. "train": also ``check_training_config``, the loss options (a loss closure is built)
    and the optimizer (``check_optim_config``).
    The data splits and the network are checked where they are built (``build_components``, ``open_run``).
    """
    check_choice("purpose", purpose, PURPOSES)
    device = resolve_device(config)
    sde = get_sde(config)
    spec = data_spec(config)
    check_sampling_config(config)
    if purpose == "use":
        check_eval_config(config)
    else:
        check_training_config(config, device)
        build_loss_fn(config, sde, train=True)
        check_optim_config(config)
    return CheckedConfig(device=device, sde=sde, data=spec)
