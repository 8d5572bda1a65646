"""Manifold hypothesis: sliced score matching on data that lie on a 2-D plane inside R^20.

Data x = Q u, u ~ N(0, I_2), Q a random 20 x 2 matrix with orthonormal columns. On a manifold the score
is undefined off the data and the score-matching objective is unbounded below: a network can make its
Jacobian arbitrarily negative along the 18 normal directions (tr(grad_x s) -> -inf) at no cost in
||s||^2 on the plane. Sliced score matching (SSM-VR, one Rademacher projection, Adam) therefore never
settles: the loss keeps falling and fluctuates ever more. Perturbing the data with N(0, 1e-4 I)
(std 0.01) makes the density full-dimensional and the objective bounded (minimum -1/2 E||s||^2,
about -9e4 here), and the loss converges (NCSN, Song & Ermon 2019, Fig. 1).
Prints the loss's late-training spread (std over the last ``late_fraction`` of the iterations) both
ways and writes the two loss curves.

    python -m experiments.manifold --out docs/figures       # -> docs/figures/manifold.png
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from tqdm.auto import tqdm

from experiments.common import ScoreMLP, late_spread, parse_args, pyplot, report, save_figure, settings
from sde_lib.checks import randn
from training.objectives import sliced_score_matching

NAME = "manifold"

DEFAULTS = dict(ambient_dim=20, manifold_dim=2, noise_std=0.01, n_iters=4000, batch_size=128, lr=1e-2,
                hidden=128, n_layers=2, late_fraction=0.2)
QUICK = dict(n_iters=600)


def train_ssm(data_fn, dim: int, noise_std: float, cfg: dict, seed: int, progress: bool) -> list[float]:
    """Train an unconditional score MLP with SSM-VR on data_fn(batch) + noise_std N(0, I); the loss curve."""
    torch.manual_seed(seed)                                   # network initialisation
    net = ScoreMLP(dim, cfg["hidden"], cfg["n_layers"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed + 1)               # data, noise and projections
    losses = []
    for _ in tqdm(range(int(cfg["n_iters"])), desc=f"ssm noise={noise_std}", disable=not progress, leave=False):
        x = data_fn(int(cfg["batch_size"]), g)
        if noise_std > 0:
            x = x + noise_std * randn(x.shape, generator=g)
        loss = sliced_score_matching(net, x, None, generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """SSM without and with N(0, noise_std^2) perturbation; returns the late-training loss statistics."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    D, d = int(cfg["ambient_dim"]), int(cfg["manifold_dim"])
    gq = torch.Generator().manual_seed(seed + 12345)
    Q, _ = torch.linalg.qr(randn((D, d), generator=gq))      # orthonormal embedding of the plane

    def data_fn(n, g):
        return randn((n, d), generator=g) @ Q.T

    curves = {"clean": train_ssm(data_fn, D, 0., cfg, seed, progress),
              "noisy": train_ssm(data_fn, D, float(cfg["noise_std"]), cfg, seed, progress)}
    figures = {"settings": cfg,
               # the minimum of the noisy objective: -1/2 E||grad log p||^2 = -1/2 (d / (1 + s^2) + (D - d) / s^2)
               "noisy_optimum": -0.5 * (d / (1 + cfg["noise_std"] ** 2) + (D - d) / cfg["noise_std"] ** 2)}
    for key, losses in curves.items():
        stats = late_spread(losses, cfg["late_fraction"])
        for k, v in stats.items():
            figures[f"{key}_late_{k}"] = v
        figures[f"{key}_final_loss"] = losses[-1]
    figures["spread_ratio"] = figures["clean_late_std"] / figures["noisy_late_std"]
    figures["png"] = _plot(curves, cfg, figures, out)
    return figures


def _plot(curves: dict, cfg: dict, figures: dict, out: str | None) -> str | None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    n = len(curves["clean"])
    start = int(n * (1 - cfg["late_fraction"]))
    labels = {"clean": "no noise", "noisy": f"N(0, {cfg['noise_std'] ** 2:g}) noise"}
    for ax, key in zip(axes, ["clean", "noisy"]):
        ax.plot(curves[key], lw=0.6)
        ax.axvspan(start, n, color="0.9", zorder=-1)
        ax.set_title(f"SSM loss, {labels[key]}\nlate std {figures[f'{key}_late_std']:.3g}")
        ax.set_xlabel("iteration")
        ax.set_yscale("symlog", linthresh=10.)
    axes[1].axhline(figures["noisy_optimum"], color="k", ls="--", lw=0.8, label="optimum")
    axes[1].legend(loc="upper right")
    axes[0].set_ylabel("loss (symlog)")
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress)
    report(NAME, fig, [
        f"no noise:   late loss {fig['clean_late_mean']:.4g} +- {fig['clean_late_std']:.3g} "
        f"(drift {fig['clean_late_drift']:.3g})",
        f"with noise: late loss {fig['noisy_late_mean']:.4g} +- {fig['noisy_late_std']:.3g} "
        f"(drift {fig['noisy_late_drift']:.3g}; optimum {fig['noisy_optimum']:.4g})",
        f"late spread ratio (no noise / noise): {fig['spread_ratio']:.1f}",
        f"figure: {fig['png']}"])
    return fig


if __name__ == "__main__":
    main()
