"""Time/noise-conditional classifiers p_t(y | x_t) for class guidance, and clean classifiers p(y | x).

    h_0 = dense(flatten(x)),  temb = NoiseEmbedding(cond)   (the score networks' conditioning: cond =
                                                            sde.model_label(t, continuous))
    h_k = h_{k-1} + dense(SiLU(dense(h_{k-1}) + dense(temb)))     k = 1..n_layers (width nf)
    logits = dense(SiLU(LayerNorm(h_n)))                          [B, n_classes]

``conditional=False`` drops the embedding: a plain classifier of clean data (cond is ignored).
``get_classifier_fn(sde, model)`` turns a network into ``classifier_fn(x, t) -> logits``, the input of
``samplers.conditional_score_fn``. Registered in ``models.MODELS`` as "classifier" (reads
``config.classifier.*``, see ``classifier_options``).
"""
from __future__ import annotations

import math
from typing import Callable

import ml_collections
import torch
import torch.nn.functional as F
from torch import nn

from . import registry as R
from .conditioning import NoiseConditioning, NoiseEmbedding
from .layers import check_inputs, dense
from .score import check_conditioning
from .mlp import ResidualMLPBlock

Tensor = torch.Tensor

#: defaults of ``config.classifier`` (any missing key takes these values)
CLASSIFIER_DEFAULTS = dict(n_classes=10, nf=128, n_layers=2, embedding_type="fourier", fourier_scale=16.,
                           dropout=0.1, n_iters=2000, batch_size=128, lr=2e-3, weight_decay=1e-4, eps=1e-5,
                           clean_n_iters=1000)


class ClassifierMLP(nn.Module):
    """Residual MLP classifier on x [B, *data_shape], optionally conditioned on cond [B]."""

    def __init__(self, data_shape: tuple[int, ...], n_classes: int, spec: NoiseConditioning | None = None, *,
                 nf: int = 256, n_layers: int = 2, embedding_type: str = "fourier", fourier_scale: float = 16.,
                 dropout: float = 0.):
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        self.data_shape = tuple(data_shape)
        self.n_classes = n_classes
        self.noise_conditioning = spec
        conditional = spec is not None
        self.embed = NoiseEmbedding(spec, embedding_type, nf, nf, fourier_scale) if conditional else None
        self.fc_in = dense(math.prod(self.data_shape), nf)
        self.blocks = nn.ModuleList(ResidualMLPBlock(nf, nf if conditional else None, dropout)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(nf)
        self.fc_out = dense(nf, n_classes)

    @property
    def conditional(self) -> bool:
        return self.embed is not None

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.conditional:
            cond = check_inputs(x, cond, self.data_shape, self.noise_conditioning)
            temb = F.silu(self.embed(cond))
        else:
            temb = None
        h = self.fc_in(x.reshape(x.shape[0], -1))
        for blk in self.blocks:
            h = blk(h, temb)
        return self.fc_out(F.silu(self.norm(h)))


def classifier_options(config) -> ml_collections.ConfigDict:
    """``config.classifier`` completed with ``CLASSIFIER_DEFAULTS`` (a new ConfigDict; config is untouched)."""
    opts = ml_collections.ConfigDict(dict(CLASSIFIER_DEFAULTS))
    given = getattr(config, "classifier", None)
    if given is not None:
        for key, value in given.items():
            opts[key] = value
    return opts


def build_classifier(config, conditional: bool = True) -> ClassifierMLP:
    """A classifier for ``config.data.shape`` from ``config.classifier``: noise-conditional for the SDE of
    ``config.training.sde`` (cond = sde.model_label(t, config.training.continuous)), or a clean one."""
    opts = classifier_options(config)
    n_classes = opts.n_classes
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"config.classifier.n_classes must be an int >= 2, got {n_classes!r}")
    for key in ("nf", "n_layers"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "nf" else 0):
            raise ValueError(f"config.classifier.{key} must be a positive int, got {v!r}")
    spec = R.noise_conditioning(config) if conditional else None
    return ClassifierMLP(R.data_shape(config), n_classes, spec, nf=opts.nf, n_layers=opts.n_layers,
                         embedding_type=str(opts.embedding_type), fourier_scale=float(opts.fourier_scale),
                         dropout=float(opts.dropout))


@R.register_model("classifier")
def classifier(config) -> ClassifierMLP:
    """Noise-conditional classifier (``models.get_model`` with config.model.name = "classifier")."""
    return build_classifier(config, conditional=True)


def get_classifier_fn(sde, model: nn.Module, continuous: bool = True,
                      train: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """classifier_fn(x, t) = model(x, sde.model_label(t, continuous)) -> logits (the score networks'
    conditioning). A clean (unconditional) classifier ignores t."""
    check_conditioning(sde, model, what="classifier", continuous=bool(continuous))
    continuous, train = bool(continuous), bool(train)

    def classifier_fn(x: Tensor, t: Tensor) -> Tensor:
        model.train(train)
        return model(x, sde.model_label(t, continuous))

    return classifier_fn


__all__ = ["ClassifierMLP", "CLASSIFIER_DEFAULTS", "classifier_options", "build_classifier", "classifier",
           "get_classifier_fn"]
