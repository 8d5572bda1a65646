"""Low-density regions: a score learned from samples is accurate only where the data are.

Data p = 0.2 N((-5,-5), I) + 0.8 N((5,5), I) (NCSN, Song & Ermon 2019, Fig. 2). An unconditional score
MLP is trained on samples with sliced score matching (SSM-VR; target: the data score grad log p) or
with denoising score matching at one small noise level sigma (target: the score of q_sigma = p * N(0,
sigma^2 I)). Every objective is an expectation under p, so nothing constrains the network where p is
tiny. The learned and exact score fields are compared on a grid over [-8, 8]^2; each grid point is
binned by the probability mass of the data that is denser than it (the highest-density-region level
P_{y~p}[p(y) > p(x)], estimated from exact samples): bin "<50%" is the densest half of the data,
">99.9%" lies outside every region that holds 99.9% of the mass. Prints the mean squared score error
||s_theta - s||^2 per bin (high in the low-density bins, low in the high-density ones) and the
Fisher divergence E_p||s_theta - s||^2; writes the two score fields and the binned errors.

    python -m experiments.low_density --out docs/figures    # -> docs/figures/low_density.png
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from tqdm.auto import tqdm

from experiments.common import ScoreMLP, ncsn_mixture, parse_args, pyplot, report, save_figure, settings
from sde_lib.checks import randn
from training.objectives import sliced_score_matching

NAME = "low_density"

#: highest-density-region levels that separate the bins (fractions of the data's probability mass)
LEVELS = (0.5, 0.9, 0.99, 0.999)
BIN_NAMES = ("<50%", "50-90%", "90-99%", "99-99.9%", ">99.9%")

DEFAULTS = dict(objective="ssm", dsm_sigma=0.1, n_iters=3000, batch_size=256, lr=1e-3, hidden=128, n_layers=2,
                box=8., grid=81, n_level_samples=200000)
QUICK = dict(n_iters=800, grid=41, n_level_samples=50000)


def _ssm_loss(net, x, g, cfg):
    return sliced_score_matching(net, x, None, generator=g).mean()


def _dsm_loss(net, x, g, cfg):
    """sigma^2-weighted DSM at one level: 1/2 ||sigma s(x + sigma z) + z||^2."""
    sigma = cfg["dsm_sigma"]
    z = randn(x.shape, generator=g)
    return 0.5 * (sigma * net(x + sigma * z) + z).pow(2).sum(-1).mean()


#: objective -> (per-batch loss, target score of the mixture)
OBJECTIVE_SETUPS = {
    "ssm": (_ssm_loss, lambda mix, x, cfg: mix.score(x)),
    "dsm": (_dsm_loss, lambda mix, x, cfg: mix.score_sigma(x, torch.tensor(cfg["dsm_sigma"], dtype=x.dtype))),
}


def hpd_level(mix, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """P_{y~p}[p(y) > p(x)] per point of x, from n exact samples y (0: densest point, 1: least dense)."""
    ref = torch.sort(mix.log_prob(mix.sample(n, generator=generator, dtype=torch.float64))).values
    below = torch.searchsorted(ref, mix.log_prob(x).contiguous())      # samples with log p(y) <= log p(x)
    return 1. - below.to(torch.float64) / n


def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """Train, compare with the exact score on a grid, and bin the error by data density."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    if cfg["objective"] not in OBJECTIVE_SETUPS:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVE_SETUPS)}, got {cfg['objective']!r}")
    loss_fn, target_fn = OBJECTIVE_SETUPS[cfg["objective"]]
    mix = ncsn_mixture()
    torch.manual_seed(seed)
    net = ScoreMLP(2, cfg["hidden"], cfg["n_layers"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in tqdm(range(int(cfg["n_iters"])), desc=f"train ({cfg['objective']})", disable=not progress, leave=False):
        x = mix.sample(int(cfg["batch_size"]), generator=g)
        loss = loss_fn(net, x, g, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    box, m = float(cfg["box"]), int(cfg["grid"])
    axis = torch.linspace(-box, box, m, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        learned = net(pts.float()).double()
    exact = target_fn(mix, pts, cfg)
    err = (learned - exact).pow(2).sum(-1)
    level = hpd_level(mix, pts, int(cfg["n_level_samples"]), torch.Generator().manual_seed(seed + 2))
    bins = torch.bucketize(level, torch.tensor(LEVELS, dtype=torch.float64))
    xs = mix.sample(10000, generator=torch.Generator().manual_seed(seed + 3))
    with torch.no_grad():
        fisher = float((net(xs).double() - target_fn(mix, xs.double(), cfg)).pow(2).sum(-1).mean())

    figures = {"settings": cfg, "bins": list(BIN_NAMES), "final_loss": losses[-1],
               "bin_counts": [int((bins == k).sum()) for k in range(len(BIN_NAMES))],
               "bin_mse": [float(err[bins == k].mean()) if bool((bins == k).any()) else float("nan")
                           for k in range(len(BIN_NAMES))],
               "fisher_divergence_on_data": fisher, "grid_mse": float(err.mean())}
    figures["low_to_high_ratio"] = figures["bin_mse"][-1] / figures["bin_mse"][0]
    figures["png"] = _plot(mix, axis, pts, exact, learned, figures, out)
    return figures


def _plot(mix, axis, pts, exact, learned, figures, out):
    plt = pyplot()
    m = axis.numel()
    logp = mix.log_prob(pts).reshape(m, m).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    step = max(1, (m - 1) // 20)
    sel = torch.arange(m * m).reshape(m, m)[::step, ::step].reshape(-1)
    ext = [float(axis[0]), float(axis[-1]), float(axis[0]), float(axis[-1])]
    for ax, field, title in [(axes[0], exact, "exact score"), (axes[1], learned, "learned score")]:
        ax.imshow(logp.clip(min=-40), origin="lower", extent=ext, cmap="Greys")
        p, f = pts[sel].numpy(), field[sel].numpy()
        ax.quiver(p[:, 0], p[:, 1], f[:, 0], f[:, 1], color="tab:red", angles="xy", scale_units="xy",
                  scale=8., width=0.004)
        ax.set_title(title)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("equal")
    axes[2].bar(range(len(BIN_NAMES)), figures["bin_mse"], color="tab:blue")
    axes[2].set_xticks(range(len(BIN_NAMES)), BIN_NAMES)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("data mass denser than the point (density decreases ->)")
    axes[2].set_ylabel("mean ||s_theta - s||^2 on the grid")
    axes[2].set_title(f"score error by data density ({figures['settings']['objective']})")
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    def extra(p):
        p.add_argument("--objective", default=DEFAULTS["objective"], choices=sorted(OBJECTIVE_SETUPS))
    args = parse_args(__doc__.splitlines()[0], argv, extra)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress, objective=args.objective)
    lines = [f"score error by density bin ({fig['settings']['objective']}):"]
    for name, c, e in zip(fig["bins"], fig["bin_counts"], fig["bin_mse"]):
        lines.append(f"  {name:>9}  {c:5d} grid points  mean ||s_theta - s||^2 = {e:.4g}")
    lines += [f"lowest / highest density bin error: {fig['low_to_high_ratio']:.3g}",
              f"Fisher divergence on data samples: {fig['fisher_divergence_on_data']:.4g}",
              f"figure: {fig['png']}"]
    report(NAME, fig, lines)
    return fig


if __name__ == "__main__":
    main()
