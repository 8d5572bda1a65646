"""``--mode encode``: test points -> latents z at T with the probability-flow ODE (``samplers.encode``);
with ``decode``, back again and the relative reconstruction error ||x - decode(encode(x))|| / ||x||."""
from __future__ import annotations

import os

import numpy as np
import torch

from samplers import decode as decode_latents
from samplers import encode
from training.distributed import current_info
from training.names import output_name, tolerance_tag
from training.run import open_run

from .common import check_num, cli, write_json


@cli
def mode_encode(config, workdir: str, progress: bool = True, num: int = 0, decode: bool = False) -> int:
    """The first ``num`` (0: config.eval.batch_size) test points -> workdir/latents/
    latents_ode_<tolerances>_n<n>[_decoded]_<step>.{npz,json}."""
    check_num(num, "config.eval.batch_size")
    run = open_run(config, workdir)
    x = run.test_data()[:num or int(config.eval.batch_size)].to(run.device)
    s = config.sampling
    kw = dict(rtol=float(s.rtol), atol=float(s.atol), eps=float(s.eps))
    sde, step = run.sde, run.step
    z = encode(sde, run.score_fn, x, **kw)
    if not current_info(run.device).is_main:  # encoding is not sharded: every rank computes, rank 0 writes
        return 0
    out = os.path.join(workdir, "latents")
    os.makedirs(out, exist_ok=True)
    arrays = {"x": x.cpu().numpy(), "z": z.detach().cpu().numpy(), "step": step}
    msg = f"encoded {x.shape[0]} test points; latent std {float(z.std()):.4f} (prior std {sde.prior_std:.4g})"
    stats = {"n": int(x.shape[0]), "latent_std": float(z.std()), "prior_std": float(sde.prior_std), "step": step}
    if decode:
        x_rec = decode_latents(sde, run.score_fn, z, **kw)
        err = float(torch.linalg.vector_norm(x_rec - x) / torch.linalg.vector_norm(x))
        arrays["x_rec"] = x_rec.detach().cpu().numpy()
        stats["relative_reconstruction_error"] = err
        msg += f"; decoded back with relative reconstruction error {err:.3g}"
    tags = ("ode", tolerance_tag(s.rtol, s.atol), f"n{x.shape[0]}", "decoded" if decode else "")
    if float(s.eps) != 1e-3:
        tags += (f"eps{float(s.eps):g}",)
    if run.weights == "raw":
        tags += ("raw",)
    path = os.path.join(out, output_name("latents", step, *tags, ext="npz"))
    np.savez(path, **arrays)
    write_json(os.path.join(out, output_name("latents", step, *tags, ext="json")), stats)
    print(f"{msg} (written to {path})")
    return 0
