#!/usr/bin/env python
"""Few-step samplers side by side with diffusers and k-diffusion, on the same scores and starting points.

    python benchmarks/fewstep.py [--quick] [--out benchmarks/results/fewstep]
                                 [--only closed,heldout,likelihood,digits]

Every sampler maps the same x_T (drawn once per workload) to data with the same score function;
the error is the RMS distance sqrt(mean_i |x_i - x*_i|^2) to the converged probability-flow ODE x*
from those x_T (dopri5, rtol = atol = 1e-9 in float64, ending with the denoising step at sigma(eps),
``samplers.fast_reference``). NFE is counted (a counter around the score or denoiser), never assumed;
at each NFE budget B in {5, 6, 8, 10, 15, 20} every sampler runs with the largest step count whose
counted NFE is <= B.

* closed-form workloads (float64): Gaussian mixtures under VP and VE in several shapes and
  dimensions, with narrow modes (``make_workloads``: the "main" group, on which the solvers' defaults
  are chosen); the acceptance table gives, per NFE, the toolkit's best solver
  (default arguments) against the best peer and their ratio.
* held-out closed-form workloads (``benchmarks/fewstep_heldout.py``, never used to choose a
  default): other mode counts, widths, weights and dimensions, an anisotropic mixture, a sub-VP SDE;
  the same acceptance table, and for both groups the ratio of ``solver="auto"`` to the best peer.
  ``solver="auto"`` (``recommend``) is chosen per family and budget by the worst ratio over both groups.
* likelihood: NFE and mean |error| against the exact log p_eps (exact trace) at rtol = atol = 1e-5,
  toolkit ``log_likelihood`` against k-diffusion's ``log_likelihood`` (dopri5 in sigma, Hutchinson)
  and the same k-diffusion scheme with the exact trace.
* digits: a small VP DDPM++ trained here on scikit-learn's 8x8 digits through the public API
  (``training.get_loss_fn``, ``models.get_model`` / ``get_score_fn``, ``configs/vp/digits.py``; in
  ``bench_out/fewstep_digits``), distance to its converged ODE and MMD to the test digits.

Peers (optional; skipped with a message when missing): ``pip install diffusers`` (pulls no torch or
torchvision) for DPMSolverMultistep (orders 2, 3), UniPCMultistep (bh1, bh2), DEISMultistep, DDIM,
configured on the same SDE through ``trained_betas`` (1000 levels uniform in t on [eps, T]) and the
model evaluated at each step's exact noise level; ``pip install --no-deps k-diffusion`` (its sampling
module needs only scipy, torchdiffeq, torchsde and tqdm, all toolkit dependencies; the package
``__init__`` imports torchvision and training-only packages, so ``benchmarks/fewstep_peers.py`` loads
``k_diffusion/sampling.py`` alone) for euler, heun, dpm_2, lms, dpmpp_2m (Karras rho = 7 and
log-SNR-uniform grids, ending at 0) and dpm_fast.
Writes fewstep.json, fewstep.md and fewstep.png to ``--out``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import base_parser, markdown_table, setup  # noqa: E402
from benchmarks import fewstep_peers as peers  # noqa: E402
from benchmarks.fewstep_heldout import make_heldout  # noqa: E402
from samplers.fast import auto_solver, fast_sample  # noqa: E402
from samplers.fast_reference import pf_ode_reference  # noqa: E402
from sde_lib import VESDE, VPSDE  # noqa: E402
from sde_lib.mixture import GaussianMixture, two_mode_mixture  # noqa: E402

Tensor = torch.Tensor
NFES = (5, 6, 8, 10, 15, 20)
EPS = 1e-3
#: toolkit solvers compared (default arguments) and their NFE as a function of ``steps``
TOOLKIT = {"heun": lambda s: 2 * s - 1, "ddim": lambda s: s, "dpm_solver_2": lambda s: s,
           "dpm_solver_3": lambda s: s, "ipndm": lambda s: s, "unipc": lambda s: s, "deis": lambda s: s}


def ring(k: int, radius: float, std: float, dim: int = 2) -> GaussianMixture:
    """k equal modes on a circle in the first two coordinates of R^dim (mean zero)."""
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = torch.zeros(k, dim, dtype=torch.float64)
    means[:, 0], means[:, 1] = radius * torch.cos(ang), radius * torch.sin(ang)
    return GaussianMixture([1. / k] * k, means, [std] * k)


def random_mixture(shape, k: int, stds, seed: int, scale: float = 2.) -> GaussianMixture:
    """k modes at random points of norm ``scale`` (weights 1..k normalised), data shape ``shape``."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(k, *shape, generator=g, dtype=torch.float64)
    mu = mu / mu.flatten(1).norm(dim=1).reshape(k, *([1] * len(shape))) * scale
    w = torch.arange(1, k + 1, dtype=torch.float64)
    return GaussianMixture((w / w.sum()).tolist(), mu, list(stds))


#: name -> (sde, mixture, number of starting points)
def make_workloads(quick: bool) -> dict:
    n = 512 if quick else 4096
    return {
        "vp_2d_two_mode": (VPSDE(), two_mode_mixture(), n),
        "ve_2d_two_mode": (VESDE(sigma_min=0.01, sigma_max=20.), two_mode_mixture(), n),
        "vp_2d_ring8_narrow": (VPSDE(), ring(8, 2., 0.05), n),
        "ve_16d_ring6_narrow": (VESDE(sigma_min=0.01, sigma_max=30.), ring(6, 3., 0.1, dim=16), n),
        "vp_64d_three_mode": (VPSDE(), random_mixture((64,), 3, (0.1, 0.3, 0.6), seed=1), n // 2),
        "ve_1x8x8_four_mode": (VESDE(sigma_min=0.01, sigma_max=50.),
                               random_mixture((1, 8, 8), 4, (0.05, 0.1, 0.2, 0.4), seed=2, scale=4.), n // 2),
    }


def rms(x: Tensor, ref: Tensor) -> float:
    return float((x.double() - ref).flatten(1).pow(2).sum(1).mean().sqrt())


def steps_for(nfe_of, budget: int) -> int | None:
    """Largest step count whose NFE is within the budget."""
    best = None
    for s in range(1, budget + 1):
        if nfe_of(s) <= budget:
            best = s
    return best


# ----------------------------------------------------------------------------- runs
def toolkit_rows(wl: str, sde, score_fn, z: Tensor, ref: Tensor, nfes) -> list[dict]:
    rows = []
    for name, nfe_of in TOOLKIT.items():
        for budget in nfes:
            s = steps_for(nfe_of, budget)
            if s is None:
                continue
            t0 = time.perf_counter()
            x, nfe = fast_sample(sde, score_fn, tuple(z.shape), solver=name, steps=s, z=z)
            rows.append({"workload": wl, "family": "toolkit", "sampler": name, "budget": budget, "steps": s,
                         "nfe": nfe, "rms": rms(x, ref), "wall_s": time.perf_counter() - t0})
    return rows


def peer_rows(wl: str, sde, score_fn, z: Tensor, ref: Tensor, nfes) -> list[dict]:
    rows = []
    for family, name, run in peers.available_peers():
        for budget in nfes:
            t0 = time.perf_counter()
            try:
                x, nfe, steps = run(sde, score_fn, z, budget, EPS)
            except Exception as exc:  # noqa: BLE001 - a peer failing is a result, not a crash
                rows.append({"workload": wl, "family": family, "sampler": name, "budget": budget,
                             "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            ok = bool(torch.isfinite(x).all())
            rows.append({"workload": wl, "family": family, "sampler": name, "budget": budget, "steps": steps,
                         "nfe": nfe, "rms": rms(x, ref) if ok else float("inf"),
                         "wall_s": time.perf_counter() - t0})
    return rows


def acceptance(rows: list[dict], nfes, groups: dict | None = None) -> list[dict]:
    """Per workload and NFE budget: the best toolkit solver vs the best peer (lowest RMS); with
    ``groups`` (workload -> (group, sde)) also the group and ``solver="auto"``'s ratio to the best peer."""
    out = []
    for wl in dict.fromkeys(r["workload"] for r in rows):
        for b in nfes:
            sel = [r for r in rows if r["workload"] == wl and r["budget"] == b and r.get("rms") is not None
                   and r["nfe"] <= b]
            tk = [r for r in sel if r["family"] == "toolkit"]
            pr = [r for r in sel if r["family"] != "toolkit" and math.isfinite(r["rms"])]
            if not tk:
                continue
            bt = min(tk, key=lambda r: r["rms"])
            rec = {"workload": wl, "nfe": b, "toolkit_best": bt["sampler"], "toolkit_rms": bt["rms"]}
            if groups and wl in groups:
                rec = {"group": groups[wl][0], **rec}
            if pr:
                bp = min(pr, key=lambda r: r["rms"])
                rec.update({"peer_best": f"{bp['family']}:{bp['sampler']}", "peer_rms": bp["rms"],
                            "ratio": bt["rms"] / bp["rms"]})
                if groups and wl in groups:
                    name = auto_solver(b, groups[wl][1])
                    hit = [r for r in tk if r["sampler"] == name]
                    if hit:
                        rec.update({"auto": name, "auto_ratio": hit[0]["rms"] / bp["rms"]})
            out.append(rec)
    return out


def recommend(rows: list[dict], nfes, acc: list[dict]) -> list[dict]:
    """Per SDE family (drift-free VE; other: VP and sub-VP) and NFE budget: the solver for
    ``solver="auto"`` (``samplers.fast.AUTO``) is the toolkit solver with the smallest WORST error ratio to
    the best peer (to the best toolkit solver where no peer ran) over all of the family's closed-form
    workloads, main and held-out: the safest choice at that budget, since the user's workload is none of
    them. (A pick from the main group alone follows single workloads: at VP NFE 15 it chose ipndm, 4.9x
    the best peer on a held-out mixture.) Reported with the geometric-mean ratio there."""
    out = []
    tk = [r for r in rows if r["family"] == "toolkit" and not r["workload"].startswith("digits")]
    ref = {(a["workload"], a["nfe"]): a.get("peer_rms") for a in acc}
    for fam, prefixes in (("drift_free (VE)", ("ve",)), ("other (VP)", ("vp", "subvp"))):
        for b in nfes:
            sel = [r for r in tk if r["workload"].startswith(prefixes) and r["budget"] == b]
            if not sel:
                continue
            cells = list(dict.fromkeys(r["workload"] for r in sel))
            base = {w: ref.get((w, b)) or min(r["rms"] for r in sel if r["workload"] == w) for w in cells}
            scores = {}
            for name in dict.fromkeys(r["sampler"] for r in sel):
                rs = [r["rms"] / base[r["workload"]] for r in sel if r["sampler"] == name]
                if len(rs) == len(cells):
                    scores[name] = (max(rs), math.exp(sum(math.log(v) for v in rs) / len(rs)))
            name = min(scores, key=scores.get)
            out.append({"sde_family": fam, "nfe": b, "recommended": name, "worst_ratio": scores[name][0],
                        "geomean_ratio_to_best_peer": scores[name][1], "workloads": len(cells)})
    return out


def auto_table(rec: list[dict]) -> dict:
    """``recommend``'s picks as ``samplers.fast.AUTO``: per family, (lowest NFE, solver) pairs, a switch
    between two measured budgets taking effect halfway between them."""
    out = {}
    for fam, key in (("drift_free (VE)", "drift_free"), ("other (VP)", "other")):
        picks = sorted((r["nfe"], r["recommended"]) for r in rec if r["sde_family"] == fam)
        table, prev = [], None
        for nfe, name in picks:
            if not table:
                table.append((1, name))
            elif name != table[-1][1]:
                table.append((nfe - (nfe - prev) // 2, name))
            prev = nfe
        if table:
            out[key] = tuple(table)
    return out


def bench_closed(args, log=print, group: str = "main") -> tuple[list[dict], list[dict]]:
    rows, refs = [], []
    nfes = (5, 10) if args.quick else NFES
    workloads = make_workloads(args.quick) if group == "main" else make_heldout(args.quick)
    for wl, (sde, mix, n) in workloads.items():
        z = sde.prior_sampling((n, *mix.data_shape), generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)
        score_fn = mix.score_fn(sde)
        t0 = time.perf_counter()
        ref, ref_nfe = pf_ode_reference(sde, score_fn, z, rtol=1e-9, atol=1e-9, eps=EPS)
        ref7, _ = pf_ode_reference(sde, score_fn, z, rtol=1e-7, atol=1e-7, eps=EPS)
        refs.append({"group": group, "workload": wl, "shape": list(z.shape), "sde": repr(sde), "ref_nfe": ref_nfe,
                     "ref_rms_1e-7_vs_1e-9": rms(ref7, ref), "ref_wall_s": time.perf_counter() - t0})
        log(json.dumps(refs[-1]))
        new = toolkit_rows(wl, sde, score_fn, z, ref, nfes) + peer_rows(wl, sde, score_fn, z, ref, nfes)
        rows += [{"group": group, **r} for r in new]
    return rows, refs


def workload_groups(quick: bool) -> dict:
    """workload -> (group, sde) for every closed-form workload."""
    out = {wl: ("main", v[0]) for wl, v in make_workloads(quick).items()}
    out.update({wl: ("held-out", v[0]) for wl, v in make_heldout(quick).items()})
    return out


def ratio_grid(acc: list[dict], key: str, label: str) -> list[dict]:
    """One row per workload, one column per NFE: ``key`` (e.g. "ratio", "auto_ratio")."""
    out = []
    for wl in dict.fromkeys(a["workload"] for a in acc):
        rec = {"workload": wl}
        for a in acc:
            if a["workload"] == wl and key in a:
                rec[f"NFE {a['nfe']}"] = f"{a[key]:.3f}" + (f" ({a[label]})" if label else "")
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- report
ACC_COLUMNS = ("group", "workload", "nfe", "toolkit_best", "toolkit_rms", "peer_best", "peer_rms", "ratio",
               "auto", "auto_ratio")


def write_report(out_dir: str, rows: list[dict], refs: list[dict], acc: list[dict], extra: dict) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"fewstep.{k}") for k in ("json", "md", "png")}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump({"rows": rows, "references": refs, "acceptance": acc, **extra}, fh, indent=1)
    lines = ["# Few-step samplers vs diffusers and k-diffusion", "",
             "RMS distance to the converged probability-flow ODE from the same x_T (float64); "
             "ratio = toolkit best / best peer (<= 1: the toolkit is at least as close); auto_ratio = "
             "solver='auto' / best peer. Group 'main': the workloads the solvers' defaults are chosen on; "
             "'held-out': never used to choose a default. solver='auto' is, per SDE family and NFE, the "
             "solver with the smallest worst ratio over both groups.", ""]
    for group in dict.fromkeys(a.get("group", "main") for a in acc):
        sub = [a for a in acc if a.get("group", "main") == group]
        lines += [f"## Ratio to the best peer, {group} workloads", "",
                  "toolkit best (default arguments) / best peer:", "",
                  markdown_table(ratio_grid(sub, "ratio", "toolkit_best")), ""]
        if any("auto_ratio" in a for a in sub):
            lines += ["solver='auto' / best peer:", "", markdown_table(ratio_grid(sub, "auto_ratio", "auto")), ""]
    lines += ["## Acceptance: best toolkit solver (default arguments) vs best peer", "",
              markdown_table(acc, [c for c in ACC_COLUMNS if any(c in a for a in acc)]),
              "", "## References", "", markdown_table(refs), ""]
    for key, recs in extra.items():
        if recs:
            lines += [f"## {key}", "", markdown_table(recs), ""]
    lines += ["## Every run", ""]
    for wl in dict.fromkeys(r["workload"] for r in rows):
        sub = [r for r in rows if r["workload"] == wl]
        names = list(dict.fromkeys((r["family"], r["sampler"]) for r in sub))
        budgets = sorted({r["budget"] for r in sub})
        table = []
        for fam, name in names:
            rec = {"family": fam, "sampler": name}
            for b in budgets:
                hit = [r for r in sub if r["family"] == fam and r["sampler"] == name and r["budget"] == b]
                rec[f"NFE {b}"] = (f"{hit[0]['rms']:.4g} ({hit[0]['nfe']})" if hit and "rms" in hit[0]
                                   else (hit[0].get("error", "") if hit else ""))
            table.append(rec)
        lines += [f"### {wl}", "", "rms (counted NFE)", "", markdown_table(table), ""]
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    plot(rows, paths["png"])
    return paths


def plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = list(dict.fromkeys(r["workload"] for r in rows))
    cols = min(3, len(wls))
    nrow = math.ceil(len(wls) / cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(5.2 * cols, 4.2 * nrow), squeeze=False)
    for ax, wl in zip(axes.flat, wls):
        sub = [r for r in rows if r["workload"] == wl and r.get("rms") is not None and math.isfinite(r["rms"])]
        for fam, name in dict.fromkeys((r["family"], r["sampler"]) for r in sub):
            pts = sorted((r["nfe"], r["rms"]) for r in sub if r["family"] == fam and r["sampler"] == name)
            style = "-o" if fam == "toolkit" else ("--s" if fam == "diffusers" else ":^")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3, lw=1.4 if fam == "toolkit" else 0.9,
                    label=f"{name}" if fam == "toolkit" else f"{fam[:2]}:{name}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(wl, fontsize=9)
        ax.set_xlabel("NFE (counted)")
        ax.set_ylabel("RMS distance to converged ODE")
        ax.set_xticks(list(NFES))
        ax.set_xticklabels([str(n) for n in NFES])
    for ax in list(axes.flat)[len(wls):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "fewstep"))
    parser.add_argument("--only", default="closed,heldout,likelihood,digits")
    parser.add_argument("--digits-workdir", default=os.path.join("bench_out", "fewstep_digits"))
    parser.add_argument("--digits-iters", type=int, default=None)
    parser.add_argument("--from-json", default=None,
                        help="rebuild the tables and the figure from a previous run's fewstep.json (no solves)")
    args = parser.parse_args(argv)
    setup(args)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as fh:
            old = json.load(fh)
        rows = old["rows"]
        extra = {k: v for k, v in old.items() if k not in ("rows", "references", "acceptance")
                 and not k.startswith("recommended")}
        acc = acceptance([r for r in rows if not r["workload"].startswith("digits")], NFES, workload_groups(False))
        extra["recommended (solver='auto')"] = recommend(rows, NFES, acc)
        paths = write_report(args.out, rows, old["references"], acc, extra)
        print(markdown_table(extra["recommended (solver='auto')"]))
        return rows, acc
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {"closed", "heldout", "likelihood", "digits"}
    if unknown:
        parser.error(f"--only: unknown section(s) {sorted(unknown)}")
    for msg in peers.missing_messages():
        print(f"# {msg}", file=sys.stderr)
    t0 = time.perf_counter()
    rows, refs, extra = [], [], {}
    if "closed" in only:
        rows, refs = bench_closed(args)
    if "heldout" in only:
        hrows, hrefs = bench_closed(args, group="held-out")
        rows, refs = rows + hrows, refs + hrefs
    if "likelihood" in only:
        from benchmarks.fewstep_likelihood import bench_likelihood
        extra["likelihood"] = bench_likelihood(args, make_workloads(args.quick))
    if "digits" in only:
        from benchmarks.fewstep_digits import bench_digits
        drows, dsum = bench_digits(args, TOOLKIT, steps_for)
        rows += drows
        extra["digits"] = dsum
    nfes = (5, 10) if args.quick else NFES
    acc = acceptance([r for r in rows if not r["workload"].startswith("digits")], nfes, workload_groups(args.quick))
    if rows:
        extra["recommended (solver='auto')"] = recommend(rows, nfes, acc)
    paths = write_report(args.out, rows, refs, acc, extra)
    print(markdown_table(acc, [c for c in ACC_COLUMNS if any(c in a for a in acc)]))
    for key, recs in extra.items():
        if recs:
            print(f"\n### {key}\n")
            print(markdown_table(recs))
    print(f"\n# fewstep benchmark: {time.perf_counter() - t0:.1f} s; wrote {', '.join(paths.values())}")
    return rows, acc


if __name__ == "__main__":
    main()
