"""Evaluation of a trained run: ``evaluate(config, workdir, eval_folder)``.

Opens the run (``training.run.open_run``: newest readable checkpoint, EMA weights unless
``config.eval.ckpt == "raw"``), measures with ``evaluation``:

* bits/dim (discrete data) or NLL in nats (toy data) with standard errors on the first
  ``bpd_num_batches * eval.batch_size`` test points (``evaluation.split_likelihood``);
* ``eval.num_samples`` samples drawn as config.sampling says and their statistics against the test
  split (``evaluation.sample_stats``: sliced Wasserstein / mode weights, or pixel moments / MMD);
* with ``config.eval.fid`` (image data, torch-fidelity installed; checked before any work) the FID of
  the samples against the *training* split (``evaluation.fid``),

and writes ``<workdir>/<eval_folder>/metrics_<settings>_<step>.json`` (named by the sampler and
likelihood settings, ``training.names``; ``metrics.json`` is a copy of the latest) plus a PNG of the
samples.
Under torchrun the likelihood and the sampling are sharded across ranks and rank 0 writes.
"""
from __future__ import annotations

import json
import logging
import os

import torch

from evaluation import check_fid_config, eval_subset, fid_stats, sample_stats
from evaluation import mean_se as _mean_se  # noqa: F401  (the older private name)
from plotting import save_samples_png

from .checkpoint import atomic_write_text
from .distributed import current_info
from .names import likelihood_tag, output_name, sampler_tag
from .inference import draw_samples, likelihood_stats, score_fn_for  # noqa: F401  (older import path)
from .run import load_trained, open_run  # noqa: F401  (load_trained: older import path)

log = logging.getLogger(__name__)


def write_json(path: str, obj: dict) -> str:
    """``obj`` as indented, key-sorted JSON at ``path``, written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))
    return path


def evaluate(config, workdir: str, eval_folder: str = "eval", progress: bool = False) -> dict:
    """Evaluate the newest checkpoint in ``workdir``; write metrics JSON and a sample PNG into
    ``workdir/eval_folder``. Returns the metrics dict (keys: step, checkpoint, likelihood stats
    ``bpd``/``bpd_se`` or ``nll_nats``/``nll_nats_se``, sample statistics, paths)."""
    run = open_run(config, workdir)
    fid = check_fid_config(config)
    device = run.device
    info = current_info(device)  # under torchrun: likelihood and sampling sharded, rank 0 writes
    out_dir = os.path.join(workdir, eval_folder)
    if info.is_main:
        os.makedirs(out_dir, exist_ok=True)
    test = run.test_data()
    seed = int(config.seed)
    step = run.step
    metrics: dict = {"step": step, "checkpoint": run.checkpoint, "weights": run.weights}
    tags = []
    if bool(config.eval.enable_sampling):
        tags += [sampler_tag(config), f"n{int(config.eval.num_samples)}"]
    if bool(config.eval.enable_bpd):
        subset = eval_subset(config, test)
        tags.append(likelihood_tag(config, subset.shape[0]))
        g = torch.Generator(device=device).manual_seed(seed + 11)
        metrics.update(run.likelihood(subset, generator=g, progress=progress and info.is_main, info=info))
    if bool(config.eval.enable_sampling):
        g = torch.Generator(device=device).manual_seed(seed + 12)
        samples, nfe = run.sample(int(config.eval.num_samples), generator=g, progress=progress and info.is_main,
                                  info=info)
        metrics["sampling_nfe"] = nfe
        metrics.update(sample_stats(config, samples, test, generator=torch.Generator().manual_seed(seed + 13)))
        if fid and info.is_main:
            metrics.update(fid_stats(config, samples, run.data.load("train")), fid_reference="train")
        png = os.path.join(out_dir, output_name("samples", step, *tags[:2], ext="png"))
        metrics["samples_png"] = save_samples_png(config, samples, png, data=test, title=f"step {step}") \
            if info.is_main else png
    metrics["metrics_json"] = os.path.join(out_dir, output_name("metrics", step, *tags, ext="json"))
    if info.is_main:
        write_json(metrics["metrics_json"], metrics)
        write_json(os.path.join(out_dir, "metrics.json"), metrics)
    log.info("evaluation at step %d: %s", step, metrics)
    return metrics
