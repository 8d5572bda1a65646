"""Measurements of samples and models, on tensors and score functions (no workdirs, no checkpoints):

* ``distances``          sliced Wasserstein, RBF-kernel MMD, per-mode weights and spreads, pixel moments;
* ``sample_stats``       the sample-quality statistics of a data kind (2-D, toy mixture, images);
* ``fid``                FID through torch-fidelity (config.eval.fid; against the training split);
* ``split_likelihood``   bits/dim (discrete data) or NLL (continuous data) over a split, with std. errors;
* ``sampler_comparison`` every sampler family against NFE on one set of starting points;
* ``comparison_report``  its table, JSON and figure.

``training.evaluate`` composes these for a trained run (``evaluate(config, workdir)``).
"""
from .comparison_report import markdown_table, write_report
from .distances import mmd_rbf, mode_spread, mode_weights_error, pixel_moments, sliced_wasserstein
from .fid import check_fid_config, fid_stats
from .sample_stats import mode_mixture, sample_stats
from .sampler_comparison import compare
from .split_likelihood import eval_subset, likelihood_values, mean_se, split_likelihood, summarize_likelihood

__all__ = ["sliced_wasserstein", "mmd_rbf", "mode_spread", "mode_weights_error", "pixel_moments", "sample_stats",
           "mode_mixture", "fid_stats", "check_fid_config", "eval_subset", "mean_se", "likelihood_values", "summarize_likelihood",
           "split_likelihood", "compare", "markdown_table", "write_report"]
