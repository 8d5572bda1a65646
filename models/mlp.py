"""Noise-conditional MLP for low-dimensional data of any shape (2-D toy sets, small vectors).

    h_0 = dense(flatten(x)),  temb = NoiseEmbedding(cond)          (Gaussian Fourier features by default)
    h_k = h_{k-1} + dense(SiLU(dense(h_{k-1}) + dense(temb)))      k = 1..n_layers (residual, width nf)
    out = dense(SiLU(h_n)) reshaped like x                          (init_scale; / sigma with scale_by_sigma)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import registry as R
from .conditioning import EMBEDDINGS, NoiseConditioning, NoiseEmbedding
from .layers import check_inputs, dense

Tensor = torch.Tensor


class ResidualMLPBlock(nn.Module):
    """h + dense(SiLU(dense(h) + dense(temb)))."""

    def __init__(self, width: int, temb_dim: int | None, dropout: float = 0.):
        super().__init__()
        self.fc0, self.fc1 = dense(width, width), dense(width, width)
        self.temb_proj = dense(temb_dim, width) if temb_dim else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, temb: Tensor | None) -> Tensor:
        z = self.fc0(h)
        if self.temb_proj is not None:
            z = z + self.temb_proj(temb)
        return h + self.fc1(self.dropout(F.silu(z)))


class MLP(nn.Module):
    """Residual MLP score network on x [B, *data_shape] conditioned on cond [B]."""

    def __init__(self, data_shape: tuple[int, ...], spec: NoiseConditioning, *, nf: int = 128,
                 n_layers: int = 4, embedding_type: str = "fourier", fourier_scale: float = 16.,
                 dropout: float = 0., init_scale: float = 0., scale_by_sigma: bool = False,
                 conditional: bool = True):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.noise_conditioning = spec
        self.scale_by_sigma = scale_by_sigma
        dim = math.prod(self.data_shape)
        self.embed = NoiseEmbedding(spec, embedding_type, nf, nf, fourier_scale) if conditional else None
        self.fc_in = dense(dim, nf)
        self.blocks = nn.ModuleList(ResidualMLPBlock(nf, nf if conditional else None, dropout)
                                    for _ in range(n_layers))
        self.fc_out = dense(nf, dim, init_scale=init_scale)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        cond = check_inputs(x, cond, self.data_shape, self.noise_conditioning)
        temb = F.silu(self.embed(cond)) if self.embed is not None else None
        h = self.fc_in(x.reshape(x.shape[0], -1))
        for blk in self.blocks:
            h = blk(h, temb)
        out = self.fc_out(F.silu(h)).reshape(x.shape)
        if self.scale_by_sigma:
            out = out / self.noise_conditioning.sigma(cond).reshape(-1, *([1] * (x.dim() - 1)))
        return out


@R.register_model("mlp")
def mlp(config) -> MLP:
    """MLP from ``config.model``: nf (width), n_layers (residual blocks), embedding_type, fourier_scale,
    dropout, init_scale, scale_by_sigma (VE only), conditional."""
    spec = R.noise_conditioning(config)
    scale_by_sigma = R.scale_by_sigma_option(config, spec)
    return MLP(R.data_shape(config), spec,
               nf=R.int_option(config, "nf"),
               n_layers=R.int_option(config, "n_layers", 4, minimum=0),
               embedding_type=R.choice_option(config, "embedding_type", EMBEDDINGS, "fourier"),
               fourier_scale=R.float_option(config, "fourier_scale", 16., low_open=True),
               dropout=R.float_option(config, "dropout", 0., 0., 1., high_open=True),
               init_scale=R.float_option(config, "init_scale", 0.),
               scale_by_sigma=scale_by_sigma,
               conditional=R.bool_option(config, "conditional", True))
