"""Few-step and adaptive samplers behind one entry point, ``fast_sample``, and the ``SOLVERS`` registry.

Deterministic probability-flow ODE solvers (``fast_ode``): ``heun`` (EDM), ``dpm_solver_2``,
``dpm_solver_3`` (multistep DPM-Solver++), ``ddim``; (``fast_multistep``) ``ipndm``, ``unipc``, ``deis``;
time grids in ``grids``. Reverse-SDE solvers (``fast_sde``):
``adaptive_sde`` ("Gotta go fast" error-controlled EM / improved Euler, with rejection sampling with
memory for the noise) and ``torchsde_<method>`` for torchsde's methods (euler, milstein, srk,
euler_heun, heun, midpoint, log_ode, reversible_heun). The NFE returned is the number of
``score_fn`` calls actually made.
"""
from __future__ import annotations

import inspect

import torch

from sde_lib.base import SDE
from sde_lib.checks import check_choice, check_generator, check_shape, check_tensor
from .fast_common import SOLVERS, CountedScore, ScoreFn, is_drift_free
from . import fast_ode as _fast_ode  # noqa: F401  (registers the ODE solvers)
from . import fast_sde as _fast_sde  # noqa: F401  (registers the SDE solvers)
from . import fast_multistep as _fast_multistep  # noqa: F401  (registers ipndm, unipc, deis)

Tensor = torch.Tensor

__all__ = ["fast_sample", "SOLVERS", "AUTO", "auto_solver"]


def fast_sample(sde: SDE, score_fn: ScoreFn, shape, solver: str = "heun", steps: int = 18,
                z: Tensor | None = None, generator: torch.Generator | None = None, device="cpu",
                progress: bool = False, **solver_kwargs) -> tuple[Tensor, int]:
    """Sample with a few-step or adaptive solver from T (``z``, else the prior) down to the data.

    ``steps``: heun -> grid intervals (NFE = 2 steps - 1); ddim, dpm_solver_k, ipndm, unipc, deis -> NFE
    (= steps exactly); torchsde_* -> fixed steps (NFE per method, plus one denoising NFE); adaptive_sde ->
    initial step (T - eps) / steps. ``solver="auto"``: the recommended solver for an NFE budget of
    ``steps`` (``AUTO``; NFE = steps); the solver keyword arguments must then be valid for it.
    Extra keyword arguments go to the solver (e.g. ``rho``, ``eps``, ``grid``, ``prediction``,
    ``rtol``/``atol`` for ``adaptive_sde``). Returns (samples [shape], NFE).
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"sde must be an sde_lib.SDE, got {type(sde).__name__}")
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable score_fn(x, t), got {type(score_fn).__name__}")
    shape = check_shape("shape", shape)
    if solver == "auto":
        ok = isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1
        solver = auto_solver(steps if ok else 1, sde)
    check_choice("solver", solver, SOLVERS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    check_generator("generator", generator)
    if z is None:
        z = sde.prior_sampling(shape, generator=generator, device=device)
    else:
        check_tensor("z", z)
        if tuple(z.shape) != shape:
            raise ValueError(f"z must have shape {shape} (the `shape` argument), got {tuple(z.shape)}")
    _check_solver_kwargs(solver, solver_kwargs)
    counted = CountedScore(score_fn)
    with torch.no_grad():
        x = SOLVERS[solver](sde, counted, z, steps, generator=generator, progress=progress, **solver_kwargs)
    return x, counted.nfe


#: solver="auto": the recommended solver per SDE family (drift-free = VE, other = VP / sub-VP) and NFE
#: budget (``steps`` = NFE for each of them), from benchmarks/fewstep.py
#: (benchmarks/results/fewstep/fewstep.md, ``recommend`` / ``auto_table``): per budget, the solver with
#: the smallest worst error ratio to the best peer over all of that family's closed-form workloads.
#: (lowest NFE, solver) pairs: VE deis below 9 NFE, ipndm from 9; VP unipc at every budget.
AUTO = {"drift_free": ((1, "deis"), (9, "ipndm")), "other": ((1, "unipc"),)}


def auto_solver(nfe: int, sde: SDE | None = None) -> str:
    """The solver ``solver="auto"`` uses for an NFE budget ``nfe`` and ``sde`` (see ``AUTO``)."""
    table = AUTO["drift_free" if sde is not None and is_drift_free(sde) else "other"]
    name = table[0][1]
    for lo, choice in table:
        if nfe >= lo:
            name = choice
    return name


_FIXED = {"sde", "score_fn", "z", "steps", "generator", "progress", "order", "method", "kwargs"}


def _check_solver_kwargs(solver: str, kwargs: dict) -> None:
    """Unknown solver options raise ValueError naming the option and listing the valid ones."""
    fn = SOLVERS[solver]
    target = getattr(fn, "forwards_to", fn)
    fixed = _FIXED if target is not fn else _FIXED - {"order"}     # wrappers fix the order by name
    allowed = sorted(set(inspect.signature(target).parameters) - fixed)
    for name in kwargs:
        if name not in allowed:
            raise ValueError(f"{name} is not an option of solver {solver!r}; its options are {allowed}")
