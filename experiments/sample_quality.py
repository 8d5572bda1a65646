"""Sample-quality statistics for the sampler table (``experiments.pc_table``), with their noise floor.

* ``rbf_mmd2``: unbiased squared MMD with a Gaussian kernel of a FIXED bandwidth (``evaluation.mmd_rbf``
  with ``bandwidth=``), chosen once from the reference set (median heuristic on it), so every sample set
  is measured with the same kernel;
* ``kid`` (``evaluation.distances.kid``): the kernel inception distance form (unbiased squared MMD with
  the cubic kernel k(a, b) = (a.b / d + 1)^3) on the features of a clean classifier (the input of its last layer),
  the 8x8 analogue of KID/FID on Inception features;
* ``mean_entropy``: the mean entropy of a classifier's class probabilities (lower: each sample is
  recognised as one digit);
* ``Judge``: these statistics of a sample set against a fixed held-out reference set, and their noise
  floor: the same statistics for real data (a pool disjoint from the reference, or the two halves of
  the reference), over several random draws.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from evaluation.distances import kid, mmd_rbf

Tensor = torch.Tensor


def median_bandwidth(x: Tensor) -> float:
    """sqrt(median(||x_i - x_j||^2) / 2) over the distinct pairs of ``x`` (the usual median heuristic)."""
    xf = x.reshape(x.shape[0], -1).double()
    d2 = torch.cdist(xf, xf).pow(2)
    iu = torch.triu_indices(xf.shape[0], xf.shape[0], 1)
    return math.sqrt(0.5 * float(d2[iu[0], iu[1]].median()))


def rbf_mmd2(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 between the sets x and y with exp(-||a - b||^2 / (2 bandwidth^2))."""
    return mmd_rbf(x, y, bandwidth=float(bandwidth))


def last_layer_features(classifier: torch.nn.Module, layer: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """features(x): the input of ``layer`` (e.g. the classifier's output layer) when ``classifier(x, None)``
    runs, captured with a forward hook (the network itself is untouched)."""
    def features(x: Tensor) -> Tensor:
        store: list[Tensor] = []
        handle = layer.register_forward_hook(lambda mod, inp, out: store.append(inp[0].detach()))
        try:
            with torch.no_grad():
                classifier(x, None)
        finally:
            handle.remove()
        return store[0]
    return features


def mean_entropy(probs: Tensor) -> float:
    """Mean entropy -sum_y p(y|x) log p(y|x) (nats) of class probabilities [n, K]: low when a classifier
    recognises each sample as one class (the fidelity half of the inception score)."""
    p = probs.double()
    return float(-(p * p.clamp_min(1e-30).log()).sum(1).mean())


def classifier_probs(classifier: torch.nn.Module) -> Callable[[Tensor], Tensor]:
    """probs(x) = softmax(classifier(x, None)) without a graph."""
    def probs(x: Tensor) -> Tensor:
        with torch.no_grad():
            return classifier(x, None).double().softmax(-1)
    return probs


class Judge:
    """Statistics of sample sets against a held-out ``reference`` set (both in the same space); lower is
    better for each:

    * "mmd": RBF-kernel MMD^2 with the bandwidth fixed from ``reference``;
    * "kid": KID on ``features(x)`` (with ``features``);
    * "entropy": the mean class entropy under ``probs(x)`` (with ``probs``).

    ``clamp``: (lo, hi) applied to samples before they are judged (images are judged as images, in the data
    range). The noise floor (``floor``) is the same statistics for real data: draws of ``pool`` (real data
    disjoint from ``reference``) against ``reference``, or, without a pool, one random half of ``reference``
    against the other half (for the digits: the test split, which the classifier never saw).
    """

    def __init__(self, reference: Tensor, pool: Tensor | None = None,
                 features: Callable[[Tensor], Tensor] | None = None, probs: Callable[[Tensor], Tensor] | None = None,
                 clamp: tuple[float, float] | None = None, bandwidth: float | None = None):
        self.reference = reference.double()
        self.pool = pool
        self.features = features
        self.probs = probs
        self.clamp = clamp
        self.bandwidth = float(bandwidth) if bandwidth is not None else median_bandwidth(self.reference)
        self.ref_features = features(reference.float()).double() if features is not None else None

    @property
    def names(self) -> tuple[str, ...]:
        return ("mmd",) + (("kid",) if self.features is not None else ()) + \
            (("entropy",) if self.probs is not None else ())

    def prepare(self, x: Tensor) -> Tensor:
        x = x.detach().double()
        return x.clamp(*self.clamp) if self.clamp is not None else x

    def _stats(self, x: Tensor, ref: Tensor, ref_features: Tensor | None) -> dict:
        out = {"mmd": rbf_mmd2(x, ref, self.bandwidth)}
        if self.features is not None:
            out["kid"] = kid(self.features(x.float()).double(), ref_features)
        if self.probs is not None:
            out["entropy"] = mean_entropy(self.probs(x.float()))
        return out

    def __call__(self, x: Tensor) -> dict:
        """The statistics of the samples ``x`` and "finite": the fraction of finite samples. A set with any
        non-finite sample (a diverged sampler) scores inf on every statistic: never a usable number."""
        finite = float(torch.isfinite(x.reshape(x.shape[0], -1)).all(1).double().mean())
        if finite < 1.:
            return {**{k: math.inf for k in self.names}, "finite": finite}
        return {**self._stats(self.prepare(x), self.reference, self.ref_features), "finite": finite}

    def floor(self, n: int, repeats: int, generator: torch.Generator) -> dict:
        """The statistics of real data, ``repeats`` random draws: {name: [values]} (see the class docstring;
        ``n`` points per draw from the pool, or half of the reference without a pool)."""
        vals: dict[str, list[float]] = {k: [] for k in self.names}
        for _ in range(int(repeats)):
            if self.pool is not None:
                if n > self.pool.shape[0]:
                    raise ValueError(f"n must be at most the pool size {self.pool.shape[0]}, got {n}")
                idx = torch.randperm(self.pool.shape[0], generator=generator)[:n]
                s = self(self.pool[idx])
            else:
                perm = torch.randperm(self.reference.shape[0], generator=generator)
                half = self.reference.shape[0] // 2
                a, b = self.reference[perm[:half]], self.reference[perm[half:]]
                s = self._stats(a, b, self.ref_features[perm[half:]] if self.ref_features is not None else None)
            for k in self.names:
                vals[k].append(s[k])
        return vals


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    return float(v.mean()), (float(v.std()) if v.numel() > 1 else 0.)
