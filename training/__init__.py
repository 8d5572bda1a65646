"""Training score models, and opening what training wrote.

    loss_fn = get_loss_fn(sde, train=True, reduce_mean=False, continuous=True, likelihood_weighting=False)
    train(config, workdir)          # Adam + warmup + clipping, EMA, atomic checkpoints, exact resume
    run = open_run(config, workdir) # the trained model of a workdir, for every mode that uses one
    evaluate(config, workdir)       # bits/dim with standard error, sample statistics, sample grid

The chain, one module each: ``losses`` (+ ``objectives``: SSM, exact SM) -> ``step`` (one optimizer
step) -> ``train`` (the loop; ``logs``) -> ``checkpoint`` (files, resume, ``read_latest_checkpoint``) ->
``distributed`` (torchrun). Around it: ``build`` (config -> objects, ``check_config``), ``workdir``
(checked before any work, locked against a second trainer), ``inference`` (sampling and likelihood as
the config says), ``names`` (output names that say what made them), ``run`` (``open_run``),
``evaluate``, ``classifier`` (the classifiers of controllable generation) and ``recipes`` (NCSNv2 noise
scales from data).
"""
from scoredata import DATASETS, TOY_SETS, data_range, get_dataset, is_image, n_bins, to_unit_images  # noqa: F401

from .losses import get_loss_fn
from .run import TrainedRun, open_run
from .train import train
from .evaluate import evaluate

__all__ = ["get_loss_fn", "train", "evaluate", "open_run", "TrainedRun", "get_dataset", "data_range", "n_bins",
           "is_image", "to_unit_images", "TOY_SETS", "DATASETS"]
