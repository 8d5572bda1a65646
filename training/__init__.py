"""Training: losses and estimators, offline data, the training loop, checkpoints and evaluation.

    loss_fn = get_loss_fn(sde, train=True, reduce_mean=False, continuous=True, likelihood_weighting=False)
    train(config, workdir)      # Adam + warmup + clipping, EMA, atomic checkpoints, exact resume
    evaluate(config, workdir)   # bits/dim with standard error, sample statistics, sample grid
"""
from .losses import get_loss_fn
from scoredata import get_dataset, data_range, n_bins, is_image, to_unit_images, TOY_SETS, DATASETS
from .train import train
from .evaluate import evaluate

__all__ = ["get_loss_fn", "get_dataset", "data_range", "n_bins", "is_image", "to_unit_images", "TOY_SETS",
           "DATASETS", "train", "evaluate"]
