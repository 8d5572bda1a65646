"""Divergence of a vector field from one forward pass and vector-Jacobian products.

For an output ``out = F(x)`` (shaped like ``x`` [B, *shape]) built under autograd:

* Hutchinson (Skilling-Hutchinson) estimator with P fixed probes v_p, E[v v^T] = I:
      div F(x) ~= 1/P sum_p v_p^T (dF/dx)^T v_p        (one VJP per probe)
  Probes are Rademacher (+-1) or standard Gaussian, drawn once per sample and kept fixed along the
  ODE trajectory (``PROBES`` registry).
* Exact divergence: sum_i d out_i / d x_i, one VJP per data dimension (small D only).

Both take the graph of ``out`` w.r.t. ``x`` and never build a graph of their own (create_graph=False).
"""
from __future__ import annotations

from typing import Callable

import torch

from sde_lib.checks import check_score_output, rand, randn

Tensor = torch.Tensor


# ---------------------------------------------------------------------------- probes
def rademacher_probes(shape, generator: torch.Generator | None = None, device="cpu",
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """Independent +-1 entries with probability 1/2 each."""
    u = rand(shape, generator=generator, device=device, dtype=dtype)
    return torch.where(u < 0.5, -1., 1.).to(dtype)


def gaussian_probes(shape, generator: torch.Generator | None = None, device="cpu",
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Independent standard normal entries."""
    return randn(shape, generator=generator, device=device, dtype=dtype)


#: probe distributions for the Hutchinson estimator: name -> draw(shape, generator, device, dtype)
PROBES: dict[str, Callable[..., Tensor]] = {
    "rademacher": rademacher_probes,
    "gaussian": gaussian_probes,
}


# ---------------------------------------------------------------------------- estimators
def _vjp(out: Tensor, x: Tensor, v: Tensor, retain: bool) -> Tensor | None:
    """v^T d out / d x (None when ``out`` does not depend on ``x``)."""
    return torch.autograd.grad(out, x, v, retain_graph=retain, allow_unused=True)[0]


def hutchinson_divergence(out: Tensor, x: Tensor, probes: Tensor) -> Tensor:
    """1/P sum_p v_p . (v_p^T dF/dx) for probes [P, B, *shape]; returns [B] (detached)."""
    B = x.shape[0]
    P = probes.shape[0]
    if not out.requires_grad:                       # field independent of x: zero divergence
        return out.new_zeros(B)
    div = None
    for p in range(P):
        v = probes[p]
        g = _vjp(out, x, v, retain=p < P - 1)
        if g is None:
            return out.new_zeros(B)
        d = torch.linalg.vecdot(g.reshape(B, -1), v.reshape(B, -1))
        div = d if div is None else div + d
    return div if P == 1 else div / P


def exact_divergence(out: Tensor, x: Tensor, probes: Tensor | None = None) -> Tensor:
    """sum_i d out_i / d x_i by one VJP per data dimension (basis vectors e_i); returns [B]."""
    B = x.shape[0]
    if not out.requires_grad:
        return out.new_zeros(B)
    flat = out.reshape(B, -1)
    D = flat.shape[1]
    div = out.new_zeros(B)
    for i in range(D):
        g = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < D - 1, allow_unused=True)[0]
        if g is None:
            return out.new_zeros(B)
        div = div + g.reshape(B, -1)[:, i]
    return div


#: divergence estimators by the ``hutchinson`` name: "exact" needs no probes
DIVERGENCES: dict[str, Callable[[Tensor, Tensor, Tensor | None], Tensor]] = {
    "rademacher": hutchinson_divergence,
    "gaussian": hutchinson_divergence,
    "exact": exact_divergence,
}


# ---------------------------------------------------------------------------- the score's graph
def check_score_graph(score: Tensor, x: Tensor) -> None:
    """First evaluation of the likelihood's score: shaped like x and finite (``check_score_output``),
    and differentiable w.r.t. x by autograd. A score evaluated under ``torch.no_grad()`` or
    ``torch.inference_mode()``, detached, computed in numpy, or computed from ``x.detach()`` would make
    every divergence estimator return the divergence of f alone (a wrong log-likelihood, silently).
    Costs one vector-Jacobian product and one host sync, once per solve."""
    check_score_output(score, x, "score_fn")
    hint = ("log_likelihood takes the divergence of the score by autograd: do not evaluate score_fn under "
            "torch.no_grad() or torch.inference_mode(), do not detach x or the output, and compute it with "
            "torch operations (not numpy)")
    if not score.requires_grad:
        raise ValueError(f"score_fn returned a tensor without an autograd graph (requires_grad=False) although "
                         f"its input x requires grad; {hint}")
    g = torch.autograd.grad(score, x, torch.ones_like(score), retain_graph=True, allow_unused=True)[0]
    if g is None:
        raise ValueError(f"score_fn's output has an autograd graph but does not depend on its input x "
                         f"(e.g. a network fed x.detach()); {hint}")
