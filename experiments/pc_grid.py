"""The equal-compute sampler grid of ``experiments.pc_table``: tasks (a score function with its SDE and a
judge of sample quality), the four cells per predictor, the tuning of the corrector's r, and the claims.

Cells at a scaled-down N (``samplers.pc_sample`` on the SDE with N' levels; NFE counted and checked):

    P_N  = (N levels, predictor, no corrector)          NFE N
    P_2N = (2N levels, predictor, no corrector)         NFE 2N
    C_2N = (2N levels, no predictor, 1 Langevin step)   NFE 2N + 1 (pc_sample's final denoising step of a
                                                        corrector-only run, x + s^2 score at eps)
    PC_N = (N levels, predictor + 1 Langevin step)      NFE 2N

Every run returns the noise-free final mean (``denoise=True``, the paper's setting).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from evaluation.sampler_comparison import rebuild_sde
from samplers import pc_sample
from sde_lib import VESDE, VPSDE
from sde_lib.base import SDE
from sde_lib.mixture import GaussianMixture

from .sample_quality import Judge, classifier_probs, last_layer_features, mean_std

Tensor = torch.Tensor
CELLS = ("P_N", "P_2N", "C_2N", "PC_N")
#: table row -> (pc_sample predictor, probability_flow)
PREDICTOR_ROWS = {"ancestral_sampling": ("ancestral_sampling", False),
                  "reverse_diffusion": ("reverse_diffusion", False),
                  "probability_flow": ("reverse_diffusion", True)}


@dataclasses.dataclass
class Task:
    """What the grid samples from: ``sde_for(n)`` (the SDE with n discretization steps), ``score_fn``,
    the data ``shape``, ``to_eval`` (model space -> the judge's space) and the ``judge``."""
    sde_for: Callable[[int], SDE]
    score_fn: Callable[[Tensor, Tensor], Tensor]
    shape: tuple[int, ...]
    to_eval: Callable[[Tensor], Tensor]
    judge: Judge
    extra: dict = dataclasses.field(default_factory=dict)


def cell_key(row: str | None, cell: str) -> str:
    """"<row>/<cell>", or "C_2N" (corrector only: the same for every predictor row)."""
    return "C_2N" if cell == "C_2N" else f"{row}/{cell}"


def cell_plan(cell: str, row: str | None, N: int, snr_pc: float, snr_c: float) -> tuple[int, dict, int]:
    """(levels, pc_sample keyword arguments, expected NFE) of one cell."""
    if cell == "C_2N":
        return 2 * N, dict(predictor="none", corrector="langevin", snr=snr_c, n_steps=1), 2 * N + 1
    if row not in PREDICTOR_ROWS:
        raise ValueError(f"row must be one of {list(PREDICTOR_ROWS)}, got {row!r}")
    pred, pf = PREDICTOR_ROWS[row]
    if cell == "P_N":
        return N, dict(predictor=pred, probability_flow=pf, corrector="none"), N
    if cell == "P_2N":
        return 2 * N, dict(predictor=pred, probability_flow=pf, corrector="none"), 2 * N
    if cell == "PC_N":
        return N, dict(predictor=pred, probability_flow=pf, corrector="langevin", snr=snr_pc, n_steps=1), 2 * N
    raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")


def sample_cell(task: Task, cell: str, row: str | None, N: int, z: Tensor, seed: int, snr_pc: float,
                snr_c: float, progress: bool = False) -> tuple[Tensor, int]:
    """Samples of one cell from the starting points ``z`` (noise seeded by ``seed``), in the judge's space."""
    levels, kwargs, nfe_expected = cell_plan(cell, row, N, snr_pc, snr_c)
    g = torch.Generator().manual_seed(1000 + int(seed))
    x, nfe = pc_sample(task.sde_for(levels), task.score_fn, tuple(z.shape), z=z.clone(), generator=g,
                       progress=progress, **kwargs)
    if nfe != nfe_expected:
        raise RuntimeError(f"cell {cell_key(row, cell)}: pc_sample made {nfe} score calls, expected {nfe_expected}")
    return task.to_eval(x), nfe


def starting_points(task: Task, N: int, n: int, seed: int) -> Tensor:
    """x_T ~ prior, seeded by ``seed`` (the prior does not depend on the number of levels)."""
    return task.sde_for(N).prior_sampling((n, *task.shape), generator=torch.Generator().manual_seed(int(seed)))


def run_grid(task: Task, N: int, n: int, seeds, snr_pc: float, snr_c: float, progress: bool = False) -> dict:
    """Every cell for every seed: {"cells": {key: {stat: [per seed], "nfe", "seconds": [...]}},
    "samples": {key: the first seed's samples (16)}}."""
    cells: dict = {}
    samples: dict = {}
    plan = [(None, "C_2N")] + [(row, c) for row in PREDICTOR_ROWS for c in CELLS if c != "C_2N"]
    for i, seed in enumerate(seeds):
        z = starting_points(task, N, n, seed)
        for row, cell in plan:
            key = cell_key(row, cell)
            t0 = time.perf_counter()
            x, nfe = sample_cell(task, cell, row, N, z, seed, snr_pc, snr_c, progress)
            seconds = time.perf_counter() - t0
            stats = task.judge(x)
            entry = cells.setdefault(key, {"nfe": nfe, "seconds": [], "finite": [],
                                           **{s: [] for s in task.judge.names}})
            entry["seconds"].append(seconds)
            for s in list(task.judge.names) + ["finite"]:
                entry[s].append(stats[s])
            if i == 0:
                samples[key] = x[:16].detach().cpu()
    return {"cells": cells, "samples": samples}


def zscore(stats: dict, floor: dict) -> float:
    """Mean over the statistics of (value - floor mean) / floor std: one number on the statistics' own noise
    scales (``floor``: {name: (mean, std)})."""
    return sum((stats[k] - floor[k][0]) / max(floor[k][1], 1e-12) for k in floor) / len(floor)


def tune_snr(task: Task, N: int, grid_pc, grid_c, n: int, seed: int, floor: dict, progress: bool = False) -> dict:
    """r for PC_N (reverse-diffusion predictor) from ``grid_pc`` and for C_2N from ``grid_c``: the value with
    the smallest ``zscore`` of its samples, on one seed kept apart from the evaluation seeds."""
    z = starting_points(task, N, n, seed)
    out: dict = {"criterion": "mean z-score over " + ", ".join(floor), "pc": {}, "c": {}}
    for part, cell, row, grid in (("pc", "PC_N", "reverse_diffusion", grid_pc), ("c", "C_2N", None, grid_c)):
        for r in grid:
            x, _ = sample_cell(task, cell, row, N, z, seed, float(r), float(r), progress)
            st = task.judge(x)
            out[part][f"{float(r):g}"] = {**{k: st[k] for k in floor}, "z": zscore(st, floor)}
        out[f"snr_{part}"] = float(min(out[part], key=lambda k: out[part][k]["z"]))
    return out


# ----------------------------------------------------------------------------- claims
def _per_seed(cells: dict, key: str, stat: str) -> Tensor:
    return torch.tensor(cells[key][stat], dtype=torch.float64)


def verdict(d: Tensor) -> tuple[str, int]:
    """Verdict on per-seed paired differences ``d`` where the claim says d < 0: "holds" when every seed
    has d < 0 and |mean| > 2 standard errors, "opposite" when every seed has d > 0 with the same margin,
    else "within noise"; and the number of seeds with d < 0."""
    n = d.numel()
    m = float(d.mean())
    se = float(d.std()) / n ** 0.5 if n > 1 else 0.
    agree = int((d < 0).sum())
    if agree == n and -m > 2 * se:
        return "holds", agree
    if agree == 0 and m > 2 * se:
        return "opposite", agree
    return "within noise", agree


def _comparison(claim: str, better: Tensor, worse: Tensor, floor: tuple[float, float] | None = None) -> dict:
    """The claim "``better`` < ``worse``" on per-seed values: the paired difference better - worse
    (mean +- std over seeds), its verdict, and with ``floor`` (mean, std of real data) the ratio of the
    mean excesses over the floor, (worse - floor) / max(better - floor, floor std)."""
    d = better - worse
    m, s = mean_std(d.tolist())
    v, agree = verdict(d)
    out = {"claim": claim, "verdict": v, "difference": [m, s], "seeds_agree": agree, "n_seeds": d.numel(),
           "better": mean_std(better.tolist()), "worse": mean_std(worse.tolist())}
    if floor is not None:
        eb, ew = float(better.mean()) - floor[0], float(worse.mean()) - floor[0]
        out["excess_ratio"] = ew / max(eb, floor[1], 1e-12)
    return out


def claims(cells: dict, stat: str, floor: tuple[float, float]) -> list[dict]:
    """The paper's three claims as paired comparisons on ``stat`` (lower is better), seed by seed:

    1. "PC_N beats P_2N": PC_N < P_2N for each predictor;
    2. "C_2N is far worse": P_2N < C_2N and PC_N < C_2N for each predictor, with the ratio of the
       excesses over the real-data ``floor`` (mean, std) (C_2N - floor) / max(cell - floor, floor std)
       (the paper's FIDs: 20.43 against 3.6-4.8, about 4-6);
    3. "the probability flow gains most from a corrector": the gain P_2N - PC_N of every other
       predictor < that of the probability flow.
    """
    out = []
    for row in PREDICTOR_ROWS:
        out.append(_comparison(f"PC_N < P_2N ({row})", _per_seed(cells, f"{row}/PC_N", stat),
                               _per_seed(cells, f"{row}/P_2N", stat)))
    c = _per_seed(cells, "C_2N", stat)
    for row in PREDICTOR_ROWS:
        for cell in ("P_2N", "PC_N"):
            out.append(_comparison(f"{cell} < C_2N ({row})", _per_seed(cells, f"{row}/{cell}", stat), c, floor))
    gain = {row: _per_seed(cells, f"{row}/P_2N", stat) - _per_seed(cells, f"{row}/PC_N", stat)
            for row in PREDICTOR_ROWS}
    for row in PREDICTOR_ROWS:
        if row != "probability_flow":
            out.append(_comparison(f"gain P_2N - PC_N: {row} < probability_flow", gain[row],
                                   gain["probability_flow"]))
    return out


# ----------------------------------------------------------------------------- tasks
def clean_classifier(root: str, progress: bool = False):
    """The toolkit's clean digits classifier (``training.classifier``) on the VE digits' pixel space
    ([0, 1]), trained once into ``root/digits_clean_classifier``; returns (model, test accuracy)."""
    import os

    from scoredata import get_labeled_dataset
    from training.classifier import accuracy, load_classifier, train_classifiers
    from .trained_runs import digits_config

    config = digits_config("ve")
    workdir = os.path.join(root, "digits_clean_classifier")
    try:
        model = load_classifier(config, workdir, "clean")
    except ValueError:
        train_classifiers(config, workdir, progress=progress, kinds=("clean",))
        model = load_classifier(config, workdir, "clean")
    model.requires_grad_(False)
    x, y = get_labeled_dataset(config, "test")
    return model, accuracy(model, x, y)


def digits_tasks(sdes, nf: int = 16, seed: int = 0, n_iters: int = 3000, root: str = "exp_out",
                 progress: bool = False) -> dict:
    """One task per SDE name ("ve", "vp"): the trained digits model (cached under ``root``), judged in the
    VE digits' [0, 1] pixel space against the test split (floor: its two halves against each other)."""
    from scoredata import get_dataset
    from .trained_runs import digits_config, no_grad_score, trained

    space = digits_config("ve")
    clf, acc = clean_classifier(root, progress)
    judge = Judge(get_dataset(space, "test"), pool=None, features=last_layer_features(clf, clf.fc_out),
                  probs=classifier_probs(clf), clamp=(0., 1.))
    tasks = {}
    for name in sdes:
        config = digits_config(name, nf=nf, seed=seed, n_iters=n_iters)
        run = trained(config, root=root, progress=progress)
        centred = bool(config.data.centered)
        tasks[name] = Task(sde_for=lambda n, sde=run.sde: rebuild_sde(sde, n), score_fn=no_grad_score(run),
                           shape=tuple(config.data.shape),
                           to_eval=(lambda x: (x + 1) / 2) if centred else (lambda x: x), judge=judge,
                           extra={"workdir": run.workdir, "step": run.step, "train_seconds": run.train_seconds,
                                  "classifier_test_accuracy": acc})
    return tasks


def quick_mixture(dim: int = 16) -> GaussianMixture:
    """A 16-D stand-in for the digits with a closed-form score: four modes of different widths
    (std 0.05 / 0.1 / 0.2 / 0.3, weights 0.1 / 0.2 / 0.3 / 0.4) at random points of norm 2."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(4, dim, generator=g, dtype=torch.float64)
    mu = 2. * mu / mu.norm(dim=1, keepdim=True)
    return GaussianMixture([0.1, 0.2, 0.3, 0.4], mu, [0.05, 0.1, 0.2, 0.3])


def mixture_tasks(sdes, n_reference: int = 2000, n_pool: int = 4000) -> dict:
    """One task per SDE name with the exact score of ``quick_mixture`` (VE: sigma_max 5, sigma_min 0.01;
    VP: beta 0.1 -> 20), judged by RBF MMD against exact samples (floor: more exact samples)."""
    mix = quick_mixture()
    g = torch.Generator().manual_seed(7)
    judge = Judge(mix.sample(n_reference, generator=g), pool=mix.sample(n_pool, generator=g))
    makers = {"ve": lambda n: VESDE(sigma_min=0.01, sigma_max=5., N=n), "vp": lambda n: VPSDE(N=n)}
    tasks = {}
    for name in sdes:
        if name not in makers:
            raise ValueError(f"sdes must be among {list(makers)}, got {name!r}")
        tasks[name] = Task(sde_for=makers[name], score_fn=mix.score_fn(makers[name](1000)), shape=mix.data_shape,
                           to_eval=lambda x: x, judge=judge)
    return tasks
