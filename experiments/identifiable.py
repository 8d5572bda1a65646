"""Uniquely identifiable encoding (score SDE paper, Sec. 4.3 / Fig. 7): separately trained models map the
same inputs to nearly the same latents through the probability-flow ODE.

The probability-flow ODE dx/dt = f(x, t) - g(t)^2 / 2 score(x, t) is fixed by the data distribution
(through the scores of its perturbed marginals), not by the network, so models that learn the score
well share the encoding x -> z = x(T) (``samplers.encode``). Two data sets:

* 2-D toy (the 0.2/0.8 two-mode mixture, configs/vp/toy2d.py MLP): models of two widths and three
  seeds, plus the exact mixture score (``sde_lib.mixture``: the true encoding);
* the 8x8 digits (configs/vp/digits.py DDPM++, VP SDE): widths nf = 16, 16, 32 with three seeds, each
  trained for 3000 and for 10000 steps (``digits_iters``; the 3000-step nf = 16 seed-0 model is the VP
  model of ``experiments.pc_table``; all cached under ``exp_out/``): how the agreement grows with
  training; the claim is judged on the longest (part "digits"; the shorter ones "digits_<n>_steps").

For every pair of trained models A, B the same test points are encoded and compared by

    d(A, B) = sqrt(mean_i ||z_A(x_i) - z_B(x_i)||^2) / (sqrt(D) prior_std)

(the latent scale: the RMS norm of a prior draw), against two controls: the shuffled pairing
d(A, B o pi) (z_B of a random other point) and an untrained network of the same architecture (its
latents d(A, U)). Also printed: the correlation of all latent coordinates of A and B, per-point
quantiles of ||z_A - z_B|| / ||z_A||, and the NFE of each encoding.

    python -m experiments.identifiable --out docs/figures   # -> docs/figures/identifiable.png
                                                            #    and experiments/results/identifiable.{md,json}

``--quick`` (the tests): the toy part only, 500 training steps, 200 points, in a temporary folder.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from experiments.common import parse_args, pyplot, report, save_figure, settings
from experiments.sample_quality import mean_std
from experiments.trained_runs import digits_config, no_grad_score, toy_config, trained
from samplers import encode
from scoredata import get_dataset
from sde_lib.mixture import two_mode_mixture

NAME = "identifiable"
#: the control models: an untrained network, and (toy) the same network trained on other data
CONTROLS = ("untrained", "other_data")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

DEFAULTS = dict(parts=("toy", "digits"), toy_iters=3000, toy_widths=(64, 64, 128), toy_seeds=(0, 1, 2),
                toy_points=500, toy_tol=1e-5, digits_iters=(3000, 10000), digits_widths=(16, 16, 32), digits_seeds=(0, 1, 2),
                digits_points=300, digits_tol=1e-4, untrained_seed=9, toy_other="moons", root="exp_out",
                results=RESULTS, far=3.)
QUICK = dict(parts=("toy",), toy_iters=500, toy_points=200, root=None, results=None)


# ----------------------------------------------------------------------------- measures
def latent_distance(za: torch.Tensor, zb: torch.Tensor, scale: float) -> float:
    """sqrt(mean_i ||za_i - zb_i||^2) / scale."""
    d = (za - zb).reshape(za.shape[0], -1).double()
    return float(d.pow(2).sum(1).mean().sqrt()) / scale


def compare(za: torch.Tensor, zb: torch.Tensor, scale: float, perm: torch.Tensor) -> dict:
    """d(A, B), the shuffled d(A, B o perm), their ratio, coordinate correlation and per-point quantiles."""
    fa, fb = za.reshape(za.shape[0], -1).double(), zb.reshape(zb.shape[0], -1).double()
    rel = (fa - fb).norm(dim=1) / fa.norm(dim=1)
    d, shuffled = latent_distance(za, zb, scale), latent_distance(za, zb[perm], scale)
    corr = float(torch.corrcoef(torch.stack([fa.flatten(), fb.flatten()]))[0, 1])
    q = torch.quantile(rel, torch.tensor([0.5, 0.9], dtype=torch.float64))
    return {"d": d, "d_shuffled": shuffled, "ratio": d / shuffled, "corr": corr,
            "rel_median": float(q[0]), "rel_q90": float(q[1])}


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of range(n) with no fixed point (every point is paired with another)."""
    while True:
        p = torch.randperm(n, generator=generator)
        if not bool((p == torch.arange(n)).any()):
            return p


# ----------------------------------------------------------------------------- one data set
def run_part(kind: str, cfg: dict, root: str, progress: bool, iters: int | None = None) -> dict:
    """Train/open the models of one data set (``iters`` steps; default ``cfg[kind + "_iters"]``), encode its
    test points, compare every pair and the controls."""
    if kind == "toy":
        make = lambda nf, seed, it: toy_config("vp", nf=nf, seed=seed, n_iters=it)     # noqa: E731
        widths, seeds, default_iters, n, tol = cfg["toy_widths"], cfg["toy_seeds"], cfg["toy_iters"], \
            cfg["toy_points"], cfg["toy_tol"]
    elif kind == "digits":
        make = lambda nf, seed, it: digits_config("vp", nf=nf, seed=seed, n_iters=it)  # noqa: E731
        widths, seeds, default_iters, n, tol = cfg["digits_widths"], cfg["digits_seeds"], cfg["digits_iters"], \
            cfg["digits_points"], cfg["digits_tol"]
    else:
        raise ValueError(f"parts must be among ['toy', 'digits'], got {kind!r}")
    iters = int(iters) if iters is not None else iters_list(default_iters)[-1]
    if len(widths) != len(seeds) or len(widths) < 2:
        raise ValueError(f"{kind}_widths and {kind}_seeds must have the same length >= 2, got {widths}, {seeds}")
    t0 = time.perf_counter()
    configs = {f"nf{w}_s{s}": make(int(w), int(s), int(iters)) for w, s in zip(widths, seeds)}
    configs["untrained"] = make(int(widths[0]), int(cfg["untrained_seed"]), 0)
    if kind == "toy" and cfg["toy_other"]:          # a model of other data: the same network, trained on moons
        configs["other_data"] = toy_config("vp", nf=int(widths[0]), seed=int(cfg["untrained_seed"]),
                                           n_iters=int(iters), toy=str(cfg["toy_other"]))
    runs = {k: trained(c, root=root, progress=progress) for k, c in configs.items()}
    train_seconds = time.perf_counter() - t0
    first = next(iter(runs.values()))
    x = get_dataset(first.config, "test")[:int(n)]
    sde = first.sde
    scale = math.sqrt(x[0].numel()) * float(sde.prior_std)
    latents, nfe, enc_seconds = {}, {}, {}
    scores = {k: no_grad_score(r) for k, r in runs.items()}
    if kind == "toy":
        scores["exact"] = two_mode_mixture().score_fn(sde)
    for k, score in scores.items():
        t1 = time.perf_counter()
        latents[k], nfe[k] = encode(sde, score, x.clone(), rtol=float(tol), atol=float(tol), return_nfe=True)
        enc_seconds[k] = time.perf_counter() - t1
    perm = derangement(x.shape[0], torch.Generator().manual_seed(0))
    trained_keys = [k for k in configs if k not in CONTROLS]
    pairs = {f"{a} vs {b}": compare(latents[a], latents[b], scale, perm)
             for a, b in itertools.combinations(trained_keys, 2)}
    controls = {f"{a} vs {c}": compare(latents[a], latents[c], scale, perm)
                for c in CONTROLS if c in latents for a in trained_keys}
    exact = {f"{a} vs exact": compare(latents[a], latents["exact"], scale, perm)
             for a in trained_keys} if "exact" in latents else {}
    norms = {k: latent_distance(z, torch.zeros_like(z), scale) for k, z in latents.items()}
    return {"models": list(configs), "steps": {k: r.step for k, r in runs.items()}, "n_points": int(x.shape[0]),
            "latent_scale": scale, "latent_rms_over_scale": norms, "nfe": nfe, "pairs": pairs,
            "controls": controls, "exact": exact, "summary": summarize(pairs, controls, float(cfg["far"])),
            "train_seconds": train_seconds, "encode_seconds": enc_seconds,
            "_x": x, "_latents": latents}


def iters_list(iters) -> tuple[int, ...]:
    """``*_iters`` as a tuple of training lengths, ascending (one int: one length)."""
    its = tuple(int(i) for i in (iters if isinstance(iters, (tuple, list)) else (iters,)))
    if not its or any(i < 1 for i in its):
        raise ValueError(f"*_iters must be training step counts >= 1, got {iters!r}")
    return tuple(sorted(its))


def summarize(pairs: dict, controls: dict, far: float) -> dict:
    """Mean +- std over the trained pairs of d, the shuffled d, their ratio, and of each control (a trained
    model against the untrained network / the model of other data); the claim: every trained pair is at
    least ``far`` times closer than the closest shuffled pairing and than the closest control pair."""
    d = [p["d"] for p in pairs.values()]
    sh = [p["d_shuffled"] for p in pairs.values()]
    out = {"d": mean_std(d), "d_shuffled": mean_std(sh), "ratio": mean_std([p["ratio"] for p in pairs.values()]),
           "corr": mean_std([p["corr"] for p in pairs.values()]), "factor_vs_shuffled": min(sh) / max(d)}
    holds = out["factor_vs_shuffled"] >= far
    for c in CONTROLS:
        dc = [v["d"] for k, v in controls.items() if k.endswith(f" vs {c}")]
        if dc:
            out[f"d_{c}"] = mean_std(dc)
            out[f"factor_vs_{c}"] = min(dc) / max(d)
            holds = holds and out[f"factor_vs_{c}"] >= far
    out["holds"] = holds
    return out


# ----------------------------------------------------------------------------- the experiment
def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """Both parts (``parts``); returns the per-pair figures and the summary of each."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    if int(seed):
        cfg["toy_seeds"] = tuple(int(s) + int(seed) for s in cfg["toy_seeds"])
        cfg["digits_seeds"] = tuple(int(s) + int(seed) for s in cfg["digits_seeds"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="identifiable_") as tmp:
        root = str(cfg["root"]) if cfg["root"] else tmp
        parts = {}
        for kind in cfg["parts"]:
            its = iters_list(cfg[f"{kind}_iters"]) if kind in ("toy", "digits") else (None,)
            for k, it in enumerate(its):     # the longest training last, under the plain name
                key = kind if k == len(its) - 1 else f"{kind}_{it}_steps"
                parts[key] = run_part(kind, cfg, root, progress, it)
    figures = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
               "parts": {k: {kk: vv for kk, vv in p.items() if not kk.startswith("_")} for k, p in parts.items()}}
    figures["markdown"] = markdown(figures)
    figures["png"] = _plot(parts, out)
    figures["seconds"] = time.perf_counter() - t0
    if cfg["results"]:
        os.makedirs(str(cfg["results"]), exist_ok=True)
        with open(os.path.join(str(cfg["results"]), f"{NAME}.md"), "w") as f:
            f.write(figures["markdown"] + "\n")
        with open(os.path.join(str(cfg["results"]), f"{NAME}.json"), "w") as f:
            json.dump({k: v for k, v in figures.items() if k != "markdown"}, f, indent=1, sort_keys=True)
    return figures


def markdown(figures: dict) -> str:
    lines = []
    for kind, p in figures["parts"].items():
        lines.append(f"**{kind}** ({p['n_points']} test points; latent scale sqrt(D) prior_std = "
                     f"{p['latent_scale']:.3g}; d = RMS latent distance / latent scale)")
        lines.append("")
        lines.append("| pair | d(A, B) | d shuffled | ratio | coordinate corr. | median, 90% of ||zA - zB|| / ||zA|| |")
        lines.append("|---|---|---|---|---|---|")
        for name, r in {**p["pairs"], **p["controls"], **p["exact"]}.items():
            lines.append(f"| {name} | {r['d']:.4f} | {r['d_shuffled']:.4f} | {r['ratio']:.4f} | {r['corr']:.4f} | "
                         f"{r['rel_median']:.4f}, {r['rel_q90']:.4f} |")
        s = p["summary"]
        lines.append("")
        ctrl = "".join(f", vs {c.replace('_', ' ')} {s[f'd_{c}'][0]:.4f} +- {s[f'd_{c}'][1]:.4f}"
                       for c in CONTROLS if f"d_{c}" in s)
        factors = "".join(f", {s[f'factor_vs_{c}']:.1f}x closer than the closest {c.replace('_', ' ')} pair"
                          for c in CONTROLS if f"factor_vs_{c}" in s)
        lines.append(f"Trained pairs: d = {s['d'][0]:.4f} +- {s['d'][1]:.4f} (mean +- std over {len(p['pairs'])} "
                     f"pairs), shuffled {s['d_shuffled'][0]:.4f} +- {s['d_shuffled'][1]:.4f}{ctrl}; the farthest "
                     f"trained pair is {s['factor_vs_shuffled']:.1f}x closer than the closest shuffled pairing"
                     f"{factors}: claim {'HOLDS' if s['holds'] else 'does not hold'} (threshold "
                     f"{figures['settings']['far']:g}x). NFE per encoding: "
                     + ", ".join(f"{k} {v}" for k, v in p["nfe"].items()) + ".")
        lines.append("")
    return "\n".join(lines)


def _plot(parts: dict, out: str | None):
    """Per data set: latent coordinates of A against B (and against the controls), and for the digits the
    64 latent coordinates of two test digits under every trained model."""
    plt = pyplot()
    fig, axes = plt.subplots(len(parts), 3, figsize=(12, 3.8 * len(parts)), squeeze=False)
    for i, (kind, p) in enumerate(parts.items()):
        z = p["_latents"]
        keys = [k for k in p["models"] if k not in CONTROLS]
        a, b = keys[0], keys[-1]
        perm = derangement(p["n_points"], torch.Generator().manual_seed(0))
        za = z[a].reshape(p["n_points"], -1)
        for j in range(2):
            ax = axes[i, j]
            if j == 0:
                ob = z[b].reshape(p["n_points"], -1)
                ax.scatter(za.flatten(), ob.flatten(), s=2, alpha=0.4, label="same input")
                ax.scatter(za.flatten(), ob[perm].flatten(), s=2, alpha=0.15, color="grey", label="shuffled pairing")
                label = f"model B ({b})"
            else:
                for c, color in zip(CONTROLS, ("C1", "C2")):
                    if c in z:
                        ax.scatter(za.flatten(), z[c].reshape(p["n_points"], -1).flatten(), s=2, alpha=0.4,
                                   color=color, label=c.replace("_", " ") + " (same input)")
                label = "control model"
            lim = float(za.abs().max()) * 1.05
            ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.6)
            ax.set_xlabel(f"latent coordinate, model A ({a})", fontsize=8)
            ax.set_ylabel(f"latent coordinate, {label}", fontsize=8)
            ax.set_title(f"{kind}: all coordinates of {p['n_points']} test points", fontsize=9)
            ax.legend(fontsize=7, markerscale=4)
        ax = axes[i, 2]
        if kind == "toy":
            ax.scatter(z[a][:, 0], z[a][:, 1], s=4, label=f"A ({a})")
            ax.scatter(z[b][:, 0], z[b][:, 1], s=4, marker="x", label=f"B ({b})")
            for k in range(min(40, p["n_points"])):
                ax.plot([z[a][k, 0], z[b][k, 0]], [z[a][k, 1], z[b][k, 1]], color="k", lw=0.4)
            ax.set_title("toy: latents of the same points (first 40 joined)", fontsize=9)
            ax.set_aspect("equal")
        else:
            for k, style in zip(keys, ["-", "--", ":"] * 3):
                for d, color in ((0, "C0"), (1, "C3")):
                    ax.plot(z[k][d].flatten(), style, color=color, lw=0.9, label=f"digit {d}, {k}")
            ax.set_xlabel("latent coordinate index", fontsize=8)
            ax.set_title(f"{kind}: the 64 latent coordinates of two test digits", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress)
    report(NAME, {k: v for k, v in fig.items() if k != "markdown"},
           [fig["markdown"], f"figure: {fig['png']}", f"seconds: {fig['seconds']:.0f}"])
    return fig


if __name__ == "__main__":
    main()
