"""Compare samplers by quality per score evaluation (NFE), on the same axes.

``compare(sde, score_fn, reference_samples, shape, ...) -> list[dict]`` runs every predictor x corrector
pair of ``samplers.PREDICTORS`` / ``CORRECTORS`` (``pc_sample`` at several N), the probability-flow ODE at
several tolerances (``ode_sample``), NCSN annealed Langevin dynamics and every fast solver of
``samplers.fast.SOLVERS`` at several step counts, all from the same starting points z at T; one row per
run with its NFE (counted), wall time and quality. ``evaluation.comparison_report`` writes the table,
JSON and figure; ``--mode compare`` (``workflows.compare``) and ``benchmarks/compare_samplers.py`` call it.

Quality: 2-D data -> sliced Wasserstein distance to reference samples; with the closed-form mixture
also the mode-weight error and the narrow mode's spread, each relative to the converged probability-
flow ODE (dopri5, rtol = atol = 1e-7) started from the same points z as every deterministic solver.
Higher-dimensional data (images) -> ``mmd_rbf`` against the test split.
"""
from __future__ import annotations

import inspect
import time
from typing import Callable, Iterable

import torch

from sde_lib.base import SDE

from .comparison_report import format_row
from .distances import mmd_rbf, mode_spread, mode_weights_error, sliced_wasserstein

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
        log(format_row(row))

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
        log(format_row(row))

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
