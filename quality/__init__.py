"""Sample-quality statistics shared by tests, evaluation and benchmarks."""
from .sample_stats import (sliced_wasserstein, mode_weights_error, mode_spread, mmd_rbf,
                           pixel_moments)

__all__ = ["sliced_wasserstein", "mode_weights_error", "mode_spread", "mmd_rbf", "pixel_moments"]
