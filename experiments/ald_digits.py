"""Annealed Langevin dynamics on the 8x8 digits: the intermediate samples at every noise level.

Trains a small noise-conditional score network (``models.get_model``: the noise-conditional "mlp",
output divided by sigma as in NCSNv2) on scikit-learn's digits (``scoredata.get_dataset``, values in
[0, 1]) with the NCSN loss (``training.get_loss_fn(VESDE, continuous=False)``: DSM over a geometric
ladder sigma_1 > ... > sigma_L, weighted by sigma^2). The ladder and the step size follow the NCSNv2
recipe (``training.recipes.propose``): sigma_1 = the largest distance between two training digits
(4.46), ratio gamma from Technique 2 for D = 64 (1.36, L = 21 levels down to sigma_L = 0.01) and eps
from Technique 4 for T steps per level. (The original NCSN ladder, 10 levels with ratio 2.1, leaves the
shells of neighbouring levels disjoint in 64 dims: each level then starts where the network was never
trained, and the chain diverges.) Then NCSN Algorithm 1 (``samplers.annealed_langevin``, one call per
level so that the state after each level can be kept): x_0 ~ N(0, sigma_1^2 I); at level i, T steps
x <- x + alpha_i/2 s_theta(x, sigma_i) + sqrt(alpha_i) z, alpha_i = eps sigma_i^2 / sigma_L^2; finally
x <- x + sigma_L^2 s_theta(x, sigma_L).
Writes a strip (one row per sample; columns: the initial noise, the state after evenly spaced levels,
the denoised result) and prints per-level statistics: the mean per-pixel std across samples, the mean
distance to the nearest training image, and the pixel-moment error against the test split
(mean |difference of per-pixel means| + mean |difference of per-pixel stds|).

    python -m experiments.ald_digits --out docs/figures     # -> docs/figures/ald_digits.png
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from tqdm.auto import tqdm

from configs.default import get_default_configs
from evaluation.distances import pixel_moments
from experiments.common import parse_args, pyplot, report, save_figure, settings
from models import get_model, get_score_fn
from samplers import annealed_langevin
from scoredata import get_dataset
from sde_lib import VESDE
from sde_lib.checks import randn
from training.losses import get_loss_fn
from training.recipes import langevin_step_size, propose

NAME = "ald_digits"

#: sigma_max, n_levels, step_lr: None = the NCSNv2 recipe for the training digits
DEFAULTS = dict(model="mlp", n_iters=3000, batch_size=128, lr=1e-3, grad_clip=1., nf=256, n_layers=3,
                ch_mult=(1, 2), num_res_blocks=1, sigma_max=None, sigma_min=0.01, n_levels=None, n_steps_each=100,
                step_lr=None, n_samples=64, n_show=10, n_columns=9)
QUICK = dict(n_iters=500, nf=128, n_steps_each=20, n_samples=32, n_show=6)


def resolve_ladder(cfg: dict, train_set: torch.Tensor) -> dict:
    """Fill sigma_max, n_levels and step_lr left as None from the NCSNv2 recipe for ``train_set``."""
    cfg = dict(cfg)
    recipe = propose(train_set, sigma_min=float(cfg["sigma_min"]), n_steps_each=int(cfg["n_steps_each"]),
                     num_scales=cfg["n_levels"])
    if cfg["sigma_max"] is None:
        cfg["sigma_max"] = recipe.sigma_max
    if cfg["n_levels"] is None:
        cfg["n_levels"] = recipe.num_scales
    if cfg["step_lr"] is None:
        gamma = (cfg["sigma_max"] / cfg["sigma_min"]) ** (1. / (cfg["n_levels"] - 1))
        cfg["step_lr"] = langevin_step_size(float(cfg["sigma_min"]), gamma, int(cfg["n_steps_each"]))
    return cfg


def data_config():
    """The project config of the digits in [0, 1] under a discrete VE SDE (NCSN)."""
    config = get_default_configs()
    config.training.sde = "vesde"
    config.training.continuous = False
    config.data.dataset = "digits"
    config.data.shape = (1, 8, 8)
    config.data.n_bins = 17
    config.data.centered = False
    return config


def make_config(cfg: dict):
    """``data_config()`` plus the model of ``cfg`` (a resolved ladder: sigma_max and n_levels set)."""
    config = data_config()
    m = config.model
    m.name = cfg["model"]
    m.sigma_min, m.sigma_max, m.num_scales = float(cfg["sigma_min"]), float(cfg["sigma_max"]), int(cfg["n_levels"])
    m.nf, m.n_layers = int(cfg["nf"]), int(cfg["n_layers"])
    m.ch_mult, m.num_res_blocks = tuple(cfg["ch_mult"]), int(cfg["num_res_blocks"])
    m.scale_by_sigma = True                    # s_theta(x, sigma) = f_theta(x, sigma) / sigma
    return config


def train(config, cfg: dict, data: torch.Tensor, seed: int, progress: bool):
    """NCSN training (discrete SMLD loss); returns (model, sde, losses)."""
    torch.manual_seed(seed)
    model = get_model(config)
    sde = VESDE(config.model.sigma_min, config.model.sigma_max, N=config.model.num_scales)
    loss_fn = get_loss_fn(sde, train=True, reduce_mean=False, continuous=False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in tqdm(range(int(cfg["n_iters"])), desc="train NCSN", disable=not progress, leave=False):
        idx = torch.randint(data.shape[0], (int(cfg["batch_size"]),), generator=g)
        loss = loss_fn(model, data[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return model, sde, losses


def sigma_score_fn(sde, model):
    """score(x, sigma) for annealed Langevin: the model's score at the ladder time of sigma."""
    score_fn = get_score_fn(sde, model, continuous=False)

    def fn(x, sigma):
        return score_fn(x, sde.t_from_noise_level(sigma))
    return fn


def annealed_langevin_states(score, sigmas: torch.Tensor, shape, n_steps_each: int, step_lr: float,
                             generator: torch.Generator, progress: bool = False) -> list[torch.Tensor]:
    """NCSN Algorithm 1 run level by level: [x_0, x after level 1, ..., x after level L, denoised x]
    (cut short after the first level whose state is not finite)."""
    x = randn(shape, generator=generator) * float(sigmas[0])
    states = [x]
    sigma_L = float(sigmas[-1])
    for sigma in tqdm(sigmas.tolist(), desc="annealed Langevin", disable=not progress, leave=False):
        # one level: the single-level call's alpha is its step_lr, so pass alpha_i = step_lr sigma_i^2 / sigma_L^2
        x = annealed_langevin(score, [sigma], shape, n_steps_each=n_steps_each,
                              step_lr=step_lr * sigma ** 2 / sigma_L ** 2, denoise=False, generator=generator,
                              x_init=x)
        states.append(x)
        if not bool(torch.isfinite(x).all()):
            return states                                         # diverged: stop here
    with torch.no_grad():
        states.append(x + sigma_L ** 2 * score(x, torch.full((shape[0],), sigma_L, dtype=x.dtype)))
    return states


def state_stats(x: torch.Tensor, train_set: torch.Tensor, test_set: torch.Tensor) -> dict:
    """mean per-pixel std across samples, mean distance to the nearest training image, pixel-moment error."""
    xf = x.reshape(x.shape[0], -1).double()
    nn_dist = torch.cdist(xf, train_set.reshape(train_set.shape[0], -1).double()).min(1).values
    mom = pixel_moments(x, test_set)
    return {"mean_pixel_std": float(xf.std(0).mean()), "nn_dist": float(nn_dist.mean()),
            "moment_error": mom["mean_abs_diff"] + mom["std_abs_diff"]}


def run(out: str | None = None, seed: int = 0, quick: bool = False, progress: bool = False, **overrides) -> dict:
    """Train, sample with annealed Langevin keeping each level's state, and return per-level statistics."""
    cfg = settings(DEFAULTS, QUICK, quick, overrides)
    train_set, test_set = get_dataset(data_config(), "train"), get_dataset(data_config(), "test")
    cfg = resolve_ladder(cfg, train_set)
    config = make_config(cfg)
    model, sde, losses = train(config, cfg, train_set, seed, progress)
    sigmas = torch.flip(sde.discrete_sigmas, [0])               # sigma_1 > ... > sigma_L
    n = int(cfg["n_samples"])
    states = annealed_langevin_states(sigma_score_fn(sde, model), sigmas, (n, *config.data.shape),
                                      int(cfg["n_steps_each"]), float(cfg["step_lr"]),
                                      torch.Generator().manual_seed(seed + 2), progress)
    labels = ["init"] + [f"{s:.3g}" for s in sigmas.tolist()] + ["denoised"]
    per_level = [{"level": lab, **state_stats(x, train_set, test_set)} for lab, x in zip(labels, states)]
    finite = len(states) == len(labels) and bool(torch.isfinite(states[-1]).all())
    data_ref = state_stats(test_set, train_set, test_set)
    data_ref["moment_error"] = 0.
    figures = {"settings": cfg, "final_loss": sum(losses[-50:]) / max(len(losses[-50:]), 1),
               "sigmas": sigmas.tolist(), "per_level": per_level, "test_data": data_ref,
               "finite": finite}
    figures["png"] = _plot(states, labels, int(cfg["n_show"]), int(cfg["n_columns"]), out)
    return figures


def _plot(states, labels, n_show: int, n_columns: int, out):
    """Columns: init, ``n_columns`` evenly spaced levels (the first and the last included), denoised."""
    plt = pyplot()
    n_levels = len(labels) - 2
    keep = sorted({round(i * (n_levels - 1) / max(n_columns - 1, 1)) for i in range(min(n_columns, n_levels))})
    idx = [0] + [k + 1 for k in keep] + [n_levels + 1]
    idx = [i for i in idx if i < len(states)]
    states, labels = [states[i] for i in idx], [labels[i] for i in idx]
    cols = len(states)
    fig, axes = plt.subplots(n_show, cols, figsize=(0.9 * cols, 0.9 * n_show + 0.5))
    for j, (x, lab) in enumerate(zip(states, labels)):
        for i in range(n_show):
            ax = axes[i, j]
            ax.imshow(x[i, 0].clamp(0., 1.).numpy(), cmap="gray", vmin=0., vmax=1.)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(lab if lab in ("init", "denoised") else f"$\\sigma$={lab}", fontsize=7)
    fig.suptitle("annealed Langevin on the digits: state after each noise level", fontsize=9)
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    fig = run(out=args.out, seed=args.seed, quick=args.quick, progress=args.progress)
    lines = [f"{'level':>9} {'pixel std':>10} {'NN dist':>9} {'moment err':>11}"]
    for row in fig["per_level"] + [{"level": "test data", **fig["test_data"]}]:
        lines.append(f"{row['level']:>9} {row['mean_pixel_std']:10.4f} {row['nn_dist']:9.4f} "
                     f"{row['moment_error']:11.4f}")
    lines.append(f"figure: {fig['png']}")
    report(NAME, fig, lines)
    return fig


if __name__ == "__main__":
    main()
