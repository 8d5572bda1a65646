"""Likelihood of a data split under a score model: bits/dim for discrete data, NLL in nats for continuous
(toy) data, with the standard error over the points.

Per point, with the probability-flow log-likelihood log p_0(x) of ``likelihood.log_likelihood``:

    discrete data (levels n, model-space range (a, b), D dims):  bpd = ``likelihood.bits_per_dim``
        = -(log p(x~) + D log((b - a) / n)) / (D ln 2),   x~ = x + U[0,1) (b - a) / n  (dequantized)
    continuous data:                                        nll = -log p_0(x)  (nats per sample)

and the summary is the mean and its standard error std / sqrt(n). The solver settings come from
``config.eval`` (hutchinson, rtol, atol, n_probes, batch_size) and eps from ``config.training.eps``.
These functions work on the rows they are given; ``training.inference.likelihood_stats`` shards a split
across torchrun ranks and gathers the per-point values before ``summarize_likelihood``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from scoredata import data_range, n_bins

from .sample_stats import mode_mixture

Tensor = torch.Tensor


def eval_subset(config, data: Tensor) -> Tensor:
    """The first ``bpd_num_batches * eval.batch_size`` test samples (all when bpd_num_batches is 0)."""
    nb = int(config.eval.bpd_num_batches)
    return data if nb <= 0 else data[: nb * int(config.eval.batch_size)]


def mean_se(v: Tensor) -> tuple[float, float]:
    """(mean, standard error std / sqrt(n)) of the values ``v`` (NaN error for a single value)."""
    v = v.detach().double().cpu()
    se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return float(v.mean()), se


def likelihood_values(config, sde, score_fn: Callable, x: Tensor, generator: torch.Generator | None = None,
                      progress: bool = False) -> tuple[Tensor, int | None]:
    """Per-point bits/dim (discrete data) or NLL in nats (continuous data) of ``x`` [n] (float64), and the
    NFE of the NLL computation (None for bits/dim, whose solver count ``bits_per_dim`` does not return)."""
    from likelihood import bits_per_dim, log_likelihood

    e = config.eval
    kw = dict(hutchinson=str(e.hutchinson), rtol=float(e.rtol), atol=float(e.atol),
              eps=float(config.training.eps), generator=generator, n_probes=int(e.n_probes),
              max_batch=max(1, int(e.batch_size)), progress=progress)
    rng = data_range(config)
    if rng is None:
        logp, _, nfe = log_likelihood(sde, score_fn, x, **kw)
        return -logp.detach().double(), int(nfe)
    bpd = bits_per_dim(sde, score_fn, x, data_range=tuple(rng), n_bins=int(n_bins(config)), **kw)
    return bpd.detach().double(), None


def summarize_likelihood(config, values: Tensor, nfe: int | None, x: Tensor) -> dict:
    """{"bpd", "bpd_se", "n"} or {"nll_nats", "nll_nats_se", "n", "nfe"} of the per-point ``values`` on the
    points ``x``; toy data with a closed-form density add that density's own NLL on the same points."""
    mean, se = mean_se(values)
    if data_range(config) is not None:
        return {"bpd": mean, "bpd_se": se, "n": int(values.shape[0])}
    out = {"nll_nats": mean, "nll_nats_se": se, "n": int(values.shape[0]), "nfe": int(nfe)}
    mix = mode_mixture(config)
    if mix is not None:  # the data's own NLL on the same points, for reference
        out["nll_nats_data_distribution"] = float(-mix.log_prob(x.detach().double().cpu()).mean())
    return out


def split_likelihood(config, sde, score_fn: Callable, x: Tensor, generator: torch.Generator | None = None,
                     progress: bool = False) -> dict:
    """``summarize_likelihood`` of ``likelihood_values`` on all of ``x`` in this process."""
    values, nfe = likelihood_values(config, sde, score_fn, x, generator=generator, progress=progress)
    return summarize_likelihood(config, values, nfe, x)
