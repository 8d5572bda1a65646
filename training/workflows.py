"""Researcher workflows behind ``main.py --mode ...``: each ``mode_<name>(config, workdir) -> exit code``.

    compare            every predictor x corrector pair (+ ODE, annealed Langevin) vs NFE (benchmarks)
    train_classifier   noise-conditional + clean classifiers on the digits      -> workdir/classifier/
    recipe             NCSNv2 techniques 1, 2, 4 on the training set            -> workdir/recipe/
    interpolate        decode(slerp(encode(x0), encode(x1)))                    -> workdir/interpolate/
    inpaint            fill a masked region of test images                      -> workdir/inpaint/
    colorize           gray -> colour (decoupled channel transform)             -> workdir/colorize/
    conditional_sample class-conditional samples with classifier guidance       -> workdir/conditional/

Options come from ``config.controllable`` (keys of ``CONTROLLABLE_DEFAULTS``; missing keys take the
defaults), so ``--config.controllable.mask=left`` works for configs that define the block. A user error
(no checkpoint, wrong data kind) prints one ``error: ...`` line and returns exit code 2.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from typing import Callable

import ml_collections
import numpy as np
import torch

Tensor = torch.Tensor

#: defaults of ``config.controllable``
CONTROLLABLE_DEFAULTS = dict(
    num=100,                # inpaint / colorize: number of test images
    mask="top",             # inpaint: the KNOWN region, one of MASKS
    method="pc",            # inpaint: "pc" (samplers.inpaint) | "ald" (NCSN Algorithm 2, VE models)
    ald_n_steps=0,          # inpaint "ald": Langevin steps per level (0: config.sampling.n_steps_each)
    ald_step_lr=0.,         # inpaint "ald": step at sigma_min (0: 2 (snr sigma_min)^2 of config.sampling)
    classes=(),             # conditional_sample: class labels (empty: all n_classes)
    n_per_class=8,          # conditional_sample: samples per class
    scale=2.0,              # conditional_sample: guidance scale
    n_pairs=4,              # interpolate: pairs of test points (0-1, 2-3, ...)
    n_frames=9,             # interpolate: frames per pair, end points included
    recipe_n_steps=0,       # recipe: Langevin steps per level T (0: sampling.n_steps_each with "ald", else 5)
    recipe_sigma_min=0.,    # recipe: smallest noise level (0: config.model.sigma_min)
    color_bandwidth=0.05,   # colorize (digits demo): kernel width of the closed-form tinted-digits score
    color_num_scales=200,   # colorize (digits demo): PC steps
    compare_source="auto",  # compare: "checkpoint" | "closed_form" (two_mode toy set) | "auto"
    compare_n=2048,         # compare: samples per run
    compare_quick=False,    # compare: the small grid
    compare_families="pc,ode,ald,fast",
    figure="",              # also copy the mode's PNG here (e.g. docs/figures/inpaint_digits.png)
    seed_offset=0,          # added to config.seed for the sampling generator
)

__all__ = ["CONTROLLABLE_DEFAULTS", "MASKS", "controllable_options", "make_mask", "mode_compare",
           "mode_train_classifier", "mode_recipe", "mode_interpolate", "mode_inpaint", "mode_colorize",
           "mode_conditional_sample", "WORKFLOW_MODES", "tinted_digits", "PALETTE"]


# ---------------------------------------------------------------------------- plumbing
class WorkflowError(ValueError):
    """A user error reported as one ``error:`` line (exit code 2)."""


def controllable_options(config) -> ml_collections.ConfigDict:
    """``config.controllable`` completed with ``CONTROLLABLE_DEFAULTS``."""
    opts = ml_collections.ConfigDict(dict(CONTROLLABLE_DEFAULTS))
    given = getattr(config, "controllable", None)
    if given is not None:
        for key, value in given.items():
            opts[key] = value
    return opts


def _cli(fn: Callable) -> Callable:
    """Report ValueError / FileNotFoundError as ``error: <one line>`` on stderr with exit code 2."""
    @functools.wraps(fn)
    def wrapper(config, workdir: str, *args, **kwargs) -> int:
        try:
            return fn(config, workdir, *args, **kwargs)
        except (ValueError, FileNotFoundError) as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {msg}", file=sys.stderr, flush=True)
            return 2
    return wrapper


def _out_dir(workdir: str, name: str) -> str:
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    return d


def _write_json(path: str, obj: dict) -> str:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=float)
    os.replace(tmp, path)
    return path


def _copy_figure(png: str, opts) -> str | None:
    dest = str(opts.figure)
    if not dest:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    shutil.copyfile(png, dest)
    return dest


def _grid(path: str, images: Tensor, nrow: int, width: int = 720) -> str:
    """``plotting.image_grid`` enlarged (nearest neighbour) to about ``width`` pixels."""
    from plotting import enlarge_png, image_grid
    return enlarge_png(image_grid(path, images.float(), nrow=nrow), width)


def _generator(config, opts, offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(config.seed) + int(opts.seed_offset) + offset)


def _load_score_model(config, workdir: str):
    """(sde, score_fn, step) of the newest checkpoint in workdir (EMA weights by default)."""
    from training.evaluate import load_trained, score_fn_for
    try:
        sde, model, step, _ = load_trained(config, workdir, device="cpu")
    except FileNotFoundError as e:
        raise WorkflowError(str(e)) from None
    return sde, score_fn_for(config, sde, model), step


def _pc_kwargs(config) -> dict:
    s = config.sampling
    return dict(predictor=str(s.predictor), corrector=str(s.corrector), snr=float(s.snr),
                n_steps=int(s.n_steps_each), probability_flow=bool(s.probability_flow),
                denoise=bool(s.noise_removal), eps=float(s.eps))


def _require_images(config, what: str) -> None:
    from scoredata import is_image
    if not is_image(config):
        raise WorkflowError(f"config.data.dataset must be an image data set for --mode {what}, got "
                            f"{config.data.dataset!r}")


def _maybe_classifier(config, workdir: str, kind: str):
    from training.classifier import load_classifier
    try:
        return load_classifier(config, workdir, kind)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- masks
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
    from sde_lib.checks import check_choice
    check_choice("config.controllable.mask", name, MASKS)
    return MASKS[name](tuple(shape))


# ---------------------------------------------------------------------------- compare
def _has_checkpoint(workdir: str) -> bool:
    from training.checkpoint import CheckpointManager
    from training.train import checkpoint_dir
    return bool(CheckpointManager(checkpoint_dir(workdir)).list())


@_cli
def mode_compare(config, workdir: str, progress: bool = True) -> int:
    """Every predictor x corrector pair, the probability-flow ODE, annealed Langevin and the fast solvers
    against NFE (``evaluation.sampler_comparison.compare``): for the checkpoint in workdir, or (source
    "closed_form", the default without a checkpoint on the two_mode toy set) the exact mixture score.
    Writes workdir/compare/compare.{md,json,png} and prints the table."""
    from evaluation import compare, markdown_table, write_report
    from sde_lib import get_sde
    from scoredata import get_dataset
    from training.inference import sampling_sde

    opts = controllable_options(config)
    source = str(opts.compare_source)
    closed_ok = str(config.data.dataset) == "toy2d" and str(config.data.toy) == "two_mode"
    if source == "auto":
        source = "checkpoint" if _has_checkpoint(workdir) else ("closed_form" if closed_ok else "checkpoint")
    n = int(opts.compare_n)
    families = [f for f in str(opts.compare_families).split(",") if f]
    if source == "closed_form":
        from sde_lib.mixture import two_mode_mixture
        if not closed_ok:
            raise WorkflowError("config.controllable.compare_source='closed_form' needs the two_mode toy set "
                                "(config.data.dataset='toy2d', config.data.toy='two_mode')")
        mixture = two_mode_mixture()
        sde = get_sde(config)
        reference = mixture.sample(n, generator=_generator(config, opts, 71))
        rows = compare(sde, mixture.score_fn(sde), reference, (n, 2), mixture=mixture, seed=int(config.seed),
                       quick=bool(opts.compare_quick), families=families, log=print if progress else None)
        title = f"2-D 0.2/0.8 mixture, exact score, {sde!r}, {n} samples"
        meta = {"source": "closed_form", "n": n}
    elif source == "checkpoint":
        sde, score_fn, step = _load_score_model(config, workdir)
        reference = get_dataset(config, "test")[:n]
        n = min(n, reference.shape[0])
        rows = compare(sde, score_fn, reference, (n, *reference.shape[1:]),
                       sde_factory=lambda N: sampling_sde(config, sde, N), seed=int(config.seed),
                       quick=bool(opts.compare_quick), families=families, log=print if progress else None)
        title = f"checkpoint step {step} ({sde!r}), {n} samples"
        meta = {"source": "checkpoint", "workdir": workdir, "step": step, "n": n}
    else:
        raise WorkflowError(f"config.controllable.compare_source must be 'auto', 'checkpoint' or 'closed_form', "
                            f"got {source!r}")
    meta.update({"quick": bool(opts.compare_quick), "families": families})
    paths = write_report(rows, _out_dir(workdir, "compare"), title, meta)
    _copy_figure(paths["png"], opts)
    print(markdown_table(rows))
    print("sampler comparison written to " + ", ".join(paths.values()))
    return 0


# ---------------------------------------------------------------------------- classifiers
@_cli
def mode_train_classifier(config, workdir: str, progress: bool = True) -> int:
    """Train the noise-conditional and the clean classifier (training.classifier.train_classifiers)."""
    from training.classifier import train_classifiers
    metrics = train_classifiers(config, workdir, progress=progress)
    path = _write_json(os.path.join(_out_dir(workdir, "classifier"), "metrics.json"), metrics)
    print(f"classifiers written to {os.path.join(workdir, 'classifier')} (metrics in {path})")
    print(f"  clean classifier test accuracy: {metrics['clean_test_accuracy']:.4f}")
    acc = ", ".join(f"{k}: {v:.3f}" for k, v in metrics["noisy_test_accuracy"].items())
    print(f"  noise-conditional classifier test accuracy on x_t: {acc}")
    return 0


# ---------------------------------------------------------------------------- recipe
@_cli
def mode_recipe(config, workdir: str, progress: bool = True) -> int:
    """Print the NCSNv2 recipe (sigma_max, L, eps for T) for the training set; write it as JSON and as a
    config file ``workdir/recipe/config.py`` (the current config with the recipe applied)."""
    from scoredata import get_dataset
    from training.recipes import propose, write_recipe_config

    opts = controllable_options(config)
    x = get_dataset(config, "train")
    T = int(opts.recipe_n_steps) or (int(config.sampling.n_steps_each) if str(config.sampling.corrector) == "ald"
                                     else 5)
    sigma_min = float(opts.recipe_sigma_min) or float(config.model.sigma_min)
    recipe = propose(x, sigma_min=sigma_min, n_steps_each=T)
    out = _out_dir(workdir, "recipe")
    _write_json(os.path.join(out, "recipe.json"), recipe.as_dict())
    cfg_path = write_recipe_config(recipe, os.path.join(out, "config.py"), base=config)
    print(recipe)
    print(f"recipe written to {os.path.join(out, 'recipe.json')}; config with the recipe applied: {cfg_path}")
    return 0


# ---------------------------------------------------------------------------- interpolation
@_cli
def mode_interpolate(config, workdir: str, progress: bool = True) -> int:
    """Spherical interpolation between test points through their probability-flow latents (PNG strip)."""
    from scoredata import get_dataset
    from plotting import save_strip
    from training.latent import interpolate

    opts = controllable_options(config)
    sde, score_fn, step = _load_score_model(config, workdir)
    n_pairs, n_frames = int(opts.n_pairs), int(opts.n_frames)
    x = get_dataset(config, "test")
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
    out = _out_dir(workdir, "interpolate")
    np.savez(os.path.join(out, f"interpolate_{step}.npz"), path=path.numpy(), latents=z.numpy(),
             x0=x0.numpy(), x1=x1.numpy())
    png = save_strip(os.path.join(out, f"interpolate_{step}.png"), path, config if x.dim() == 4 else None,
                     data=x, title=f"slerp in latent space, step {step}")
    _copy_figure(png, opts)
    stats = {"n_pairs": n_pairs, "n_frames": n_frames, "endpoint_relative_error": err, "step": step, "png": png}
    _write_json(os.path.join(out, f"interpolate_{step}.json"), stats)
    print(f"{n_pairs} interpolation paths of {n_frames} frames written to {png}; end points reproduced "
          f"with relative error {err:.3g}")
    return 0


# ---------------------------------------------------------------------------- inpainting
def _ald_sigma_score(sde, score_fn):
    """score_fn(x, t) of a VE model as NCSN's score(x, sigma) (t = sde.t_from_noise_level(sigma))."""
    def fn(x: Tensor, sigma: Tensor) -> Tensor:
        return score_fn(x, sde.t_from_noise_level(sigma))
    return fn


@_cli
def mode_inpaint(config, workdir: str, progress: bool = True) -> int:
    """Inpaint the test images' unknown region (config.controllable.mask = the known region) with the
    checkpoint in workdir; with a clean classifier in workdir/classifier (``--mode train_classifier``)
    report how often it gives the inpainted image the original label."""
    from samplers.controllable import annealed_langevin_inpaint, inpaint
    from training.classifier import accuracy, get_labeled_dataset
    from scoredata import get_dataset, to_unit_images

    _require_images(config, "inpaint")
    opts = controllable_options(config)
    sde, score_fn, step = _load_score_model(config, workdir)
    n = int(opts.num)
    labelled = str(config.data.dataset) == "digits"
    if labelled:
        x, y = get_labeled_dataset(config, "test")
        x, y = x[:n], y[:n]
    else:
        x, y = get_dataset(config, "test")[:n], None
    mask = make_mask(str(opts.mask), tuple(x.shape[1:]))
    g = _generator(config, opts, 41)
    method = str(opts.method)
    with torch.no_grad():
        if method == "pc":
            filled, nfe = inpaint(sde, score_fn, x, mask, generator=g, return_nfe=True, progress=progress,
                                  **_pc_kwargs(config))
        elif method == "ald":
            sigmas = getattr(sde, "discrete_sigmas", None)
            if sigmas is None or float(sde.marginal_coeffs(torch.ones(1))[0]) != 1.:
                raise WorkflowError("config.controllable.method='ald' (NCSN Algorithm 2) needs a VE SDE "
                                    "(config.training.sde='vesde')")
            s = config.sampling
            step_lr = float(opts.ald_step_lr) or 2. * float(s.snr) ** 2 * float(sigmas.min()) ** 2
            n_each = int(opts.ald_n_steps) or int(s.n_steps_each)
            filled, nfe = annealed_langevin_inpaint(_ald_sigma_score(sde, score_fn), sigmas, x, mask,
                                                    n_steps_each=n_each, step_lr=step_lr,
                                                    generator=g, denoise=bool(s.noise_removal),
                                                    return_nfe=True, progress=progress)
        else:
            raise WorkflowError(f"config.controllable.method must be 'pc' or 'ald', got {method!r}")
    known = mask.expand_as(x).bool()
    stats = {"n": n, "mask": str(opts.mask), "method": method, "nfe": int(nfe), "step": step,
             "known_pixels_exact": bool(torch.equal(filled[known], x[known])),
             "filled_rmse": float((filled - x)[~known].pow(2).mean().sqrt())}
    clean = _maybe_classifier(config, workdir, "clean") if labelled else None
    if clean is not None:
        stats["label_agreement"] = accuracy(clean, filled, y)
        stats["label_agreement_original"] = accuracy(clean, x, y)
        stats["label_agreement_mask_only"] = accuracy(clean, torch.where(known, x, torch.zeros_like(x)), y)
    out = _out_dir(workdir, "inpaint")
    masked = torch.where(known, x, torch.full_like(x, float("nan")))
    rows = min(n, 10)
    unit = [to_unit_images(v[:rows], config) for v in (x, masked, filled)]
    unit[1] = torch.where(known[:rows], unit[1], torch.full_like(unit[1], 0.5))  # unknown shown grey
    png = _grid(os.path.join(out, f"inpaint_{opts.mask}_{step}.png"), torch.cat(unit), nrow=rows)
    np.savez(os.path.join(out, f"inpaint_{opts.mask}_{step}.npz"), x=x.numpy(), mask=mask.numpy(),
             inpainted=filled.numpy())
    stats["png"] = png
    _copy_figure(png, opts)
    _write_json(os.path.join(out, f"inpaint_{opts.mask}_{step}.json"), stats)
    print(f"inpainted {n} test images (known: {opts.mask}, {method}, NFE {nfe}); rows: original, known "
          f"pixels, inpainted -> {png}")
    for k in sorted(stats):
        if k != "png":
            print(f"  {k}: {stats[k]}")
    return 0


# ---------------------------------------------------------------------------- colorization
#: the class colours of the tinted-digits demo (RGB in [0, 1])
PALETTE = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.8, 0.2], [0.25, 0.4, 1.0], [1.0, 0.85, 0.1],
                        [0.9, 0.3, 0.9], [0.1, 0.85, 0.85], [1.0, 0.55, 0.1], [0.6, 0.4, 1.0],
                        [0.55, 0.9, 0.35], [1.0, 0.45, 0.65]], dtype=torch.float64)


def tinted_digits(x: Tensor, y: Tensor, config) -> Tensor:
    """Digits [n, 1, 8, 8] (model space) -> colour images [n, 3, 8, 8]: the [0, 1] intensity times the
    label's colour (``PALETTE``), back in model space."""
    from scoredata import data_range
    a, b = data_range(config)
    unit = (x.to(torch.float64) - a) / (b - a)
    rgb = unit * PALETTE[y][:, :, None, None]
    return (a + (b - a) * rgb).to(x.dtype)


def _colorize_digits_demo(config, opts, progress: bool):
    """Closed-form demo: the exact score of a kernel density estimate (``GaussianMixture``, width
    ``color_bandwidth``) of the tinted training digits; colorize the gray test digits."""
    from sde_lib import VESDE
    from sde_lib.mixture import GaussianMixture
    from samplers.controllable import colorize
    from training.classifier import get_labeled_dataset
    from training.recipes import max_pairwise_distance

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
        out, nfe = colorize(sde, kde.score_fn(sde), gray, generator=_generator(config, opts, 51),
                            return_nfe=True, progress=progress, **pc)
    # the colour of each result: nearest palette colour to its mean chroma
    chroma = out.sum((2, 3)) / out.sum((1, 2, 3))[:, None].clamp_min(1e-12)
    pal = PALETTE / PALETTE.sum(1, keepdim=True)
    hue = torch.cdist(chroma, pal).argmin(1)
    stats = {"demo": "closed-form tinted digits", "colour_accuracy": float((hue == y_te[:n]).double().mean()),
             "nfe": int(nfe)}
    return gray, out, truth, stats


@_cli
def mode_colorize(config, workdir: str, progress: bool = True) -> int:
    """Colorize gray versions of the test images. Colour data (config.data.shape = (3, H, W)): with the
    checkpoint in workdir. The digits: a closed-form demo (exact score of tinted training digits, each
    class in its own colour), so the colour has to be inferred from the digit's shape."""
    from samplers.controllable import colorize
    from scoredata import get_dataset, to_unit_images

    _require_images(config, "colorize")
    opts = controllable_options(config)
    shape = tuple(int(s) for s in config.data.shape)
    if shape[0] == 3:
        sde, score_fn, step = _load_score_model(config, workdir)
        truth = get_dataset(config, "test")[:int(opts.num)]
        gray = truth.mean(1, keepdim=True)
        with torch.no_grad():
            out, nfe = colorize(sde, score_fn, gray, generator=_generator(config, opts, 51), return_nfe=True,
                                progress=progress, **_pc_kwargs(config))
        stats = {"step": step, "nfe": int(nfe)}
        to_unit = lambda v: to_unit_images(v, config)  # noqa: E731
    elif str(config.data.dataset) == "digits":
        gray, out, truth, stats = _colorize_digits_demo(config, opts, progress)
        from scoredata import data_range
        a, b = data_range(config)
        to_unit = lambda v: ((v - a) / (b - a)).clamp(0., 1.)  # noqa: E731
    else:
        raise WorkflowError(f"--mode colorize needs colour images (config.data.shape = (3, H, W)) or the "
                            f"digits demo, got dataset {config.data.dataset!r} with shape {shape}")
    stats["gray_max_error"] = float((out.mean(1, keepdim=True) - gray).abs().max())
    stats["rmse_to_truth"] = float((out - truth).pow(2).mean().sqrt())
    rows = min(out.shape[0], 10)
    out_dir = _out_dir(workdir, "colorize")
    png = _grid(os.path.join(out_dir, "colorize.png"),
                torch.cat([to_unit(gray[:rows]).expand(-1, 3, -1, -1), to_unit(out[:rows]), to_unit(truth[:rows])]),
                nrow=rows)
    stats["png"] = png
    _copy_figure(png, opts)
    _write_json(os.path.join(out_dir, "colorize.json"), stats)
    print(f"colorized {out.shape[0]} gray test images; rows: gray input, colorized, original -> {png}")
    for k in sorted(stats):
        if k != "png":
            print(f"  {k}: {stats[k]}")
    return 0


# ---------------------------------------------------------------------------- class-conditional sampling
@_cli
def mode_conditional_sample(config, workdir: str, progress: bool = True) -> int:
    """Class-conditional samples, score + scale * grad log p_t(y | x) with the noise-conditional classifier
    of ``--mode train_classifier``; the clean classifier (if present) measures the class rate."""
    from models.classifier import classifier_options, get_classifier_fn
    from samplers import pc_sample
    from samplers.controllable import conditional_score_fn
    from training.classifier import accuracy, load_classifier
    from scoredata import to_unit_images

    _require_images(config, "conditional_sample")
    opts = controllable_options(config)
    sde, score_fn, step = _load_score_model(config, workdir)
    noisy = load_classifier(config, workdir, "noisy")
    n_classes = int(classifier_options(config).n_classes)
    classes = [int(c) for c in opts.classes] or list(range(n_classes))
    k = int(opts.n_per_class)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(k)
    cond_score = conditional_score_fn(score_fn, get_classifier_fn(sde, noisy, bool(config.training.continuous)),
                                      labels, float(opts.scale))
    shape = (labels.shape[0], *tuple(int(s) for s in config.data.shape))
    x, nfe = pc_sample(sde, cond_score, shape, generator=_generator(config, opts, 61), progress=progress,
                       **_pc_kwargs(config))
    x = x.detach()
    stats = {"classes": classes, "n_per_class": k, "scale": float(opts.scale), "nfe": int(nfe), "step": step}
    clean = _maybe_classifier(config, workdir, "clean")
    if clean is not None:
        with torch.no_grad():
            pred = clean(x).argmax(-1)
        stats["class_rate"] = accuracy(clean, x, labels)
        stats["class_rate_per_class"] = {int(c): float((pred[labels == c] == c).double().mean()) for c in classes}
    out = _out_dir(workdir, "conditional")
    png = _grid(os.path.join(out, f"conditional_scale{opts.scale:g}_{step}.png"), to_unit_images(x, config),
                nrow=k, width=480)
    np.savez(os.path.join(out, f"conditional_scale{opts.scale:g}_{step}.npz"), samples=x.numpy(),
             labels=labels.numpy())
    stats["png"] = png
    _copy_figure(png, opts)
    _write_json(os.path.join(out, f"conditional_scale{opts.scale:g}_{step}.json"), stats)
    print(f"{labels.shape[0]} class-conditional samples (one row per class, guidance scale {opts.scale:g}) -> {png}")
    for key in sorted(stats):
        if key != "png":
            print(f"  {key}: {stats[key]}")
    return 0


#: mode name -> fn(config, workdir) -> exit code, for main.py's MODES registry
WORKFLOW_MODES: dict[str, Callable[..., int]] = {
    "compare": mode_compare,
    "train_classifier": mode_train_classifier,
    "recipe": mode_recipe,
    "interpolate": mode_interpolate,
    "inpaint": mode_inpaint,
    "colorize": mode_colorize,
    "conditional_sample": mode_conditional_sample,
}
