"""NCSNv2 recipe (Song & Ermon 2020): noise scales and Langevin step size read off a data set.

* Technique 1: ``sigma_1 = max_{i,j} ||x_i - x_j||`` (largest pairwise Euclidean distance).
* Technique 2: geometric ratio ``gamma = sigma_{i-1} / sigma_i`` solving
  ``Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma) = 0.5`` (brentq), then
  ``L = ceil(log(sigma_1 / sigma_L) / log(gamma)) + 1`` noise scales.
* Technique 4: for ``T`` Langevin steps per level, the step size ``eps`` that brings
  ``h(eps) = (1 - eps/s^2)^(2T) (gamma^2 - 2 eps/(s^2 - s^2 (1 - eps/s^2)^2)) + 2 eps/(s^2 - s^2 (1 - eps/s^2)^2)``
  (``s = sigma_L``) as close to 1 as possible. With ``u = eps / s^2`` this is
  ``h(u) = (1 - u)^(2T) (gamma^2 - c) + c``, ``c = 2 / (2 - u)``; for ``gamma >= 1`` and ``u > 0`` one has
  ``h(u) > 1`` (``h = 1`` has no root), so "closest to 1" is the minimiser of ``h``: the root of
  ``h'(u) = -2T (1 - u)^(2T-1) (gamma^2 - c) + c^2 / 2 (1 - (1 - u)^(2T))``, found with brentq.
  (For CIFAR-10: T = 5, gamma = 5000^(1/231), sigma_L = 0.01 gives eps = 6.18e-6; the paper uses 6.2e-6.)
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from sde_lib.checks import check_generator, check_positive, check_tensor

Tensor = torch.Tensor

__all__ = ["max_pairwise_distance", "ratio_criterion", "noise_ratio", "num_noise_scales",
           "step_size_criterion", "step_size_criterion_grad", "langevin_step_size", "Recipe",
           "propose", "recipe_overrides", "recipe_config_text", "write_recipe_config"]


# ---------------------------------------------------------------- Technique 1
def max_pairwise_distance(x: Tensor, chunk: int = 1024, max_points: Optional[int] = None,
                          generator: torch.Generator | None = None) -> float:
    """Technique 1: ``max_{i<j} ||x_i - x_j||_2`` over the flattened samples (exact, chunked O(n^2)).

    ``max_points`` evaluates it on a random subset (drawn with ``generator``) for very large sets.
    """
    check_tensor("x", x)
    check_positive("chunk", chunk, integer=True)
    check_generator("generator", generator)
    if x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 samples to have a pairwise distance, got {x.shape[0]}")
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if max_points is not None:
        check_positive("max_points", max_points, integer=True)
        if max_points < flat.shape[0]:
            gdev = generator.device if generator is not None else torch.device("cpu")
            idx = torch.randperm(flat.shape[0], generator=generator, device=gdev)[:max_points]
            flat = flat[idx.to(flat.device)]
    best = 0.
    for i in range(0, flat.shape[0], chunk):
        d = torch.cdist(flat[i:i + chunk], flat)
        best = max(best, float(d.max()))
    return best


# ---------------------------------------------------------------- Technique 2
def ratio_criterion(gamma, dim: int):
    """``Phi(sqrt(2D)(gamma-1) + 3 gamma) - Phi(sqrt(2D)(gamma-1) - 3 gamma)`` (Technique 2's left side)."""
    a = math.sqrt(2. * dim)
    gamma = np.asarray(gamma, dtype=np.float64)
    return norm.cdf(a * (gamma - 1.) + 3. * gamma) - norm.cdf(a * (gamma - 1.) - 3. * gamma)


def noise_ratio(dim: int, target: float = 0.5, gamma_max: float = 100.) -> float:
    """Technique 2: the smallest ``gamma > 1`` with ``ratio_criterion(gamma, dim) = target`` (brentq).

    The criterion starts at Phi(3) - Phi(-3) = 0.9973 at gamma = 1; for small ``dim`` (D <= 7 at
    target 0.5) it never comes down to ``target`` and a ValueError naming ``dim`` is raised.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int (data dimension D), got {dim!r}")
    if not (isinstance(target, (int, float)) and 0. < target < float(ratio_criterion(1., dim))):
        raise ValueError(f"target must be in (0, {float(ratio_criterion(1., dim)):.4f}), got {target!r}")
    grid = 1. + np.geomspace(1e-6, gamma_max - 1., 4000)
    vals = ratio_criterion(grid, dim) - target
    below = np.nonzero(vals < 0)[0]
    if below.size == 0:
        raise ValueError(f"dim={dim} is too small for Technique 2: Phi(sqrt(2D)(g-1)+3g) - Phi(sqrt(2D)(g-1)-3g) "
                         f"stays above target={target} for all gamma in (1, {gamma_max}]; choose the "
                         "number of noise scales by hand")
    k = int(below[0])
    lo = 1. if k == 0 else float(grid[k - 1])
    return float(brentq(lambda g: float(ratio_criterion(g, dim)) - target, lo, float(grid[k]),
                        xtol=1e-14, rtol=1e-14))


def num_noise_scales(sigma_max: float, sigma_min: float, gamma: float) -> int:
    """``L = ceil(log(sigma_max / sigma_min) / log(gamma)) + 1`` geometric levels from sigma_max down to sigma_min."""
    check_positive("sigma_min", sigma_min)
    check_positive("sigma_max", sigma_max)
    if not sigma_max > sigma_min:
        raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")
    if not (isinstance(gamma, (int, float)) and gamma > 1.):
        raise ValueError(f"gamma must be a number > 1, got {gamma!r}")
    return int(math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma))) + 1


# ---------------------------------------------------------------- Technique 4
def step_size_criterion(eps, sigma_min: float, gamma: float, n_steps: int):
    """Technique 4's left side ``h(eps)`` (the variance ratio after ``n_steps`` = T Langevin steps at sigma_L)."""
    s2 = sigma_min ** 2
    eps = np.asarray(eps, dtype=np.float64)
    u = eps / s2
    c = 2. * eps / (s2 - s2 * (1. - u) ** 2)
    return (1. - u) ** (2 * n_steps) * (gamma ** 2 - c) + c


def step_size_criterion_grad(eps, sigma_min: float, gamma: float, n_steps: int):
    """``dh/d eps`` in closed form: ``[-2T(1-u)^(2T-1)(gamma^2 - c) + c^2/2 (1 - (1-u)^(2T))] / sigma_L^2``."""
    s2 = sigma_min ** 2
    u = np.asarray(eps, dtype=np.float64) / s2
    c = 2. / (2. - u)
    a = (1. - u) ** (2 * n_steps)
    dh_du = -2. * n_steps * (1. - u) ** (2 * n_steps - 1) * (gamma ** 2 - c) + 0.5 * c ** 2 * (1. - a)
    return dh_du / s2


def langevin_step_size(sigma_min: float, gamma: float, n_steps: int) -> float:
    """Technique 4: the ``eps`` in (0, sigma_L^2) minimising ``h`` (closest to 1), the brentq root of ``h'``."""
    check_positive("sigma_min", sigma_min)
    check_positive("n_steps", n_steps, integer=True)
    if not (isinstance(gamma, (int, float)) and gamma > 1.):
        raise ValueError(f"gamma must be a number > 1, got {gamma!r}")
    s2 = sigma_min ** 2
    # h'(0+) = -2T(gamma^2 - 1)/s2 < 0 and h'(s2-) = 2/s2 > 0: a sign change brackets the minimiser.
    lo, hi = s2 * 1e-12, s2 * (1. - 1e-12)
    return float(brentq(lambda e: float(step_size_criterion_grad(e, sigma_min, gamma, n_steps)), lo, hi,
                        xtol=s2 * 1e-15, rtol=1e-13, maxiter=500))


# ---------------------------------------------------------------- the whole proposal
@dataclasses.dataclass
class Recipe:
    """What the NCSNv2 techniques propose for one data set."""
    dim: int
    n_points: int
    sigma_max: float
    sigma_min: float
    gamma: Optional[float]        # None when Technique 2 does not apply (small D)
    num_scales: int
    n_steps_each: int             # T
    step_lr: float                # eps (NCSN's alpha_i = eps sigma_i^2 / sigma_L^2)
    criterion: float              # h(eps), the closeness of Technique 4's ratio to 1
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        g = "n/a" if self.gamma is None else f"{self.gamma:.6f}"
        lines = [f"NCSNv2 recipe for {self.n_points} points of dimension D={self.dim}",
                 f"  Technique 1  sigma_max = max pairwise distance = {self.sigma_max:.6g}",
                 f"  (sigma_min = {self.sigma_min:.6g})",
                 f"  Technique 2  gamma = {g}  ->  L = {self.num_scales} noise scales",
                 f"  Technique 4  T = {self.n_steps_each} steps per level -> eps = {self.step_lr:.6g} "
                 f"(h(eps) = {self.criterion:.6f})"]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def propose(x: Tensor, sigma_min: float = 0.01, n_steps_each: int = 5, target: float = 0.5,
            num_scales: Optional[int] = None, max_points: Optional[int] = None,
            generator: torch.Generator | None = None) -> Recipe:
    """Apply Techniques 1, 2 and 4 to the data ``x`` [n, *shape].

    ``num_scales`` overrides Technique 2 (used as the fallback when D is too small for it; then gamma is
    the ladder's actual ratio ``(sigma_max / sigma_min)^(1/(L-1))``).
    """
    check_tensor("x", x)
    check_positive("n_steps_each", n_steps_each, integer=True)
    sigma_max = max_pairwise_distance(x, max_points=max_points, generator=generator)
    if not sigma_max > sigma_min:
        raise ValueError(f"sigma_min must be below the largest pairwise distance {sigma_max:.4g}, got {sigma_min}")
    dim = int(x[0].numel())
    note = ""
    gamma: Optional[float]
    if num_scales is None:
        try:
            gamma = noise_ratio(dim, target)
        except ValueError as err:
            if "dim=" not in str(err):
                raise
            num_scales, gamma = 10, None
            note = f"D={dim} is too small for Technique 2; using L=10 (the original NCSN ladder length)"
        else:
            num_scales = num_noise_scales(sigma_max, sigma_min, gamma)
    else:
        check_positive("num_scales", num_scales, integer=True)
        gamma = None
    if num_scales < 2:
        raise ValueError(f"num_scales must be >= 2, got {num_scales}")
    ladder_gamma = (sigma_max / sigma_min) ** (1. / (num_scales - 1))
    eps = langevin_step_size(sigma_min, ladder_gamma, n_steps_each)
    crit = float(step_size_criterion(eps, sigma_min, ladder_gamma, n_steps_each))
    return Recipe(dim=dim, n_points=int(x.shape[0]), sigma_max=sigma_max, sigma_min=float(sigma_min),
                  gamma=gamma, num_scales=int(num_scales), n_steps_each=int(n_steps_each), step_lr=eps,
                  criterion=crit, note=note)


def recipe_overrides(recipe: Recipe, model_name: str | None = None) -> dict:
    """The config entries the recipe sets: a discrete VE (NCSN) model over ``num_scales`` levels from
    sigma_max to sigma_min, sampled with annealed Langevin (predictor "none", corrector "ald") with T =
    ``n_steps_each`` steps per level and step eps = 2 (snr sigma_min)^2, i.e. snr = sqrt(eps / (2 sigma_min^2))
    (the ``ald`` corrector's step alpha_i = 2 (snr sigma_i)^2 = eps sigma_i^2 / sigma_min^2). Networks that
    support it get ``scale_by_sigma`` (Technique 3)."""
    out = {"training.sde": "vesde", "training.continuous": False,
           "model.sigma_max": float(recipe.sigma_max), "model.sigma_min": float(recipe.sigma_min),
           "model.num_scales": int(recipe.num_scales),
           "sampling.method": "pc", "sampling.predictor": "none", "sampling.corrector": "ald",
           "sampling.n_steps_each": int(recipe.n_steps_each),
           "sampling.snr": math.sqrt(recipe.step_lr / (2. * recipe.sigma_min ** 2))}
    if model_name in ("mlp", "ncsnpp"):
        out["model.scale_by_sigma"] = True
    if model_name == "ncsnpp":      # a discrete NCSN++ embeds the ladder index (score_sde ve/cifar10_ncsnpp)
        out["model.embedding_type"] = "positional"
    return out


def recipe_config_text(recipe: Recipe, base) -> str:
    """Python source of a config applying ``recipe_overrides`` to ``base``: a module name whose
    ``get_config()`` is the starting point (e.g. "configs.ve.digits_ncsn"), or a config / dict that is
    written out literally (a self-contained file)."""
    doc = str(recipe)
    if isinstance(base, str):
        head = f"from {base} import get_config as _base_config\n\n\n"
        build = "    config = _base_config()\n"
        model_name = None
        try:
            import importlib
            model_name = str(importlib.import_module(base).get_config().model.name)
        except Exception:  # the written file still works; only scale_by_sigma is not decided
            pass
        origin = base
    else:
        d = base.to_dict() if hasattr(base, "to_dict") else dict(base)
        head = "import ml_collections\n\n\n"
        build = f"    config = ml_collections.ConfigDict({d!r})\n"
        model_name = d.get("model", {}).get("name")
        origin = "the given config"
    lines = [f"    config.{k} = {v!r}\n" for k, v in recipe_overrides(recipe, model_name).items()]
    return (f'"""NCSNv2 recipe applied to {origin} (written by training.recipes).\n\n{doc}\n"""\n'
            + head + "def get_config():\n" + build + "".join(lines) + "    return config\n")


def write_recipe_config(recipe: Recipe, path: str, base="configs.ve.digits_ncsn") -> str:
    """Write ``recipe_config_text(recipe, base)`` to ``path`` (atomically) and return the path."""
    text = recipe_config_text(recipe, base)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
