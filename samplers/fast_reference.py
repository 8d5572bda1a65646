"""Converged probability-flow ODE reference for judging few-step solvers (independent of them).

Integrates dx/dt = f(x, t) - g(t)^2 score(x, t) / 2 (``sde.reverse(score_fn, True)``) in the data
variable x from T to eps with torchdiffeq (dopri5 by default), then the denoising step
x0 = (x + s(eps)^2 score(x, eps)) / m(eps). Used with tight tolerances (1e-7) in float64.
"""
from __future__ import annotations

import torch

from .fast_common import CountedScore, tweedie_denoise

Tensor = torch.Tensor


def pf_ode_reference(sde, score_fn, z: Tensor, rtol: float = 1e-7, atol: float = 1e-7, eps: float = 1e-3,
                     method: str = "dopri5", denoise: bool = True) -> tuple[Tensor, int]:
    """PF-ODE solution from the starting points ``z`` at T; returns (samples, NFE)."""
    from torchdiffeq import odeint

    counted = CountedScore(score_fn)
    rev = sde.reverse(counted, probability_flow=True)
    B = z.shape[0]

    def rhs(t, x):
        drift, _ = rev._sde(x, t.to(x.dtype).expand(B))
        return drift

    T = float(sde.T)
    ts = torch.tensor([T, eps], dtype=z.dtype, device=z.device)
    # adaptive torchdiffeq solvers step past the last time and interpolate back: make them land on
    # eps (the PF drift of VP/sub-VP is undefined for t < 0), and give a first step so the initial
    # step-size heuristic does not probe far outside [eps, T].
    options = {"step_t": torch.tensor([eps], dtype=z.dtype), "first_step": 1e-3 * (T - eps)} \
        if method in ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2") else None
    with torch.no_grad():
        x = odeint(rhs, z, ts, rtol=rtol, atol=atol, method=method, options=options)[-1]
        if denoise:
            x = tweedie_denoise(sde, counted, x, eps)
    return x, counted.nfe
