"""Old import path of the sample-set distances, kept for existing callers: they live in
``evaluation.distances``."""
from evaluation.distances import mmd_rbf, mode_spread, mode_weights_error, pixel_moments, sliced_wasserstein

__all__ = ["sliced_wasserstein", "mode_weights_error", "mode_spread", "mmd_rbf", "pixel_moments"]
