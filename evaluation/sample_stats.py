"""Sample quality of a set of samples against held-out data, chosen by the kind of data.

* 2-D / vector data: sliced Wasserstein distance; for the two_mode toy set (a closed-form mixture) also
  the mode weights of both sets and the per-mode spreads (RMS distance to the mode mean per dimension);
* images: per-pixel moment differences and RBF-kernel MMD^2 (on up to 1000 of each). FID, against the
  training split, is computed by ``--mode eval`` when config.eval.fid is on (``evaluation.fid``).
"""
from __future__ import annotations

import torch

from scoredata import is_image

from .distances import mmd_rbf, mode_spread, pixel_moments, sliced_wasserstein

Tensor = torch.Tensor


def mode_mixture(config):
    """The closed-form mixture behind ``config.data`` when there is one (two_mode toy data), else None."""
    if str(config.data.dataset) == "toy2d" and str(config.data.toy) == "two_mode":
        from sde_lib.mixture import two_mode_mixture
        return two_mode_mixture()
    return None


def sample_stats(config, samples: Tensor, reference: Tensor, generator: torch.Generator | None = None) -> dict:
    """Sample quality of ``samples`` against held-out ``reference`` data (see the module docstring);
    also the number of samples and the fraction that is finite (the statistics use the finite ones)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    samples, reference = samples.double().cpu(), reference.double().cpu()
    finite = torch.isfinite(samples.reshape(samples.shape[0], -1)).all(1)
    out: dict = {"num_samples": int(samples.shape[0]), "frac_finite": float(finite.double().mean())}
    samples = samples[finite]
    if samples.shape[0] < 2:
        out["error"] = "fewer than two finite samples"
        return out
    if is_image(config):
        out.update({f"pixel_{k}": v for k, v in pixel_moments(samples, reference).items()})
        out["mmd_rbf"] = mmd_rbf(samples[:1000], reference[:1000])
        return out
    out["sliced_wasserstein"] = sliced_wasserstein(samples, reference, n_projections=256, generator=g)
    mix = mode_mixture(config)
    if mix is not None:
        w = mix.mode_weights(samples).tolist()
        w_ref = mix.mode_weights(reference).tolist()
        out["mode_weights"] = w
        out["mode_weights_data"] = w_ref
        out["mode_weights_true"] = mix.weights.tolist()
        out["mode_weights_error"] = max(abs(a - b) for a, b in zip(w, mix.weights.tolist()))
        labels, labels_ref = mix.component_index(samples), mix.component_index(reference)
        out["mode_std"] = [mode_spread(samples, labels, k) for k in range(len(w))]
        out["mode_std_data"] = [mode_spread(reference, labels_ref, k) for k in range(len(w))]
    return out
