"""Exact likelihood of score-based models: probability-flow ODE + divergence, and bits/dim.

``log_likelihood(sde, score_fn, x, ...) -> (logp [B] nats, z, nfe)`` and
``bits_per_dim(sde, score_fn, x, data_range, n_bins, dequantize, **kwargs) -> [B]``.
"""
from .divergence import PROBES, DIVERGENCES, hutchinson_divergence, exact_divergence
from .ode_likelihood import METHODS, FIXED_GRID, FlowWithDivergence, log_likelihood
from .dopri import dormand_prince
from .bpd import bits_per_dim

__all__ = ["log_likelihood", "bits_per_dim", "PROBES", "DIVERGENCES", "METHODS", "FIXED_GRID",
           "FlowWithDivergence", "dormand_prince", "hutchinson_divergence", "exact_divergence"]
