"""One training step: a batch, the loss, a clipped Adam step with linear warmup, the EMA update.

At step s (1-based) on a batch x drawn from the in-memory training tensor:

    loss = loss_fn(model, x, generator=noise_gen)          (training.losses.get_loss_fn)
    lr_s = lr * min(1, s / warmup);  g <- clip(grad loss, grad_clip);  Adam step;  EMA update.

A non-finite loss (before the backward pass) or gradient norm (before the optimizer step) raises
``NonFinite``: nothing of that step reaches the parameters.

Mixed precision (``config.training.mixed_precision``): "bf16" runs the loss under
``torch.autocast(bfloat16)``; "fp16" (CUDA only, ``training.build.check_training_config``) under
``torch.autocast(float16)`` with a ``torch.amp.GradScaler``: the loss is scaled before the backward
pass, the gradients unscaled before clipping; a step whose scaled gradients overflow is skipped and
the scale lowered (the GradScaler's rule), and only when the scale has fallen below ``MIN_SCALE``
(about 26 overflows in a row) is the gradient norm reported as non-finite.
"""
from __future__ import annotations

import contextlib
import math

import torch

from .distributed import RunInfo, all_mean


class NonFinite(FloatingPointError):
    """A non-finite loss or gradient norm met during a step (``what``, ``value``)."""

    def __init__(self, what: str, value: float):
        super().__init__(f"non-finite {what} ({value})")
        self.what, self.value = what, value


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


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MIN_SCALE = 2. ** -10


def autocast(config, device: torch.device):
    """autocast to bfloat16 / float16 for ``config.training.mixed_precision`` "bf16" / "fp16", else a
    no-op context."""
    dtype = AUTOCAST_DTYPES.get(str(getattr(config.training, "mixed_precision", "none")))
    if dtype is not None:
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


def make_grad_scaler(config, device: torch.device):
    """A ``torch.amp.GradScaler`` for "fp16" mixed precision, else None. Its state belongs in the
    checkpoint (``state_dict``) for an exact resume."""
    if str(getattr(config.training, "mixed_precision", "none")) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def fork_rng(device: torch.device):
    """Run side work (snapshots, eval losses) without touching the training RNG streams."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def optimizer_step(config, model: torch.nn.Module, train_model, optimizer: torch.optim.Optimizer, ema, loss_fn,
                   batch: torch.Tensor, step: int, noise: torch.Generator, info: RunInfo,
                   max_norm: float = math.inf, scaler=None) -> tuple[float, float, float]:
    """Take training step ``step`` (1-based) on ``batch``; returns (global-batch loss, lr, gradient norm).

    ``train_model`` is what the loss calls (``model`` itself, or its DDP / compiled wrapper); under DDP
    the loss is this rank's shard of the global batch (``shard=(rank, world_size)``). ``scaler``: the
    GradScaler of fp16 mixed precision (``make_grad_scaler``), or None.
    """
    shard_kw = {"shard": (info.rank, info.world_size)} if info.distributed else {}
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast(config, info.device):
        loss = loss_fn(train_model, batch, generator=noise, **shard_kw)
    loss_value = all_mean(float(loss.detach()), info)  # the global-batch loss, on every rank
    if not math.isfinite(loss_value):
        raise NonFinite("loss", loss_value)
    lr = lr_at(config, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        scaler.step(optimizer)           # skipped by the scaler when the gradients overflowed
        scaler.update()
        if not math.isfinite(grad_norm) and scaler.get_scale() < MIN_SCALE:
            raise NonFinite("gradient norm", grad_norm)
        ema.update(model.parameters())
        return loss_value, lr, grad_norm
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    if not math.isfinite(grad_norm):
        raise NonFinite("gradient norm", grad_norm)
    optimizer.step()
    ema.update(model.parameters())
    return loss_value, lr, grad_norm
