#!/usr/bin/env python
"""Compare samplers by quality per score evaluation (NFE), on the same axes.

Runs every predictor x corrector pair of ``samplers.PREDICTORS`` / ``CORRECTORS`` (``pc_sample`` at
several N), the probability-flow ODE at several tolerances (``ode_sample``), NCSN annealed Langevin
dynamics and every fast solver of ``samplers.fast.SOLVERS`` at several step counts, and writes
``compare.md`` (table), ``compare.json`` and ``compare.png`` (quality against NFE, log x) to ``--out``.

Quality: 2-D data -> sliced Wasserstein distance to reference samples; with the closed-form mixture
also the mode-weight error and the narrow mode's spread, each relative to the converged probability-
flow ODE (dopri5, rtol = atol = 1e-7) started from the same points z as every deterministic solver.
Higher-dimensional data (images) -> ``evaluation.distances.mmd_rbf`` against the test split.

    python benchmarks/compare_samplers.py --out results/compare            # 2-D mixture, closed form
    python benchmarks/compare_samplers.py --quick --out /tmp/compare       # a minute-scale smoke run
    python benchmarks/compare_samplers.py --config configs/vp/digits.py --workdir runs/digits_vp \\
        --out runs/digits_vp/compare                                       # a trained checkpoint

The comparison itself is library code: ``evaluation.sampler_comparison.compare(sde, score_fn,
reference_samples, shape, ...) -> list[dict]`` (one row per run) and ``evaluation.comparison_report.write_report``
for the three files (``--mode compare`` calls the same functions); this script only sets up the score.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# re-exported for callers of the old benchmark-module API (compare, write_report, markdown_table, the grids)
from evaluation.comparison_report import markdown_table, write_report  # noqa: E402,F401
from evaluation.sampler_comparison import FULL_GRID, QUICK_GRID, compare  # noqa: E402,F401


# ----------------------------------------------------------------------------- command line
def _load_config(path: str):
    spec = importlib.util.spec_from_file_location("compare_config", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--config must be a configs/<sde>/<name>.py file, got {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def closed_form_setup(sde_name: str, n: int, seed: int):
    """(sde, score_fn, reference samples, mixture) for the 2-D 0.2/0.8 mixture with its exact score."""
    from sde_lib.mixture import two_mode_mixture
    from tests.analytic import make_sdes

    mixture = two_mode_mixture()
    sde = make_sdes()[sde_name]
    reference = mixture.sample(n, generator=torch.Generator().manual_seed(seed + 100))
    return sde, mixture.score_fn(sde), reference, mixture


def checkpoint_setup(config_path: str, workdir: str, n: int, device: str):
    """(sde, score_fn, test data, sde_factory, (config, step, path)) for a trained checkpoint in ``workdir``."""
    from training.run import open_run

    config = _load_config(config_path)
    run = open_run(config, workdir, device=device)
    return run.sde, run.score_fn, run.test_data()[:n], run.sampling_sde, (config, run.step, run.checkpoint)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "compare"))
    ap.add_argument("--quick", action="store_true", help="small grid and 1024 samples (about a minute)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--sde", default="vpsde", choices=("vpsde", "vesde", "subvpsde"),
                    help="SDE for the closed-form mixture")
    ap.add_argument("--n", type=int, default=None, help="samples per run (default 8192; 1024 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=None, help="config file of a trained model (with --workdir)")
    ap.add_argument("--workdir", default=None, help="workdir holding checkpoints/ of a trained model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", default="pc,ode,ald,fast")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    n = args.n or (1024 if args.quick else 8192)
    families = [f for f in args.families.split(",") if f]
    if bool(args.config) != bool(args.workdir):
        ap.error("--config and --workdir go together")
    if args.config:
        sde, score_fn, reference, factory, (config, step, path) = checkpoint_setup(args.config, args.workdir, n,
                                                                                    args.device)
        n = min(n, reference.shape[0])
        shape = (n, *reference.shape[1:])
        title = f"{os.path.basename(args.config)} step {step} ({sde!r}), {n} samples"
        rows = compare(sde, score_fn, reference, shape, sde_factory=factory, seed=args.seed, quick=args.quick,
                       families=families, device=args.device)
        meta = {"config": args.config, "checkpoint": path, "step": step, "n": n}
    else:
        sde, score_fn, reference, mixture = closed_form_setup(args.sde, n, args.seed)
        title = f"2-D 0.2/0.8 mixture, exact score, {sde!r}, {n} samples"
        rows = compare(sde, score_fn, reference, (n, 2), mixture=mixture, seed=args.seed, quick=args.quick,
                       families=families, device=args.device)
        meta = {"sde": args.sde, "n": n, "seed": args.seed}
    meta.update({"quick": args.quick, "threads": args.threads, "torch": torch.__version__})
    paths = write_report(rows, args.out, title, meta)
    print("wrote", ", ".join(paths.values()))


if __name__ == "__main__":
    main()
