"""``--mode colorize``: gray test images -> colour (``samplers.colorize``, the decoupled channel
transform) with the trained run on colour data, or on the digits a closed-form demo: the exact score of
a kernel density estimate of tinted training digits (each class in its own colour) -> workdir/colorize/."""
from __future__ import annotations

import os

import torch

from samplers.controllable import colorize
from scoredata import data_range, get_labeled_dataset, to_unit_images
from sde_lib import VESDE
from sde_lib.mixture import GaussianMixture
from training.names import output_name
from training.recipes import max_pairwise_distance

from .common import WorkflowError, cli, copy_figure, generator, grid, open_trained, out_dir, pc_kwargs, \
    pc_tag, require_images, write_json
from .options import controllable_options

Tensor = torch.Tensor


#: the class colours of the tinted-digits demo (RGB in [0, 1])
PALETTE = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.8, 0.2], [0.25, 0.4, 1.0], [1.0, 0.85, 0.1],
                        [0.9, 0.3, 0.9], [0.1, 0.85, 0.85], [1.0, 0.55, 0.1], [0.6, 0.4, 1.0],
                        [0.55, 0.9, 0.35], [1.0, 0.45, 0.65]], dtype=torch.float64)


def tinted_digits(x: Tensor, y: Tensor, config) -> Tensor:
    """Digits [n, 1, 8, 8] (model space) -> colour images [n, 3, 8, 8]: the [0, 1] intensity times the
    label's colour (``PALETTE``), back in model space."""
    a, b = data_range(config)
    unit = (x.to(torch.float64) - a) / (b - a)
    rgb = unit * PALETTE[y][:, :, None, None]
    return (a + (b - a) * rgb).to(x.dtype)


def _colorize_digits_demo(config, opts, progress: bool):
    """Closed-form demo: the exact score of a kernel density estimate (``GaussianMixture``, width
    ``color_bandwidth``) of the tinted training digits; colorize the gray test digits."""
    x_tr, y_tr = get_labeled_dataset(config, "train")
    x_te, y_te = get_labeled_dataset(config, "test")
    n = int(opts.num)
    rgb_tr = tinted_digits(x_tr, y_tr, config).double()
    truth = tinted_digits(x_te[:n], y_te[:n], config).double()
    K = rgb_tr.shape[0]
    kde = GaussianMixture(torch.full((K,), 1. / K, dtype=torch.float64), rgb_tr,
                          torch.full((K,), float(opts.color_bandwidth), dtype=torch.float64))
    sde = VESDE(sigma_min=0.01, sigma_max=max_pairwise_distance(rgb_tr), N=int(opts.color_num_scales))
    gray = truth.mean(1, keepdim=True)
    pc = dict(predictor="reverse_diffusion", corrector="langevin", snr=0.16, n_steps=1)
    with torch.no_grad():
        out, nfe = colorize(sde, kde.score_fn(sde), gray, generator=generator(config, opts, 51),
                            return_nfe=True, progress=progress, **pc)
    # the colour of each result: nearest palette colour to its mean chroma
    chroma = out.sum((2, 3)) / out.sum((1, 2, 3))[:, None].clamp_min(1e-12)
    pal = PALETTE / PALETTE.sum(1, keepdim=True)
    hue = torch.cdist(chroma, pal).argmin(1)
    stats = {"demo": "closed-form tinted digits", "colour_accuracy": float((hue == y_te[:n]).double().mean()),
             "nfe": int(nfe)}
    return gray, out, truth, stats


@cli
def mode_colorize(config, workdir: str, progress: bool = True) -> int:
    """Colorize gray versions of the test images. Colour data (config.data.shape = (3, H, W)): with the
    checkpoint in workdir. The digits: a closed-form demo (exact score of tinted training digits, each
    class in its own colour), so the colour has to be inferred from the digit's shape."""
    require_images(config, "colorize")
    opts = controllable_options(config)
    shape = tuple(int(s) for s in config.data.shape)
    if shape[0] == 3:
        run = open_trained(config, workdir)
        sde, score_fn, step = run.sde, run.score_fn, run.step
        truth = run.test_data()[:int(opts.num)]
        gray = truth.mean(1, keepdim=True)
        with torch.no_grad():
            out, nfe = colorize(sde, score_fn, gray, generator=generator(config, opts, 51), return_nfe=True,
                                progress=progress, **pc_kwargs(config))
        stats = {"step": step, "nfe": int(nfe)}
        name = output_name("colorize", step, pc_tag(config), f"n{int(opts.num)}")
        to_unit = lambda v: to_unit_images(v, config)  # noqa: E731
    elif str(config.data.dataset) == "digits":
        gray, out, truth, stats = _colorize_digits_demo(config, opts, progress)
        name = "_".join(["colorize", f"kde{float(opts.color_bandwidth):g}", f"N{int(opts.color_num_scales)}",
                         f"n{int(opts.num)}"])
        a, b = data_range(config)
        to_unit = lambda v: ((v - a) / (b - a)).clamp(0., 1.)  # noqa: E731
    else:
        raise WorkflowError(f"--mode colorize needs colour images (config.data.shape = (3, H, W)) or the "
                            f"digits demo, got dataset {config.data.dataset!r} with shape {shape}")
    stats["gray_max_error"] = float((out.mean(1, keepdim=True) - gray).abs().max())
    stats["rmse_to_truth"] = float((out - truth).pow(2).mean().sqrt())
    rows = min(out.shape[0], 10)
    folder = out_dir(workdir, "colorize")
    png = grid(os.path.join(folder, f"{name}.png"),
               torch.cat([to_unit(gray[:rows]).expand(-1, 3, -1, -1), to_unit(out[:rows]), to_unit(truth[:rows])]),
               nrow=rows)
    stats["png"] = png
    copy_figure(png, opts)
    write_json(os.path.join(folder, f"{name}.json"), stats)
    print(f"colorized {out.shape[0]} gray test images; rows: gray input, colorized, original -> {png}")
    for k in sorted(stats):
        if k != "png":
            print(f"  {k}: {stats[k]}")
    return 0
