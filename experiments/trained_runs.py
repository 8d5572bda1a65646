"""Trained score models for the experiments, cached in workdirs: train once with ``training.train``, then
open with ``training.run.open_run`` (EMA weights).

    config = digits_config("vp", nf=16, seed=0, n_iters=3000)   # configs/vp/digits.py with these fields
    run = trained(config, root="exp_out")                       # trains into exp_out/<name>/ unless done

A workdir's name spells every field set here (SDE, data, network, width, seed, steps), so two settings
never share a workdir and a rerun with the same settings only opens the checkpoint (``train`` returns at
once when the newest checkpoint has reached ``n_iters``). ``n_iters=0`` leaves the untrained network
(initialised from ``seed``) as a checkpoint: the untrained control of ``experiments.identifiable``.
"""
from __future__ import annotations

import os
import time

import torch

from configs.ve.digits import get_config as ve_digits
from configs.ve.toy2d import get_config as ve_toy2d
from configs.vp.digits import get_config as vp_digits
from configs.vp.toy2d import get_config as vp_toy2d
from training import open_run, train
from training.run import TrainedRun

SDE_NAMES = ("ve", "vp")
_DIGITS = {"ve": ve_digits, "vp": vp_digits}
_TOY = {"ve": ve_toy2d, "vp": vp_toy2d}


def _check_sde(sde: str) -> None:
    if sde not in SDE_NAMES:
        raise ValueError(f"sde must be one of {list(SDE_NAMES)}, got {sde!r}")


def _quiet(config, n_iters: int, seed: int) -> None:
    """Training fields shared by every experiment run: no snapshot PNGs, one final checkpoint."""
    tr = config.training
    config.seed = int(seed)
    tr.n_iters = int(n_iters)
    tr.snapshot_sampling = False
    tr.snapshot_freq = max(int(n_iters), 1)
    tr.snapshot_freq_for_preemption = 500
    tr.num_threads = 0                   # leave torch's thread count to the caller


def digits_config(sde: str = "vp", nf: int = 16, seed: int = 0, n_iters: int = 3000, arch: str | None = None):
    """``configs/<sde>/digits.py`` (continuous VE NCSN++ / VP DDPM++ on the 8x8 digits) with the network
    width ``nf``, ``config.seed``, ``n_iters`` training steps and optionally another network ``arch``."""
    _check_sde(sde)
    config = _DIGITS[sde]()
    _quiet(config, n_iters, seed)
    config.model.nf = int(nf)
    if arch is not None:
        config.model.name = str(arch)
    return config


def toy_config(sde: str = "vp", nf: int = 64, seed: int = 0, n_iters: int = 2000, toy: str = "two_mode"):
    """``configs/<sde>/toy2d.py`` (time-conditioned MLP on a 2-D toy set) with width ``nf``, seed, steps."""
    _check_sde(sde)
    config = _TOY[sde]()
    _quiet(config, n_iters, seed)
    config.model.nf = int(nf)
    config.data.toy = str(toy)
    return config


def run_name(config) -> str:
    """``<sde>_<data>_<network>_nf<width>_s<seed>_it<steps>``: the fields the experiments vary."""
    data = config.data.dataset if config.data.dataset != "toy2d" else f"toy-{config.data.toy}"
    return (f"{config.training.sde}_{data}_{config.model.name}_nf{int(config.model.nf)}_s{int(config.seed)}"
            f"_it{int(config.training.n_iters)}")


def trained(config, root: str = "exp_out", progress: bool = False) -> TrainedRun:
    """Train ``config`` into ``root/run_name(config)`` (resuming or skipping what is there) and open it.

    The returned run carries ``train_seconds`` (0 when the cached checkpoint was already complete)."""
    workdir = os.path.join(root, run_name(config))
    t0 = time.perf_counter()
    train(config, workdir, progress=progress)
    run = open_run(config, workdir, device="cpu")
    run.model.requires_grad_(False)
    run.train_seconds = time.perf_counter() - t0
    return run


def no_grad_score(run: TrainedRun):
    """The run's score function evaluated under ``torch.no_grad`` (sampling and encoding need no graph)."""
    score_fn = run.score_fn

    def fn(x, t):
        with torch.no_grad():
            return score_fn(x, t)
    return fn
