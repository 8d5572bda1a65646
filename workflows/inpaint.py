"""``--mode inpaint``: fill the unknown region of test images with the trained run (``samplers.inpaint``,
or NCSN Algorithm 2 ``annealed_langevin_inpaint`` for VE models) -> workdir/inpaint/
inpaint_<mask>_<method settings>_n<num>_<step>.{png,npz,json}; with a clean classifier of
``--mode train_classifier``, how often the inpainted digit keeps its label."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from samplers.controllable import annealed_langevin_inpaint, inpaint
from scoredata import get_labeled_dataset, to_unit_images
from sde_lib.checks import check_choice
from training.classifier import accuracy
from training.names import output_name

from .common import (WorkflowError, cli, copy_figure, generator, grid, maybe_classifier, open_trained, out_dir,
                     pc_kwargs, pc_tag, require_images, write_json)
from .options import controllable_options

Tensor = torch.Tensor


def _half(dim: int, first: bool):
    def make(shape: tuple[int, ...]) -> Tensor:
        if len(shape) != 3:
            raise WorkflowError(f"config.controllable.mask needs image data [C, H, W], got shape {shape}")
        m = torch.zeros(1, *shape)
        n = shape[dim]
        idx = [slice(None)] * 4
        idx[dim + 1] = slice(0, n // 2) if first else slice(n // 2, n)
        m[tuple(idx)] = 1.
        return m
    return make


def _border(shape: tuple[int, ...]) -> Tensor:
    if len(shape) != 3:
        raise WorkflowError(f"config.controllable.mask needs image data [C, H, W], got shape {shape}")
    _, H, W = shape
    m = torch.ones(1, *shape)
    m[..., H // 4: H - H // 4, W // 4: W - W // 4] = 0.
    return m


#: known region name -> fn(data shape) -> mask [1, *shape] (1 = known pixel)
MASKS: dict[str, Callable[[tuple[int, ...]], Tensor]] = {
    "top": _half(1, True), "bottom": _half(1, False), "left": _half(2, True), "right": _half(2, False),
    "border": _border,
}


def make_mask(name: str, shape: tuple[int, ...]) -> Tensor:
    """The mask [1, *shape] of the known region ``name`` (one of ``MASKS``)."""
    check_choice("config.controllable.mask", name, MASKS)
    return MASKS[name](tuple(shape))


def _ald_sigma_score(sde, score_fn):
    """score_fn(x, t) of a VE model as NCSN's score(x, sigma) (t = sde.t_from_noise_level(sigma))."""
    def fn(x: Tensor, sigma: Tensor) -> Tensor:
        return score_fn(x, sde.t_from_noise_level(sigma))
    return fn


@cli
def mode_inpaint(config, workdir: str, progress: bool = True) -> int:
    """Inpaint the test images' unknown region (config.controllable.mask = the known region) with the
    checkpoint in workdir; with a clean classifier in workdir/classifier (``--mode train_classifier``)
    report how often it gives the inpainted image the original label."""
    require_images(config, "inpaint")
    opts = controllable_options(config)
    run = open_trained(config, workdir)
    sde, score_fn, step = run.sde, run.score_fn, run.step
    n = int(opts.num)
    labelled = str(config.data.dataset) == "digits"
    if labelled:
        x, y = get_labeled_dataset(config, "test")
        x, y = x[:n], y[:n]
    else:
        x, y = run.test_data()[:n], None
    mask = make_mask(str(opts.mask), tuple(x.shape[1:]))
    g = generator(config, opts, 41)
    method = str(opts.method)
    with torch.no_grad():
        if method == "pc":
            tag = pc_tag(config)
            filled, nfe = inpaint(sde, score_fn, x, mask, generator=g, return_nfe=True, progress=progress,
                                  **pc_kwargs(config))
        elif method == "ald":
            sigmas = getattr(sde, "discrete_sigmas", None)
            if sigmas is None or float(sde.marginal_coeffs(torch.ones(1))[0]) != 1.:
                raise WorkflowError("config.controllable.method='ald' (NCSN Algorithm 2) needs a VE SDE "
                                    "(config.training.sde='vesde')")
            s = config.sampling
            step_lr = float(opts.ald_step_lr) or 2. * float(s.snr) ** 2 * float(sigmas.min()) ** 2
            n_each = int(opts.ald_n_steps) or int(s.n_steps_each)
            tag = f"ald_L{int(sigmas.numel())}x{n_each}_lr{step_lr:g}" + ("" if bool(s.noise_removal) else "_nodenoise")
            filled, nfe = annealed_langevin_inpaint(_ald_sigma_score(sde, score_fn), sigmas, x, mask,
                                                    n_steps_each=n_each, step_lr=step_lr,
                                                    generator=g, denoise=bool(s.noise_removal),
                                                    return_nfe=True, progress=progress)
        else:
            raise WorkflowError(f"config.controllable.method must be 'pc' or 'ald', got {method!r}")
    known = mask.expand_as(x).bool()
    stats = {"n": n, "mask": str(opts.mask), "method": method, "sampler": tag, "nfe": int(nfe), "step": step,
             "known_pixels_exact": bool(torch.equal(filled[known], x[known])),
             "filled_rmse": float((filled - x)[~known].pow(2).mean().sqrt())}
    clean = maybe_classifier(config, workdir, "clean") if labelled else None
    if clean is not None:
        stats["label_agreement"] = accuracy(clean, filled, y)
        stats["label_agreement_original"] = accuracy(clean, x, y)
        stats["label_agreement_mask_only"] = accuracy(clean, torch.where(known, x, torch.zeros_like(x)), y)
    out = out_dir(workdir, "inpaint")
    masked = torch.where(known, x, torch.full_like(x, float("nan")))
    rows = min(n, 10)
    unit = [to_unit_images(v[:rows], config) for v in (x, masked, filled)]
    unit[1] = torch.where(known[:rows], unit[1], torch.full_like(unit[1], 0.5))  # unknown shown grey
    name = output_name("inpaint", step, str(opts.mask), tag, f"n{n}")
    png = grid(os.path.join(out, f"{name}.png"), torch.cat(unit), nrow=rows)
    np.savez(os.path.join(out, f"{name}.npz"), x=x.numpy(), mask=mask.numpy(), inpainted=filled.numpy())
    stats["png"] = png
    copy_figure(png, opts)
    write_json(os.path.join(out, f"{name}.json"), stats)
    print(f"inpainted {n} test images (known: {opts.mask}, {method}, NFE {nfe}); rows: original, known "
          f"pixels, inpainted -> {png}")
    for k in sorted(stats):
        if k != "png":
            print(f"  {k}: {stats[k]}")
    return 0
