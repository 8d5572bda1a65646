#!/usr/bin/env python
"""Compare samplers by quality per score evaluation (NFE), on the same axes.

Runs every predictor x corrector pair of ``samplers.PREDICTORS`` / ``CORRECTORS`` (``pc_sample`` at
several N), the probability-flow ODE at several tolerances (``ode_sample``), NCSN annealed Langevin
dynamics and every fast solver of ``samplers.fast.SOLVERS`` at several step counts, and writes
``compare.md`` (table), ``compare.json`` and ``compare.png`` (quality against NFE, log x) to ``--out``.

Quality: 2-D data -> sliced Wasserstein distance to reference samples; with the closed-form mixture
also the mode-weight error and the narrow mode's spread, each relative to the converged probability-
flow ODE (dopri5, rtol = atol = 1e-7) started from the same points z as every deterministic solver.
Higher-dimensional data (images) -> ``quality.mmd_rbf`` against the test split.

    python benchmarks/compare_samplers.py --out results/compare            # 2-D mixture, closed form
    python benchmarks/compare_samplers.py --quick --out /tmp/compare       # a minute-scale smoke run
    python benchmarks/compare_samplers.py --config configs/vp/digits.py --workdir runs/digits_vp \\
        --out runs/digits_vp/compare                                       # a trained checkpoint

The core is ``compare(sde, score_fn, reference_samples, shape, ...) -> list[dict]`` (one row per run),
with ``write_report(rows, out_dir, title)`` for the three files.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
import time
from typing import Callable, Iterable

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from plotting import plot_comparison  # noqa: E402
from quality import mmd_rbf, mode_spread, mode_weights_error, sliced_wasserstein  # noqa: E402
from sde_lib.base import SDE  # noqa: E402

Tensor = torch.Tensor

#: what runs: pc -> N values; ode -> tolerances; ald -> steps per noise level (L = 10 levels);
#: fast -> solver name -> step counts (or adaptive tolerances)
FULL_GRID = {
    "pc": (100, 300, 1000),
    "ode": (1e-2, 1e-3, 1e-4, 1e-5),
    "ald": (3, 10, 30, 100),
    "fast": {
        "heun": (3, 4, 6, 8, 11, 16, 21),
        "heun_angle": (3, 4, 6, 8, 11, 16, 21),
        "ddim": (10, 20, 50),
        "dpm_solver_2": (6, 8, 10, 12, 15, 20, 25),
        "dpm_solver_3": (6, 8, 10, 12, 15, 20, 25),
        "adaptive_sde": ((0.1, 0.02), (0.05, 0.0078), (0.02, 0.005), (0.01, 0.002)),
        "torchsde": (25, 100),
    },
}
QUICK_GRID = {
    "pc": (50, 200),
    "ode": (1e-2, 1e-4),
    "ald": (3, 20),
    "fast": {
        "heun": (6, 11),
        "heun_angle": (6, 11),
        "dpm_solver_2": (10, 15),
        "dpm_solver_3": (10, 15),
        "adaptive_sde": ((0.05, 0.0078),),
        "torchsde": (50,),
    },
}
QUICK_TORCHSDE = ("euler", "srk")


# ----------------------------------------------------------------------------- helpers
def rebuild_sde(sde: SDE, N: int) -> SDE:
    """The same SDE with ``N`` discretization steps (constructor arguments read back from the object)."""
    aliases = {"beta_min": "beta_0", "beta_max": "beta_1"}
    kwargs = {}
    for name, p in inspect.signature(type(sde).__init__).parameters.items():
        if name in ("self", "N") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        attr = name if hasattr(sde, name) else aliases.get(name)
        if attr is None or not hasattr(sde, attr):
            raise ValueError(f"sde_factory is needed: cannot rebuild {type(sde).__name__} (no attribute {name!r})")
        kwargs[name] = getattr(sde, attr)
    return type(sde)(N=int(N), **kwargs)


def sigma_score_from(sde: SDE, score_fn: Callable) -> Callable[[Tensor, Tensor], Tensor]:
    """Noise-conditional score s(y, sigma) in the VE-equivalent variable y = x / m(t) (NCSN's view of
    any SDE): s = m score(m y, t(sigma)) with sigma = s(t) / m(t)."""
    def fn(y: Tensor, sigma: Tensor) -> Tensor:
        t = sde.t_from_noise_level(sigma.to(torch.float64)).to(y.dtype)
        m = sde.marginal_coeffs(t)[0]
        mv = m.reshape(-1, *([1] * (y.dim() - 1)))
        return mv * score_fn(y * mv, t)
    return fn


def _scalar(sde: SDE, fn: str, v: float) -> float:
    return float(getattr(sde, fn)(torch.tensor([v], dtype=torch.float64))[0])


def ald_sigmas(sde: SDE, reference: Tensor, eps: float = 1e-3, levels: int = 10) -> list[float]:
    """NCSN geometric ladder: sigma_1 = the largest pairwise distance of (a subset of) the data
    (NCSNv2 technique 1, capped at sigma(T)), sigma_L = sigma(eps)."""
    ref = reference[:1000].reshape(min(1000, reference.shape[0]), -1).to(torch.float64)
    s1 = min(float(torch.cdist(ref, ref).max()), _scalar(sde, "noise_level", sde.T))
    sL = _scalar(sde, "noise_level", eps)
    return [s1 * (sL / s1) ** (i / (levels - 1)) for i in range(levels)]


class Quality:
    """Quality of a sample set: SW (2-D), + mode-weight error and narrow spread (closed-form mixture),
    or MMD (images); relative figures against the converged probability-flow ODE once it is set."""

    def __init__(self, reference: Tensor, mixture=None):
        self.reference = reference.detach().to("cpu", torch.float64)
        self.mixture = mixture
        self.low_dim = reference[0].numel() <= 3
        self.narrow = int(torch.argmin(mixture.stds)) if mixture is not None else None
        self.base = None
        self.base_weights = None

    def set_converged(self, converged: Tensor) -> dict:
        self.base = self(converged)
        if self.mixture is not None:
            self.base_weights = self.mixture.mode_weights(converged.detach().to("cpu", torch.float64))
        return self(converged)

    def __call__(self, x: Tensor) -> dict:
        x = x.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(x).all()):
            return {"finite": False}
        out = {"finite": True}
        if self.low_dim:
            out["sw"] = sliced_wasserstein(x, self.reference)
        else:
            n = min(1000, x.shape[0], self.reference.shape[0])
            out["mmd"] = mmd_rbf(x[:n], self.reference[:n])
        if self.mixture is not None:
            weights = self.mixture.mode_weights(x)
            out["mode_weight_err"] = mode_weights_error(weights, self.mixture.weights)
            out["spread"] = mode_spread(x, self.mixture.component_index(x), self.narrow)
            if self.base_weights is not None:
                out["mode_weight_err_vs_ode"] = mode_weights_error(weights, self.base_weights)
        if self.base is not None:
            if "sw" in out:
                out["sw_rel"] = out["sw"] / self.base["sw"] - 1
            if "spread" in out:
                out["spread_rel"] = out["spread"] / self.base["spread"] - 1
        return out


# ----------------------------------------------------------------------------- the comparison
def compare(sde: SDE, score_fn: Callable, reference_samples: Tensor, shape, *, mixture=None,
            sde_factory: Callable[[int], SDE] | None = None, z: Tensor | None = None, seed: int = 0,
            quick: bool = False, grid: dict | None = None, families: Iterable[str] = ("pc", "ode", "ald", "fast"),
            converged_reference: bool | None = None, eps: float = 1e-3, device="cpu",
            log: Callable[[str], None] | None = print) -> list[dict]:
    """Run the sampler grid; one dict per run with family, sampler, setting, nfe, wall_s and quality.

    ``reference_samples``: data to compare with (exact mixture samples or the test split).
    ``mixture``: the closed-form ``GaussianMixture`` (adds mode-weight error and narrow-mode spread).
    ``sde_factory(N)``: the SDE with N steps for PC sampling (default: rebuilt from ``sde``).
    ``z``: common starting points at T (default: a prior draw from ``seed``); PC samplers and the ODE
    start from it too. ``converged_reference`` (default: on for 2-D data): compute the converged
    probability-flow ODE (dopri5, 1e-7) from z, for the relative columns.
    """
    import samplers
    from samplers.fast import SOLVERS, fast_sample
    from samplers.fast_reference import pf_ode_reference
    from samplers.fast_sde import TORCHSDE_METHODS

    grid = grid or (QUICK_GRID if quick else FULL_GRID)
    families = set(families)
    shape = tuple(int(s) for s in shape)
    log = log or (lambda s: None)
    factory = sde_factory or (lambda N: rebuild_sde(sde, N))
    if z is None:
        z = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(seed), device=device)
    low_dim = reference_samples[0].numel() <= 3
    quality = Quality(reference_samples, mixture)
    if converged_reference is None:
        converged_reference = low_dim
    rows: list[dict] = []
    if converged_reference:
        t0 = time.perf_counter()
        conv, nfe = pf_ode_reference(sde, score_fn, z.double() if low_dim else z, eps=eps)
        row = {"family": "ode", "sampler": "pf_ode_dopri5 (converged reference)", "setting": "tol=1e-07",
               "nfe": int(nfe), "wall_s": round(time.perf_counter() - t0, 3), **quality.set_converged(conv)}
        rows.append(row)
        log(_fmt_row(row))

    def record(family, sampler, setting, fn):
        gen = torch.Generator().manual_seed(seed + 1)
        t0 = time.perf_counter()
        try:
            x, nfe = fn(gen)
            row = {"family": family, "sampler": sampler, "setting": setting, "nfe": int(nfe),
                   "wall_s": round(time.perf_counter() - t0, 3), **quality(x)}
        except Exception as e:  # one broken combination must not stop the comparison
            row = {"family": family, "sampler": sampler, "setting": setting, "nfe": None, "wall_s": None,
                   "error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        log(_fmt_row(row))

    if "pc" in families:
        for N in grid["pc"]:
            pc_sde = factory(int(N))
            for p in sorted(samplers.PREDICTORS):
                for c in sorted(samplers.CORRECTORS):
                    if p == "none" and c == "none":
                        continue
                    record("pc", f"{p}+{c}", f"N={N}",
                           lambda g, p=p, c=c: samplers.pc_sample(pc_sde, score_fn, shape, predictor=p, corrector=c,
                                                                  z=z, generator=g, eps=eps, device=device))
    if "ode" in families:
        for tol in grid["ode"]:
            record("ode", "pf_ode_rk45", f"tol={tol:g}",
                   lambda g, tol=tol: samplers.ode_sample(sde, score_fn, shape, rtol=tol, atol=tol, z=z, eps=eps,
                                                          denoise=True, generator=g, device=device))
    if "ald" in families:
        sigmas = ald_sigmas(sde, reference_samples, eps)
        sscore = sigma_score_from(sde, score_fn)
        step_lr = 2e-5 * (sigmas[-1] / 0.01) ** 2          # NCSN's relative step alpha_L / sigma_L^2 = 0.2
        for n_each in grid["ald"]:
            record("ald", "annealed_langevin", f"L=10,n={n_each}",
                   lambda g, n_each=n_each: samplers.annealed_langevin(
                       sscore, sigmas, shape, n_steps_each=n_each, step_lr=step_lr, generator=g,
                       device=device, return_nfe=True))
    if "fast" in families:
        fast = grid["fast"]
        sigma_data = 2 * float(reference_samples.to(torch.float64).std(0).pow(2).mean().sqrt())
        for name, settings in fast.items():
            for st in settings:
                if name == "adaptive_sde":
                    rtol, atol = st
                    record("fast", name, f"rtol={rtol:g},atol={atol:g}",
                           lambda g, rtol=rtol, atol=atol: fast_sample(sde, score_fn, shape, "adaptive_sde", z=z,
                                                                       generator=g, rtol=rtol, atol=atol, eps=eps))
                elif name == "torchsde":
                    methods = QUICK_TORCHSDE if quick else sorted(TORCHSDE_METHODS)
                    for m in methods:
                        record("fast", f"torchsde_{m}", f"steps={st}",
                               lambda g, m=m, st=st: fast_sample(sde, score_fn, shape, f"torchsde_{m}", steps=st,
                                                                 z=z, generator=g, eps=eps))
                elif name == "heun_angle":
                    record("fast", "heun_angle", f"steps={st},sigma_data={sigma_data:.3g},logsnr",
                           lambda g, st=st: fast_sample(sde, score_fn, shape, "heun", steps=st, z=z, generator=g,
                                                        eps=eps, sigma_data=sigma_data, grid="logsnr"))
                elif name in SOLVERS:
                    record("fast", name, f"steps={st}",
                           lambda g, name=name, st=st: fast_sample(sde, score_fn, shape, name, steps=st, z=z,
                                                                   generator=g, eps=eps))
    return rows


# ----------------------------------------------------------------------------- reports
COLUMNS = [("family", "family", "{}"), ("sampler", "sampler", "{}"), ("setting", "setting", "{}"),
           ("nfe", "NFE", "{}"), ("wall_s", "wall (s)", "{:.2f}"), ("sw", "SW", "{:.4f}"),
           ("sw_rel", "SW vs ODE", "{:+.1%}"), ("mode_weight_err", "mode-weight err", "{:.4f}"),
           ("mode_weight_err_vs_ode", "weight err vs ODE", "{:.4f}"),
           ("spread_rel", "narrow spread vs ODE", "{:+.1%}"), ("mmd", "MMD", "{:.5f}")]


def _fmt_row(row: dict) -> str:
    if row.get("error"):
        return f"{row['family']:5s} {row['sampler']:34s} {row['setting']:28s} ERROR {row['error']}"
    parts = [f"{row['family']:5s} {row['sampler']:34s} {row['setting']:28s} NFE {row['nfe']:5d} {row['wall_s']:7.2f}s"]
    for key, _, fmt in COLUMNS[5:]:
        if row.get(key) is not None:
            parts.append(f"{key}={fmt.format(row[key])}")
    return " ".join(parts)


def markdown_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("" if v is None else fmt.format(v))
        if r.get("error"):
            cells[-1] = "error: " + r["error"][:60]
        elif not r.get("finite", True):
            cells[-1] = "non-finite samples"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict], out_dir: str, title: str = "", meta: dict | None = None) -> dict:
    """Write compare.md, compare.json and compare.png to ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"compare.{k}") for k in ("md", "json", "png")}
    with open(paths["json"], "w") as f:
        json.dump({"title": title, "meta": meta or {}, "rows": rows}, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(f"# {title}\n\n" if title else "")
        f.write(markdown_table(rows) + "\n")
    plot_comparison(rows, paths["png"], title)
    return paths


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
    """(sde, score_fn, test data, sde_factory, config) for a trained checkpoint in ``workdir``."""
    from scoredata import get_dataset
    from training.evaluate import load_trained, sampling_sde, score_fn_for

    config = _load_config(config_path)
    sde, model, step, path = load_trained(config, workdir, device=device)
    score_fn = score_fn_for(config, sde, model)
    test = get_dataset(config, "test")[:n]
    return sde, score_fn, test, (lambda N: sampling_sde(config, sde, N)), (config, step, path)


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
