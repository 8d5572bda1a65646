"""Score-matching objectives that need no noise target: sliced (SSM) and exact (Hyvarinen) score matching.

With s = score_fn(x, t) and J = grad_x s (the Jacobian of the score in the data dims), per sample:

* exact (implicit) score matching (Hyvarinen 2005):
      l(x) = tr(J) + 1/2 ||s||^2
  The trace takes D backward passes (D = dims per sample), so it is refused above ``max_dim``.
* sliced score matching (Song et al. 2019), v Rademacher or Gaussian with E[v v^T] = I:
      l(x) = 1/P sum_p [ v_p^T J v_p + 1/2 (v_p^T s)^2 ]          (variance_reduced=False)
      l(x) = 1/P sum_p [ v_p^T J v_p ] + 1/2 ||s||^2              (variance_reduced=True, "SSM-VR")
  one vector-Jacobian product per projection. Both are unbiased for the exact objective.

Both expect ``x`` drawn from the distribution whose score is wanted (clean data, or perturbed data
x_t ~ p_t with the network conditioned on t: "noise conditioning"); ``t`` is passed through to
``score_fn`` untouched (a time, a noise level, or None for an unconditional score). Gradients are
built with ``create_graph=True`` so the returned loss can be back-propagated into the parameters.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from sde_lib.checks import check_choice, check_generator, check_positive, check_tensor, rand, randn

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Optional[Tensor]], Tensor]

#: Largest number of dims per sample that ``exact_score_matching`` accepts by default (D backward passes).
EXACT_SM_MAX_DIM = 256


def _rademacher(shape, generator, device, dtype) -> Tensor:
    """Entries +1 / -1 with probability 1/2 each."""
    return (rand(shape, generator=generator, device=device, dtype=dtype) < 0.5).to(dtype) * 2 - 1


def _gaussian(shape, generator, device, dtype) -> Tensor:
    return randn(shape, generator=generator, device=device, dtype=dtype)


#: projection distributions v (each with E[v v^T] = I)
PROJECTIONS: dict[str, Callable] = {"rademacher": _rademacher, "gaussian": _gaussian}


def _check_inputs(score_fn, x, t) -> None:
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable score_fn(x, t), got {type(score_fn).__name__}")
    check_tensor("x", x)
    if t is not None:
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != x.shape[0]:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be None or a tensor of shape [{x.shape[0]}] (one time / noise level "
                             f"per sample of x), got {shape}")
        check_tensor("t", t)


def _score_with_input(score_fn: ScoreFn, x: Tensor, t: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """(x_in, s): a leaf copy of x that requires grad, and s = score_fn(x_in, t) checked to be like x."""
    x_in = x.detach().requires_grad_(True)
    s = score_fn(x_in, t)
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    return x_in, s


def _vjp(s: Tensor, x_in: Tensor, v: Tensor, create_graph: bool) -> Tensor:
    """v^T (grad_x s), per sample (shaped like x); zeros if s does not depend on x."""
    if not s.requires_grad:
        return torch.zeros_like(x_in)
    (g,) = torch.autograd.grad(s, x_in, grad_outputs=v, create_graph=create_graph, retain_graph=True,
                               allow_unused=True)
    return torch.zeros_like(x_in) if g is None else g


def sliced_score_matching(score_fn: ScoreFn, x: Tensor, t: Optional[Tensor], n_projections: int = 1,
                          projection: str = "rademacher", variance_reduced: bool = True,
                          generator: torch.Generator | None = None, create_graph: bool = True) -> Tensor:
    """Sliced score-matching loss per sample [B].

    l(x) = 1/P sum_p v_p^T (grad_x s) v_p + 1/2 ||s||^2            (variance_reduced, SSM-VR)
    l(x) = 1/P sum_p [v_p^T (grad_x s) v_p + 1/2 (v_p^T s)^2]      (plain SSM)
    with s = score_fn(x, t), P = ``n_projections`` projections v_p ~ ``projection``
    ("rademacher" or "gaussian"), all drawn from ``generator``.
    """
    _check_inputs(score_fn, x, t)
    check_positive("n_projections", n_projections, integer=True)
    check_choice("projection", projection, PROJECTIONS)
    check_generator("generator", generator)
    draw = PROJECTIONS[projection]
    B = x.shape[0]
    with torch.enable_grad():
        x_in, s = _score_with_input(score_fn, x, t)
        sf = s.reshape(B, -1)
        jac_term = torch.zeros(B, device=s.device, dtype=s.dtype)
        norm_term = torch.zeros_like(jac_term)
        for _ in range(n_projections):
            v = draw(x.shape, generator, x.device, s.dtype)
            vj = _vjp(s, x_in, v, create_graph)                     # v^T J, shaped like x
            jac_term = jac_term + (vj * v).reshape(B, -1).sum(-1)   # v^T J v
            if not variance_reduced:
                norm_term = norm_term + 0.5 * (sf * v.reshape(B, -1)).sum(-1) ** 2
        jac_term = jac_term / n_projections
        if variance_reduced:
            norm_term = 0.5 * sf.pow(2).sum(-1)
        else:
            norm_term = norm_term / n_projections
        return jac_term + norm_term


def exact_score_matching(score_fn: ScoreFn, x: Tensor, t: Optional[Tensor], max_dim: int = EXACT_SM_MAX_DIM,
                         generator: torch.Generator | None = None, create_graph: bool = True) -> Tensor:
    """Hyvarinen's implicit score-matching loss per sample [B]: tr(grad_x s) + 1/2 ||s||^2, s = score_fn(x, t).

    The trace is exact: one backward pass per data dimension, so samples with more than ``max_dim``
    dims (default ``EXACT_SM_MAX_DIM`` = 256) are refused (use sliced score matching there).
    ``generator`` is accepted for a signature uniform with ``sliced_score_matching`` and unused.
    """
    _check_inputs(score_fn, x, t)
    check_positive("max_dim", max_dim, integer=True)
    check_generator("generator", generator)
    B = x.shape[0]
    D = int(x[0].numel())
    if D > max_dim:
        raise ValueError(f"x has D={D} dims per sample but exact_score_matching computes the Jacobian trace "
                         f"with D backward passes and is limited to max_dim={max_dim} dims; use "
                         f"objective='ssm' (sliced score matching) or raise max_dim")
    with torch.enable_grad():
        x_in, s = _score_with_input(score_fn, x, t)
        sf = s.reshape(B, -1)
        trace = torch.zeros(B, device=s.device, dtype=s.dtype)
        for i in range(D):
            e = torch.zeros_like(sf)
            e[:, i] = 1.
            g = _vjp(s, x_in, e.reshape(s.shape), create_graph)     # row i of J
            trace = trace + g.reshape(B, -1)[:, i]
        return trace + 0.5 * sf.pow(2).sum(-1)


#: name -> per-sample objective ``fn(score_fn, x, t, **kwargs) -> [B]`` (DSM lives in training/losses.py)
OBJECTIVES: dict[str, Callable[..., Tensor]] = {
    "ssm": sliced_score_matching,
    "exact_sm": exact_score_matching,
}


def get_objective(name: str) -> Callable[..., Tensor]:
    """The per-sample objective registered under ``name`` (one of ``OBJECTIVES``)."""
    check_choice("objective", name, OBJECTIVES)
    return OBJECTIVES[name]
