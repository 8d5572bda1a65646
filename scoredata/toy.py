"""2-D toy sets (continuous data, roughly unit scale), drawn from seeded generators."""
from __future__ import annotations

import math
from typing import Callable

import torch

from sde_lib.checks import check_choice, check_generator, check_positive, rand, randn
from sde_lib.mixture import two_mode_mixture

from .splits import SPLITS

Tensor = torch.Tensor


def _two_mode(n: int, generator) -> Tensor:
    """Exact samples of sde_lib.mixture.two_mode_mixture(): 0.2 N((-2.4,-2.4), 0.25^2) + 0.8 N((0.6,0.6), 0.5^2)."""
    return two_mode_mixture().sample(n, generator=generator, dtype=torch.float32)


def _eight_gaussians(n: int, generator) -> Tensor:
    """Eight N(c_k, 0.1^2 I) with equal weights, centres c_k on the circle of radius 1.4 (angles 2 pi k / 8)."""
    k = torch.floor(rand((n,), generator) * 8).clamp(max=7)
    angle = 2 * math.pi * k / 8
    centres = 1.4 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.1 * randn((n, 2), generator)


def _moons(n: int, generator) -> Tensor:
    """Two interleaved half circles (upper (cos u, sin u), lower (1 - cos u, 1/2 - sin u), u ~ U(0, pi)),
    each with prob. 1/2, noise N(0, 0.1^2), then centred by (1/2, 1/4) and scaled by 1.4."""
    u = math.pi * rand((n,), generator)
    lower = rand((n,), generator) < 0.5
    upper_pts = torch.stack([torch.cos(u), torch.sin(u)], dim=1)
    lower_pts = torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], dim=1)
    x = torch.where(lower[:, None], lower_pts, upper_pts) + 0.1 * randn((n, 2), generator)
    return 1.4 * (x - torch.tensor([0.5, 0.25]))


def _swiss_roll(n: int, generator) -> Tensor:
    """2-D Swiss roll (theta cos theta, theta sin theta) / 7, theta = 1.5 pi (1 + 2u), plus N(0, 0.05^2)."""
    theta = 1.5 * math.pi * (1 + 2 * rand((n,), generator))
    x = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1) / 7.
    return x + 0.05 * randn((n, 2), generator)


def _checkerboard(n: int, generator) -> Tensor:
    """Uniform on the 8 'even' unit squares of [-2, 2]^2: floor(x1) + floor(x2) is even."""
    x1 = 4 * rand((n,), generator) - 2
    shift = 2 * (rand((n,), generator) < 0.5).float()
    x2 = rand((n,), generator) - shift + torch.remainder(torch.floor(x1), 2)
    return torch.stack([x1, x2], dim=1)


#: name -> fn(n, generator) -> [n, 2] float32 (all roughly unit scale)
TOY_SETS: dict[str, Callable[[int, "torch.Generator | None"], Tensor]] = {
    "two_mode": _two_mode,
    "eight_gaussians": _eight_gaussians,
    "moons": _moons,
    "swiss_roll": _swiss_roll,
    "checkerboard": _checkerboard,
}


def toy(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` samples [n, 2] (float32, CPU) of the toy set ``name`` (one of ``TOY_SETS``)."""
    check_choice("name", name, TOY_SETS)
    check_positive("n", n, integer=True)
    check_generator("generator", generator)
    return TOY_SETS[name](n, generator).to(torch.float32).cpu()


def _split_generator(config, split: str) -> torch.Generator:
    """Independent streams per split, seeded 2 * config.seed + (0 train | 1 test)."""
    return torch.Generator().manual_seed(2 * int(config.seed) + SPLITS.index(split))


def load_toy2d(config, split: str) -> Tensor:
    """config.data.n_train / n_test points of the toy set config.data.toy."""
    name = str(config.data.toy)
    check_choice("config.data.toy", name, TOY_SETS)
    n = int(config.data.n_train if split == "train" else config.data.n_test)
    check_positive(f"config.data.n_{split}", n, integer=True)
    return toy(name, n, _split_generator(config, split))
