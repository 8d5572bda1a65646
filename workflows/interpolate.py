"""``--mode interpolate`` and its latent-space tools on top of ``samplers.encode`` / ``samplers.decode``
(the probability-flow ODE): decode(slerp(encode(x0), encode(x1))) -> workdir/interpolate/.

Spherical interpolation between the latents z0 = encode(x0), z1 = encode(x1):

    slerp(z0, z1; a) = sin((1 - a) theta) / sin(theta) z0 + sin(a theta) / sin(theta) z1,
    cos(theta) = <z0, z1> / (||z0|| ||z1||),

(linear interpolation when z0 and z1 are parallel). Latents of the Gaussian prior concentrate on a
sphere of radius ~ prior_std sqrt(D); slerp stays near that sphere where a straight line would cut
through its inside (atypically small norms), so decode(slerp(...)) stays on the data manifold.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch

from plotting import save_strip
from samplers import decode, encode
from sde_lib.base import SDE
from sde_lib.checks import check_positive, check_tensor

from training.names import output_name, tolerance_tag

from .common import WorkflowError, cli, copy_figure, open_trained, out_dir, write_json
from .options import controllable_options

Tensor = torch.Tensor

__all__ = ["slerp", "interpolate", "mode_interpolate"]


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


@cli
def mode_interpolate(config, workdir: str, progress: bool = True) -> int:
    """Spherical interpolation between test points through their probability-flow latents (PNG strip):
    config.controllable.n_pairs pairs (test points 0-1, 2-3, ...), n_frames frames each."""
    opts = controllable_options(config)
    run = open_trained(config, workdir)
    sde, score_fn, step = run.sde, run.score_fn, run.step
    n_pairs, n_frames = int(opts.n_pairs), int(opts.n_frames)
    x = run.test_data()
    if x.shape[0] < 2 * n_pairs:
        raise WorkflowError(f"config.controllable.n_pairs={n_pairs} needs {2 * n_pairs} test points, "
                            f"the test split has {x.shape[0]}")
    x0, x1 = x[0:2 * n_pairs:2], x[1:2 * n_pairs:2]
    s = config.sampling
    with torch.no_grad():
        path, z = interpolate(sde, score_fn, x0, x1, n=n_frames, rtol=float(s.rtol), atol=float(s.atol),
                              eps=float(s.eps), return_latents=True)
    err = float(torch.linalg.vector_norm(torch.stack([path[:, 0] - x0, path[:, -1] - x1]))
                / torch.linalg.vector_norm(torch.stack([x0, x1])))
    out = out_dir(workdir, "interpolate")
    name = output_name("interpolate", step, "ode", tolerance_tag(s.rtol, s.atol), f"pairs{n_pairs}x{n_frames}")
    np.savez(os.path.join(out, f"{name}.npz"), path=path.numpy(), latents=z.numpy(), x0=x0.numpy(), x1=x1.numpy())
    png = save_strip(os.path.join(out, f"{name}.png"), path, config if x.dim() == 4 else None,
                     data=x, title=f"slerp in latent space, step {step}")
    copy_figure(png, opts)
    stats = {"n_pairs": n_pairs, "n_frames": n_frames, "endpoint_relative_error": err, "step": step, "png": png}
    write_json(os.path.join(out, f"{name}.json"), stats)
    print(f"{n_pairs} interpolation paths of {n_frames} frames written to {png}; end points reproduced "
          f"with relative error {err:.3g}")
    return 0
