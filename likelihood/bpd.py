"""Bits per dimension of discrete data from the continuous model density.

Discrete data with ``n_bins`` levels in (a, b) = ``data_range`` sit on a grid of cell width
Delta = (b - a) / n_bins. Uniform dequantization x~ = x + U[0, 1) Delta turns the density p into a
discrete model with log P(x) >= E_U log p(x~) + D log Delta, hence

    bpd = -(log p(x~) + D log((b - a) / n_bins)) / (D ln 2),   x~ = x + U Delta (or x when not dequantized).
"""
from __future__ import annotations

import math

import torch

from sde_lib.checks import check_generator, check_positive, check_tensor, rand
from .ode_likelihood import log_likelihood

Tensor = torch.Tensor


def _check_range(data_range) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (a, b) of numbers, got {data_range!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"data_range must be a finite pair (a, b) with a < b, got {data_range!r}")
    return a, b


def bits_per_dim(sde, score_fn, x: Tensor, data_range=(0., 1.), n_bins: int = 256, dequantize: bool = True,
                 **log_likelihood_kwargs) -> Tensor:
    """bpd = -(log p(x~) + D log((b - a) / n_bins)) / (D ln 2) per sample ([B]).

    ``x`` must lie in ``data_range``. The dequantization noise U[0, 1) is drawn from the
    ``generator`` in ``log_likelihood_kwargs`` (before the Hutchinson probes), so a fixed seed gives a
    bitwise-reproducible result. Other kwargs (hutchinson, rtol, atol, method, eps, n_probes,
    max_batch, ...) go to ``log_likelihood``.
    """
    check_tensor("x", x, min_dim=2)
    a, b = _check_range(data_range)
    check_positive("n_bins", n_bins, integer=True)
    if n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2, got {n_bins!r}")
    if bool((x < a).any()) or bool((x > b).any()):
        raise ValueError(f"x must lie in data_range [{a}, {b}], got values in "
                         f"[{float(x.min()):.6g}, {float(x.max()):.6g}]")
    generator = log_likelihood_kwargs.get("generator")
    check_generator("generator", generator)
    delta = (b - a) / n_bins
    if dequantize:
        x = x + rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * delta
    logp, _, _ = log_likelihood(sde, score_fn, x, **log_likelihood_kwargs)
    D = x[0].numel()
    return -(logp + D * math.log(delta)) / (D * math.log(2.))
