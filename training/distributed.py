"""Multi-process runs under ``torchrun``: process-group set-up, row sharding and gathering.

    torchrun --nproc_per_node=K main.py --config ... --workdir ... --mode train

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; ``run_info(config)`` then
joins the process group (nccl when the run's device is CUDA, gloo on CPUs) and pins each rank to
``cuda:LOCAL_RANK``. Without those variables everything is a single process and no collective runs.

Conventions shared by training, sampling and likelihood:
* a global batch of B rows is split into contiguous shards, rank r taking rows
  [r * B // K, (r + 1) * B // K) (``shard_slice``), so results gathered in rank order (``gather_rows``)
  are in the single-process order;
* random numbers that must not depend on K (batch indices, loss noise) are drawn for the whole global
  batch from generators seeded identically on every rank, and each rank keeps its shard.
"""
from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Where this process sits in a (possibly distributed) run."""
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process run (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def device_for_rank(device: torch.device) -> torch.device:
    """``cuda`` without an index -> ``cuda:LOCAL_RANK`` (0 outside torchrun); other devices unchanged."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_distributed(device: torch.device) -> RunInfo:
    """Join (once) the process group torchrun describes; return this process's ``RunInfo``.

    Backend: nccl for CUDA devices, gloo otherwise. Single process when not launched by torchrun.
    """
    device = torch.device(device)
    if not dist.is_available() or not (dist.is_initialized() or launched_by_torchrun()):
        return RunInfo(0, 1, device)
    device = device_for_rank(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return RunInfo(dist.get_rank(), dist.get_world_size(), device)


def current_info(device: torch.device | str = "cpu") -> RunInfo:
    """``RunInfo`` of an already initialised process group (single process otherwise); no set-up."""
    device = torch.device(device)
    if dist.is_available() and dist.is_initialized():
        return RunInfo(dist.get_rank(), dist.get_world_size(), device_for_rank(device))
    return RunInfo(0, 1, device)


def shutdown() -> None:
    """Leave the process group (no-op for single-process runs)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: RunInfo) -> None:
    if info.distributed:
        dist.barrier()


def shard_slice(n: int, info: RunInfo) -> slice:
    """Rows [r n // K, (r + 1) n // K) of a global batch of ``n`` rows for rank r of K."""
    return slice(info.rank * n // info.world_size, (info.rank + 1) * n // info.world_size)


def all_mean(value: float, info: RunInfo) -> float:
    """Mean of a Python float over ranks (the value itself for one process)."""
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device(info))
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def all_sum(value: float, info: RunInfo) -> float:
    """Sum of a Python float over ranks."""
    return all_mean(value, info) * info.world_size


def _collective_device(info: RunInfo) -> torch.device:
    return info.device if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_rows(x: Tensor, info: RunInfo) -> Tensor:
    """Concatenate every rank's rows in rank order (shards may differ in length); on every rank.

    The result lives on ``x``'s device; single-process runs return ``x`` itself.
    """
    if not info.distributed:
        return x
    dev = _collective_device(info)
    local = x.detach().to(dev).contiguous()
    sizes = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(info.world_size)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.long, device=dev))
    sizes_i = [int(s.item()) for s in sizes]
    width = max(sizes_i)
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=dev)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:k] for p, k in zip(parts, sizes_i)]).to(x.device)


def rank_generator(generator: torch.Generator | None, info: RunInfo) -> torch.Generator | None:
    """A generator for this rank's share of independent draws (sampling, Hutchinson probes):
    ``generator`` itself on one process; otherwise a new one seeded ``initial_seed + 7919 * rank``."""
    if generator is None or not info.distributed:
        return generator
    return torch.Generator(device=generator.device).manual_seed(generator.initial_seed() + 7919 * info.rank)


__all__ = ["RunInfo", "launched_by_torchrun", "device_for_rank", "init_distributed", "current_info", "shutdown",
           "barrier", "shard_slice", "all_mean", "all_sum", "gather_rows", "rank_generator"]
