#!/usr/bin/env python
"""GPU smoke test: train a CIFAR-10-sized score model for a few steps on synthetic data; report steps/s
and peak memory.

Writes a synthetic CIFAR-10-shaped ``.npz`` (random uint8 images, nothing downloaded), then runs the
library's own training loop (``training.train``: Adam, EMA, an atomic final checkpoint) with the
published CIFAR-10 config. steps/s is the training loop's own figure for the last logging window
(checkpoint writing excluded); peak memory is ``torch.cuda.max_memory_allocated``.

    python benchmarks/gpu_smoke.py --device cuda                       # NCSN++ (VE), batch 128
    python benchmarks/gpu_smoke.py --device cuda --config configs/vp/cifar10_ddpmpp_continuous.py
    python benchmarks/gpu_smoke.py --device cuda --mixed_precision bf16 --compile
    torchrun --nproc_per_node=2 benchmarks/gpu_smoke.py --device cuda  # DDP (rank 0 reports)
    python benchmarks/gpu_smoke.py --device cpu --batch 2 --steps 2    # plumbing check without a GPU
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import base_parser, emit, print_table, setup, write_json  # noqa: E402


def load_config(path: str):
    spec = importlib.util.spec_from_file_location("smoke_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


def synthetic_npz(path: str, n_train: int, n_test: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
             x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8))
    return path


def main(argv=None) -> None:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/ve/cifar10_ncsnpp_continuous.py")
    p.add_argument("--batch", type=int, default=128, help="global batch size (config: 128)")
    p.add_argument("--steps", type=int, default=20, help="training steps through training.train")
    p.add_argument("--mixed_precision", default="none", choices=("none", "bf16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = p.parse_args(argv)
    setup(args)
    from training.distributed import current_info
    from training.train import train
    from training.checkpoint import CheckpointManager

    cfg = load_config(args.config)
    cfg.device = args.device
    cfg.training.batch_size = args.batch
    cfg.training.n_iters = args.steps
    cfg.training.log_freq = max(1, args.steps // 2)
    cfg.training.eval_freq = 0
    cfg.training.snapshot_freq = 0
    cfg.training.snapshot_freq_for_preemption = 0
    cfg.training.snapshot_sampling = False
    cfg.training.mixed_precision = args.mixed_precision
    cfg.training.compile = bool(args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.path = synthetic_npz(os.path.join(tmp, "synthetic_cifar10.npz"), max(256, args.batch), 64)
        workdir = os.path.join(tmp, "run")
        dev = torch.device(args.device)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train(cfg, workdir, progress=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        info = current_info(args.device)
        if not info.is_main:
            return
        from training.logs import read_csv_log
        rates = read_csv_log(os.path.join(workdir, "log.csv"))["steps_per_sec"]
        losses = read_csv_log(os.path.join(workdir, "log.csv"))["loss"]
        state, _ = CheckpointManager(os.path.join(workdir, "checkpoints")).load_latest()
        n_params = sum(v.numel() for v in state["model"].values() if v.is_floating_point())
        rec = {"workload": f"smoke/{os.path.basename(args.config)[:-3]}", "device": str(dev),
               "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               "ranks": info.world_size, "global_batch": args.batch, "steps": args.steps,
               "mixed_precision": args.mixed_precision, "compile": bool(args.compile),
               "params_M": n_params / 1e6, "steps_per_s_last_window": rates[-1] if rates else math.nan,
               "wall_s_incl_setup": wall, "final_loss": losses[-1] if losses else math.nan,
               "loss_finite": bool(losses) and all(math.isfinite(v) for v in losses),
               "peak_mem_GiB": torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else None}
        records: list = []
        emit(rec, records)
        print_table(records, ["workload", "device_name", "ranks", "global_batch", "params_M", "steps_per_s_last_window",
                              "peak_mem_GiB", "final_loss", "loss_finite"], title="GPU smoke test")
        write_json(args.json_out, records)


if __name__ == "__main__":
    main()
