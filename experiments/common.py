"""Shared plumbing for the experiment scripts: command line, figure writing, printed figures, a small MLP.

Every experiment module exposes ``run(out=None, seed=0, quick=False, progress=False, **settings) -> dict``
(the figures it prints) and ``main(argv=None)``; ``quick`` selects the reduced setting used by the tests.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Callable, Sequence

import torch
from torch import nn

from sde_lib.mixture import GaussianMixture

Tensor = torch.Tensor


# ------------------------------------------------------------------------------ command line
def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """--out DIR (PNG folder), --seed, --quick (the reduced test setting), --no-progress, --threads, plus
    ``extra`` options. Sets torch's thread count (1 by default)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default="experiments_out", help="folder for the PNG (default: experiments_out)")
    p.add_argument("--seed", type=int, default=0, help="seed of every generator used")
    p.add_argument("--quick", action="store_true", help="the reduced setting used by the tests")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def settings(defaults: dict, quick_overrides: dict, quick: bool, overrides: dict) -> dict:
    """The experiment's settings: ``defaults``, then the reduced ones when ``quick``, then ``overrides``."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"settings must be among {sorted(defaults)}, got unknown {sorted(unknown)}")
    out = dict(defaults)
    if quick:
        out.update(quick_overrides)
    out.update(overrides)
    return out


def report(name: str, figures: dict, lines: Sequence[str]) -> None:
    """Print the figures as one JSON line, then a short human-readable summary."""
    print(json.dumps({"experiment": name, **figures}, sort_keys=True, default=_jsonable))
    for line in lines:
        print(line)


def _jsonable(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


# ------------------------------------------------------------------------------ figures
def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out: str | None, name: str) -> str | None:
    """Write ``fig`` to ``out/name.png`` (creating ``out``); returns the path, or None when ``out`` is None."""
    plt = pyplot()
    if out is None:
        plt.close(fig)
        return None
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ data
def ncsn_mixture() -> GaussianMixture:
    """The well-separated mixture of NCSN's Figs. 2-3: 0.2 N((-5,-5), I) + 0.8 N((5,5), I)."""
    return GaussianMixture([0.2, 0.8], [[-5., -5.], [5., 5.]], [1., 1.])


# ------------------------------------------------------------------------------ small networks
class ScoreMLP(nn.Module):
    """Unconditional score network s(x) for flat data [B, D]: an MLP with smooth (SiLU) activations,
    so that its Jacobian (needed by sliced score matching) is smooth. ``forward(x, t=None)`` ignores t."""

    def __init__(self, dim: int, hidden: int = 128, n_layers: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape)


def late_spread(losses: Sequence[float], fraction: float) -> dict:
    """Statistics of the last ``fraction`` of a loss curve: std, mean, std / |mean| and the drift
    (mean of the second half of that window minus the mean of the first half)."""
    v = torch.as_tensor(list(losses), dtype=torch.float64)
    w = v[int(math.floor(len(v) * (1 - fraction))):]
    half = w.numel() // 2
    mean = float(w.mean())
    return {"std": float(w.std()), "mean": mean, "rel_std": float(w.std()) / max(abs(mean), 1e-12),
            "drift": float(w[half:].mean() - w[:half].mean())}
