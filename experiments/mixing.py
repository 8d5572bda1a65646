"""Mixing: Langevin dynamics vs annealed Langevin dynamics with the *exact* score of a 0.2/0.8 mixture.

Data p = 0.2 N((-5,-5), I) + 0.8 N((5,5), I) (NCSN, Song & Ermon 2019, Fig. 3). Where the modes do not
overlap, grad log p = grad log p_k on each mode's region: the weights 0.2/0.8 are invisible to the
score, so Langevin dynamics started from U([-8, 8]^2) keeps the ~0.5/0.5 split of its start. Annealed
Langevin (NCSN Algorithm 1: sigma_1 = 20 -> sigma_L = 0.1, 20 geometric levels, alpha_i = eps sigma_i^2 / sigma_L^2,
T steps per level, scores of the perturbed mixtures q_sigma, exact) mixes at the large noise levels and
recovers the weights. Writes a three-panel figure (exact sampling, Langevin, annealed Langevin) and
prints each method's mode weights and the error max_k |w_k - w_k^true|.

    python -m experiments.mixing --out docs/figures       # -> docs/figures/mixing.png
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from evaluation.distances import mode_weights_error
from experiments.common import ncsn_mixture, parse_args, pyplot, report, save_figure, settings
from samplers import annealed_langevin, langevin_dynamics
from sde_lib.checks import rand

NAME = "mixing"


DEFAULTS = dict(n_samples=4000, box=8., langevin_steps=1000, langevin_step=0.1,
                sigma_max=20., sigma_min=0.1, n_levels=20, n_steps_each=100, step_lr=0.005)
QUICK = dict(n_samples=2000)


def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """Sample the mixture three ways and return the mode weights and errors (figures printed by main)."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    mix = ncsn_mixture()
    dt = torch.float64
    n, box = int(cfg["n_samples"]), float(cfg["box"])
    g = torch.Generator().manual_seed(seed)

    exact = mix.sample(n, generator=g, dtype=dt)
    x0 = (2 * rand((n, 2), generator=g, dtype=dt) - 1) * box           # U([-box, box]^2)
    langevin = langevin_dynamics(lambda x: mix.score(x), x0, step_size=cfg["langevin_step"],
                                 n_steps=int(cfg["langevin_steps"]), generator=g, progress=progress)
    sigmas = torch.logspace(torch.log10(torch.tensor(cfg["sigma_max"])), torch.log10(torch.tensor(cfg["sigma_min"])),
                            int(cfg["n_levels"]), dtype=dt)
    annealed = annealed_langevin(mix.sigma_score_fn(), sigmas, (n, 2), n_steps_each=int(cfg["n_steps_each"]),
                                 step_lr=cfg["step_lr"], denoise=True, generator=g, x_init=x0.clone(),
                                 dtype=dt, progress=progress)

    true_w = mix.weights
    figures = {"settings": cfg, "true_weights": true_w.tolist(), "init_weights": mix.mode_weights(x0).tolist()}
    samples = {"exact": exact, "langevin": langevin, "annealed": annealed}
    for key, x in samples.items():
        w = mix.mode_weights(x)
        figures[f"{key}_weights"] = w.tolist()
        figures[f"{key}_weight_error"] = mode_weights_error(w, true_w)
    figures["png"] = _plot(samples, figures, box, out)
    return figures


def _plot(samples: dict, figures: dict, box: float, out: str | None) -> str | None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    titles = {"exact": "exact sampling", "langevin": "Langevin dynamics", "annealed": "annealed Langevin"}
    for ax, (key, x) in zip(axes, samples.items()):
        x = x[:2000].numpy()
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4)
        w = figures[f"{key}_weights"]
        ax.set_title(f"{titles[key]}\nweights {w[0]:.2f} / {w[1]:.2f}")
        ax.set_xlim(-box - 2, box + 2)
        ax.set_ylim(-box - 2, box + 2)
        ax.set_aspect("equal")
    fig.suptitle(f"exact score of a {figures['true_weights'][0]:.1f}/{figures['true_weights'][1]:.1f} mixture", y=1.03)
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress)
    report(NAME, fig, [
        f"true weights      {fig['true_weights']}",
        f"exact sampling    weights {_fmt(fig['exact_weights'])}  error {fig['exact_weight_error']:.3f}",
        f"Langevin          weights {_fmt(fig['langevin_weights'])}  error {fig['langevin_weight_error']:.3f}",
        f"annealed Langevin weights {_fmt(fig['annealed_weights'])}  error {fig['annealed_weight_error']:.3f}",
        f"figure: {fig['png']}"])
    return fig


def _fmt(w) -> str:
    return "/".join(f"{v:.3f}" for v in w)


if __name__ == "__main__":
    main()
