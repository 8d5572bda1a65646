"""Table 1 of the score SDE paper (Song et al. 2021) on the 8x8 digits: predictor-only, corrector-only
and predictor-corrector sampling at equal compute, for three predictors under a VE and a VP SDE.

For each SDE a small continuous-time model is trained once (``experiments.trained_runs``: configs/ve/digits.py
NCSN++, configs/vp/digits.py DDPM++; cached under ``exp_out/``) and sampled with ``samplers.pc_sample``
on the paper's equal-compute grid, with N scaled down from 1000 (default N = 100):

    P_N   predictor only, N steps                       (NFE N)
    P_2N  predictor only, 2N steps                      (NFE 2N)
    C_2N  corrector only (Langevin), 2N noise levels    (NFE 2N + 1: the final denoising step; the same
                                                         for every predictor)
    PC_N  N predictor steps + one corrector step each   (NFE 2N)

Predictors: ``ancestral_sampling``, ``reverse_diffusion`` and the probability flow (``reverse_diffusion``
with ``probability_flow=True``, the paper's "probability flow" row). The corrector is ``langevin`` with the
published batch-mean step rule; its signal-to-noise ratio r is tuned per SDE on a seed kept apart from the
evaluation seeds, as the paper tunes r: for PC_N (with the reverse-diffusion predictor) from
``snr_grid_pc`` and for C_2N from ``snr_grid_c``, by the mean z-score of the statistics below against
their real-data floor. The models are continuous-time, so every cell runs on the same network with the
SDE discretized into N' = N or 2N steps (``config.model.num_scales``; a discrete model's labels would
tie it to one ladder). Every run returns the noise-free mean of its last step (``denoise=True``).

Sample quality (``experiments.sample_quality``; lower is better) of ``n_samples`` samples, clipped to the
data range and mapped to the [0, 1] pixel space of the VE digits, against the 300 held-out test digits:

* ``mmd``: squared RBF-kernel MMD on pixels (bandwidth fixed from the test digits);
* ``kid``: KID (squared MMD with the cubic kernel) on the features of the toolkit's clean digits
  classifier (``training.classifier``, trained once into ``exp_out/``; 98% test accuracy): the 8x8
  analogue of the paper's FID;
* ``entropy``: that classifier's mean class entropy (nats): how clearly each sample is one digit.

Their noise floor: the same statistics between two random halves of the test digits (which neither the
models nor the classifier saw), ``floor_repeats`` splits. Every cell is repeated over ``seeds`` with the
same x_T and noise seed in every cell of a seed (paired comparisons); tables give mean +- standard
deviation over the seeds, and each claim of the paper is a paired comparison judged seed by seed
(``experiments.pc_grid.claims``).

    python -m experiments.pc_table --out docs/figures      # -> docs/figures/pc_table.png, pc_table_samples.png
                                                           #    and experiments/results/pc_table.{md,json}

``--quick`` (the tests) replaces the trained models by the exact score of a 16-D Gaussian mixture
(``sde_lib.mixture``; N = 25, RBF MMD against exact samples); see ``QUICK``.
"""
from __future__ import annotations

import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from experiments.common import parse_args, pyplot, report, save_figure, settings
from experiments.pc_grid import CELLS, PREDICTOR_ROWS, cell_key, claims, digits_tasks, mixture_tasks, run_grid, tune_snr
from experiments.sample_quality import mean_std

NAME = "pc_table"
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

DEFAULTS = dict(source="digits", sdes=("ve", "vp"), n_iters=3000, nf=16, train_seed=0, N=100, n_samples=256,
                seeds=(0, 1, 2), snr=None, snr_grid_pc=(0.04, 0.08, 0.16, 0.32), snr_grid_c=(0.08, 0.16, 0.32, 0.64),
                tune_seed=100, tune_samples=256, floor_repeats=20, root="exp_out", results=RESULTS, n_show=8)
QUICK = dict(source="mixture", N=25, n_samples=512, seeds=(0, 1, 2), snr_grid_pc=(0.08, 0.16, 0.32),
             snr_grid_c=(0.16, 0.32, 0.64), tune_samples=512, floor_repeats=5, results=None)


def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """Train (or open) the models, tune r, run the grid over the seeds; return the table and the claims."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    cfg["seeds"] = tuple(int(s) + int(seed) for s in cfg["seeds"])
    t0 = time.perf_counter()
    if cfg["source"] == "digits":
        tasks = digits_tasks(cfg["sdes"], nf=int(cfg["nf"]), seed=int(cfg["train_seed"]),
                             n_iters=int(cfg["n_iters"]), root=str(cfg["root"]), progress=progress)
    elif cfg["source"] == "mixture":
        tasks = mixture_tasks(cfg["sdes"])
    else:
        raise ValueError(f"source must be 'digits' or 'mixture', got {cfg['source']!r}")
    t_train = time.perf_counter() - t0
    figures: dict = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                     "sdes": {}, "train_seconds": t_train}
    samples_for_plot = {}
    for name, task in tasks.items():
        t1 = time.perf_counter()
        floor_values = task.judge.floor(int(cfg["n_samples"]), int(cfg["floor_repeats"]),
                                        torch.Generator().manual_seed(12345))
        floor = {k: mean_std(v) for k, v in floor_values.items()}
        if cfg["snr"] is None:
            tuning = tune_snr(task, int(cfg["N"]), tuple(cfg["snr_grid_pc"]), tuple(cfg["snr_grid_c"]),
                              int(cfg["tune_samples"]), int(cfg["tune_seed"]), floor, progress)
            snr_pc, snr_c = tuning["snr_pc"], tuning["snr_c"]
        else:
            tuning, snr_pc, snr_c = None, float(cfg["snr"]), float(cfg["snr"])
        grid = run_grid(task, int(cfg["N"]), int(cfg["n_samples"]), cfg["seeds"], snr_pc, snr_c, progress)
        figures["sdes"][name] = {
            "snr_pc": snr_pc, "snr_c": snr_c, "tuning": tuning, "floor": floor, "floor_values": floor_values,
            "cells": grid["cells"], "claims": {s: claims(grid["cells"], s, floor[s]) for s in task.judge.names},
            "seconds": time.perf_counter() - t1, "extra": task.extra}
        samples_for_plot[name] = grid["samples"]
    figures["markdown"] = markdown(figures)
    figures["png"] = _plot(figures, out)
    figures["samples_png"] = _plot_samples(samples_for_plot, int(cfg["n_show"]), out) \
        if cfg["source"] == "digits" else None
    figures["seconds"] = time.perf_counter() - t0
    if cfg["results"]:
        _write_results(figures, str(cfg["results"]))
    return figures


# ----------------------------------------------------------------------------- table
def _fmt(ms: tuple[float, float], scale: float) -> str:
    return f"{ms[0] * scale:.2f} +- {ms[1] * scale:.2f}"


def markdown(figures: dict) -> str:
    """Per SDE: one table per statistic (x 1000; rows = predictors, columns = the four cells) and the claims
    (paired differences x 1000, mean +- std over seeds, and the verdict of each statistic)."""
    lines = []
    n_seeds = len(figures["settings"]["seeds"])
    for name, res in figures["sdes"].items():
        for stat in res["floor"]:
            lines.append(f"**{name.upper()}, {stat} x 1e3** (mean +- std over {n_seeds} seeds; real data: "
                         f"{_fmt(res['floor'][stat], 1e3)}; r = {res['snr_pc']:g} (PC), {res['snr_c']:g} (C))")
            lines.append("")
            lines.append("| predictor | " + " | ".join(CELLS) + " |")
            lines.append("|---|" + "---|" * len(CELLS))
            for pred in PREDICTOR_ROWS:
                row = [_fmt(mean_std(res["cells"][cell_key(pred, c)][stat]), 1e3) for c in CELLS]
                lines.append(f"| {pred} | " + " | ".join(row) + " |")
            lines.append("")
        stats = list(res["claims"])
        lines.append(f"**{name.upper()} claims** (paired difference better - worse x 1e3, mean +- std over seeds; "
                     f"verdict: all seeds agree and |mean| > 2 s.e.)")
        lines.append("")
        lines.append("| claim | " + " | ".join(stats) + " |")
        lines.append("|---|" + "---|" * len(stats))
        for i, first in enumerate(res["claims"][stats[0]]):
            cells = []
            for st in stats:
                c = res["claims"][st][i]
                extra = f", excess ratio {c['excess_ratio']:.2g}" if "excess_ratio" in c else ""
                cells.append(f"{c['verdict']} ({_fmt(c['difference'], 1e3)}{extra})")
            lines.append(f"| {first['claim']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _write_results(figures: dict, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{NAME}.md"), "w") as f:
        f.write(figures["markdown"] + "\n")
    slim = {k: v for k, v in figures.items() if k != "markdown"}
    with open(os.path.join(folder, f"{NAME}.json"), "w") as f:
        json.dump(slim, f, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------- figures
def _plot(figures: dict, out: str | None):
    """Bars: one row per SDE, one panel per statistic; groups = predictors, bars = cells (+- std over seeds);
    grey band: real data (mean +- std)."""
    plt = pyplot()
    names = list(figures["sdes"])
    stats = list(figures["sdes"][names[0]]["floor"])
    fig, axes = plt.subplots(len(names), len(stats), figsize=(4.4 * len(stats), 3.2 * len(names)), squeeze=False)
    colors = {"P_N": "#9ecae1", "P_2N": "#3182bd", "C_2N": "#fdae6b", "PC_N": "#31a354"}
    width = 0.2
    for i, name in enumerate(names):
        res = figures["sdes"][name]
        for j, stat in enumerate(stats):
            ax = axes[i, j]
            for k, cell in enumerate(CELLS):
                ms = [mean_std(res["cells"][cell_key(pred, cell)][stat]) for pred in PREDICTOR_ROWS]
                xs = [p + (k - 1.5) * width for p in range(len(PREDICTOR_ROWS))]
                ax.bar(xs, [m * 1e3 for m, _ in ms], width, yerr=[s * 1e3 for _, s in ms], color=colors[cell],
                       label=cell, capsize=2)
            fm, fs = res["floor"][stat]
            ax.axhspan((fm - fs) * 1e3, (fm + fs) * 1e3, color="grey", alpha=0.35, label="real data")
            ax.axhline(0., color="k", lw=0.5)
            ax.set_xticks(range(len(PREDICTOR_ROWS)))
            ax.set_xticklabels([p.replace("_", " ") for p in PREDICTOR_ROWS], fontsize=8)
            ax.set_title(f"{name.upper()}: {stat} x 1e3 (N = {figures['settings']['N']}, lower is better)", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, NAME)


def _plot_samples(samples: dict, n_show: int, out: str | None):
    """Sample grids of the first seed: one row per (SDE, predictor), one block per cell."""
    plt = pyplot()
    rows = [(n, p) for n in samples for p in PREDICTOR_ROWS]
    fig, axes = plt.subplots(len(rows), len(CELLS), figsize=(2.2 * len(CELLS), 1.2 * len(rows)), squeeze=False)
    for i, (name, pred) in enumerate(rows):
        for j, cell in enumerate(CELLS):
            x = samples[name][cell_key(pred, cell)][:n_show, 0]
            strip = torch.cat([torch.cat(list(x[k * (n_show // 2):(k + 1) * (n_show // 2)]), 1) for k in range(2)], 0)
            ax = axes[i, j]
            ax.imshow(strip.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cell, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{name.upper()}\n{pred.replace('_', ' ')}", fontsize=7)
    return save_figure(fig, out, f"{NAME}_samples")


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress)
    lines = [fig["markdown"], f"figure: {fig['png']}", f"samples: {fig['samples_png']}",
             f"seconds: {fig['seconds']:.0f} (training {fig['train_seconds']:.0f})"]
    report(NAME, {k: v for k, v in fig.items() if k != "markdown"}, lines)
    return fig


if __name__ == "__main__":
    main()
