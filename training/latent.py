"""Latent-space tools on top of ``samplers.encode`` / ``samplers.decode`` (the probability-flow ODE).

Spherical interpolation between the latents z0 = encode(x0), z1 = encode(x1):

    slerp(z0, z1; a) = sin((1 - a) theta) / sin(theta) z0 + sin(a theta) / sin(theta) z1,
    cos(theta) = <z0, z1> / (||z0|| ||z1||),

(linear interpolation when z0 and z1 are parallel). Latents of the Gaussian prior concentrate on a
sphere of radius ~ prior_std sqrt(D); slerp stays near that sphere where a straight line would cut
through its inside (atypically small norms), so decode(slerp(...)) stays on the data manifold.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from sde_lib.base import SDE
from sde_lib.checks import check_positive, check_tensor

Tensor = torch.Tensor

__all__ = ["slerp", "interpolate"]


def slerp(z0: Tensor, z1: Tensor, alphas: Sequence[float] | Tensor) -> Tensor:
    """Spherical interpolation of each pair (z0[b], z1[b]) at the fractions ``alphas`` [n]:
    returns [B, n, *shape] (alpha = 0 gives z0, alpha = 1 gives z1 up to rounding)."""
    check_tensor("z0", z0)
    check_tensor("z1", z1)
    if z0.shape != z1.shape:
        raise ValueError(f"z1 must have the shape of z0 {tuple(z0.shape)}, got {tuple(z1.shape)}")
    a = torch.as_tensor(alphas, dtype=z0.dtype, device=z0.device)
    if a.dim() != 1 or a.numel() == 0 or not bool(torch.isfinite(a).all()):
        raise ValueError(f"alphas must be a non-empty 1-D sequence of finite numbers, got {alphas!r}")
    B = z0.shape[0]
    f0, f1 = z0.reshape(B, -1), z1.reshape(B, -1)
    n0, n1 = f0.norm(dim=1), f1.norm(dim=1)
    cos = ((f0 * f1).sum(1) / (n0 * n1).clamp_min(torch.finfo(z0.dtype).tiny)).clamp(-1., 1.)
    theta = torch.arccos(cos)[:, None]                          # [B, 1]
    sin = torch.sin(theta)
    aa = a[None, :]                                             # [1, n]
    small = sin.abs() < 1e-6                                    # (anti)parallel: fall back to lerp
    safe = torch.where(small, torch.ones_like(sin), sin)
    w0 = torch.where(small, 1. - aa, torch.sin((1. - aa) * theta) / safe)
    w1 = torch.where(small, aa.expand_as(w0), torch.sin(aa * theta) / safe)
    out = w0[:, :, None] * f0[:, None, :] + w1[:, :, None] * f1[:, None, :]
    return out.reshape(B, a.numel(), *z0.shape[1:])


def interpolate(sde: SDE, score_fn: Callable[[Tensor, Tensor], Tensor], x0: Tensor, x1: Tensor,
                n: int = 9, rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-3,
                return_latents: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Data points on the path decode(slerp(encode(x0), encode(x1); a)), a = linspace(0, 1, n).

    ``x0``, ``x1`` [B, *shape] (B pairs). Returns [B, n, *shape] (and the latents [B, n, *shape] when
    ``return_latents``). The end points reproduce x0 and x1 up to the ODE solver's error.
    """
    from samplers import decode, encode

    check_tensor("x0", x0)
    check_tensor("x1", x1)
    if x0.shape != x1.shape:
        raise ValueError(f"x1 must have the shape of x0 {tuple(x0.shape)}, got {tuple(x1.shape)}")
    check_positive("n", n, integer=True)
    if n < 2:
        raise ValueError(f"n must be >= 2 (the two end points), got {n}")
    B = x0.shape[0]
    kw = dict(rtol=rtol, atol=atol, eps=eps)
    z = encode(sde, score_fn, torch.cat([x0, x1]), **kw)
    alphas = torch.linspace(0., 1., n, dtype=x0.dtype, device=x0.device)
    zs = slerp(z[:B], z[B:], alphas)                            # [B, n, *shape]
    flat = zs.reshape(B * n, *x0.shape[1:])
    path = decode(sde, score_fn, flat, **kw).reshape(B, n, *x0.shape[1:])
    return (path, zs) if return_latents else path
