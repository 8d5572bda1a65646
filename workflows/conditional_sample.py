"""``--mode conditional_sample``: class-conditional samples with classifier guidance,
score + scale * grad log p_t(y | x), using the noise-conditional classifier of ``--mode train_classifier``;
the clean classifier (if present) measures the class rate -> workdir/conditional/."""
from __future__ import annotations

import os

import numpy as np
import torch

from models.classifier import classifier_options, get_classifier_fn
from samplers import pc_sample
from samplers.controllable import conditional_score_fn
from scoredata import to_unit_images
from training.classifier import accuracy, load_classifier
from training.names import output_name

from .common import (cli, copy_figure, generator, grid, maybe_classifier, open_trained, out_dir, pc_kwargs,
                     pc_tag, require_images, write_json)
from .options import controllable_options


@cli
def mode_conditional_sample(config, workdir: str, progress: bool = True) -> int:
    """Class-conditional samples, score + scale * grad log p_t(y | x) with the noise-conditional classifier
    of ``--mode train_classifier``; the clean classifier (if present) measures the class rate."""
    require_images(config, "conditional_sample")
    opts = controllable_options(config)
    run = open_trained(config, workdir)
    sde, score_fn, step = run.sde, run.score_fn, run.step
    noisy = load_classifier(config, workdir, "noisy")
    n_classes = int(classifier_options(config).n_classes)
    classes = [int(c) for c in opts.classes] or list(range(n_classes))
    k = int(opts.n_per_class)
    labels = torch.tensor(classes, dtype=torch.long).repeat_interleave(k)
    cond_score = conditional_score_fn(score_fn, get_classifier_fn(sde, noisy, bool(config.training.continuous)),
                                      labels, float(opts.scale))
    shape = (labels.shape[0], *tuple(int(s) for s in config.data.shape))
    x, nfe = pc_sample(sde, cond_score, shape, generator=generator(config, opts, 61), progress=progress,
                       **pc_kwargs(config))
    x = x.detach()
    stats = {"classes": classes, "n_per_class": k, "scale": float(opts.scale), "nfe": int(nfe), "step": step}
    clean = maybe_classifier(config, workdir, "clean")
    if clean is not None:
        with torch.no_grad():
            pred = clean(x).argmax(-1)
        stats["class_rate"] = accuracy(clean, x, labels)
        stats["class_rate_per_class"] = {int(c): float((pred[labels == c] == c).double().mean()) for c in classes}
    out = out_dir(workdir, "conditional")
    chosen = "classes" + "-".join(str(c) for c in classes) if opts.classes else ""
    name = output_name("conditional", step, f"scale{opts.scale:g}", pc_tag(config), chosen, f"k{k}")
    png = grid(os.path.join(out, f"{name}.png"), to_unit_images(x, config), nrow=k, width=480)
    np.savez(os.path.join(out, f"{name}.npz"), samples=x.numpy(), labels=labels.numpy())
    stats["png"] = png
    copy_figure(png, opts)
    write_json(os.path.join(out, f"{name}.json"), stats)
    print(f"{labels.shape[0]} class-conditional samples (one row per class, guidance scale {opts.scale:g}) -> {png}")
    for key in sorted(stats):
        if key != "png":
            print(f"  {key}: {stats[key]}")
    return 0
