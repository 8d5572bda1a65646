"""U-Net blocks of the NCSN++ / DDPM++ / DDPM networks (Song et al. 2021, Ho et al. 2020).

Each block keeps the original's parameterisation (GroupNorm eps 1e-6, NIN layers with W [in, out]) so
that released checkpoints load by renaming; ``ORIGINAL_NAMES`` maps the original's submodule names to
this block's. ``skip_rescale`` divides residual sums by sqrt(2) (keeps the variance of the sum).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import NIN, conv, dense, group_norm
from .resample import Resample, naive_downsample_2d, naive_upsample_2d  # noqa: F401

Tensor = torch.Tensor


def _combine(x: Tensor, h: Tensor, skip_rescale: bool) -> Tensor:
    return (x + h) / math.sqrt(2.) if skip_rescale else x + h


class ResnetBlockDDPM(nn.Module):
    """DDPM residual block: h = conv0(SiLU(GN(x))) + dense(SiLU(temb)); h = conv1(dropout(SiLU(GN(h))));
    out = skip(x) + h (/ sqrt 2 with skip_rescale); skip is a NIN when the channel count changes.
    ``groups`` fixes the GroupNorm group count (32 in the legacy DDPM network)."""

    ORIGINAL_NAMES = {"GroupNorm_0": "norm0", "Conv_0": "conv0", "Dense_0": "temb_proj",
                      "GroupNorm_1": "norm1", "Conv_1": "conv1", "NIN_0": "skip"}

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 dropout: float = 0., skip_rescale: bool = True, init_scale: float = 0.,
                 groups: int | None = None, **unused):
        super().__init__()
        out_ch = out_ch or in_ch
        if unused.get("up") or unused.get("down"):
            raise ValueError("ResnetBlockDDPM does not resample; use Upsample / Downsample layers")
        self.norm0, self.conv0 = group_norm(in_ch, groups), conv(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch) if temb_dim else None
        self.norm1, self.dropout = group_norm(out_ch, groups), nn.Dropout(dropout)
        self.conv1 = conv(out_ch, out_ch, init_scale=init_scale)
        self.skip = NIN(in_ch, out_ch) if in_ch != out_ch else None
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        if temb is not None and self.temb_proj is not None:
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        skip = x if self.skip is None else self.skip(x)
        return _combine(skip, h, self.skip_rescale)


class ResnetBlockBigGAN(nn.Module):
    """BigGAN residual block: as the DDPM block, but 2x up/down-sampling (FIR or naive) happens inside,
    on the residual branch after the first norm + SiLU and on the skip path; the skip is a 1x1 conv
    when the channel count changes or the block resamples."""

    ORIGINAL_NAMES = {"GroupNorm_0": "norm0", "Conv_0": "conv0", "Dense_0": "temb_proj",
                      "GroupNorm_1": "norm1", "Conv_1": "conv1", "Conv_2": "skip"}

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 dropout: float = 0., skip_rescale: bool = True, init_scale: float = 0.,
                 up: bool = False, down: bool = False, fir: bool = False, fir_kernel=(1, 3, 3, 1),
                 groups: int | None = None):
        super().__init__()
        out_ch = out_ch or in_ch
        if up and down:
            raise ValueError("a residual block cannot both upsample and downsample")
        self.norm0, self.conv0 = group_norm(in_ch, groups), conv(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch) if temb_dim else None
        self.norm1, self.dropout = group_norm(out_ch, groups), nn.Dropout(dropout)
        self.conv1 = conv(out_ch, out_ch, init_scale=init_scale)
        self.resample = Resample(up=up, fir=fir, fir_kernel=fir_kernel) if (up or down) else None
        self.skip = conv(in_ch, out_ch, kernel=1) if (in_ch != out_ch or up or down) else None
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = F.silu(self.norm0(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv0(h)
        if temb is not None and self.temb_proj is not None:
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        skip = x if self.skip is None else self.skip(x)
        return _combine(skip, h, self.skip_rescale)


RESBLOCKS: dict[str, type[nn.Module]] = {"biggan": ResnetBlockBigGAN, "ddpm": ResnetBlockDDPM}


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions (DDPM): q, k, v, proj are NIN layers of GN(x);
    out = x + proj(softmax(q^T k / sqrt C) v) (/ sqrt 2 with skip_rescale); proj uses ``init_scale``."""

    ORIGINAL_NAMES = {"GroupNorm_0": "norm", "NIN_0": "q", "NIN_1": "k", "NIN_2": "v", "NIN_3": "proj"}

    def __init__(self, channels: int, skip_rescale: bool = True, init_scale: float = 0.,
                 groups: int | None = None):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q, self.k, self.v = NIN(channels, channels), NIN(channels, channels), NIN(channels, channels)
        self.proj = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        q, k, v = (f(h).reshape(B, C, H * W).transpose(1, 2) for f in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v)               # [B, HW, C], softmax(q k^T / sqrt C) v
        h = self.proj(a.transpose(1, 2).reshape(B, C, H, W))
        return _combine(x, h, self.skip_rescale)


class Combine(nn.Module):
    """Merge a skip input x into h: conv1x1(x) concatenated with h ("cat") or added to it ("sum")."""

    ORIGINAL_NAMES = {"Conv_0": "conv"}

    def __init__(self, in_ch: int, out_ch: int, method: str = "cat"):
        super().__init__()
        if method not in ("cat", "sum"):
            raise ValueError(f"config.model.progressive_combine must be 'cat' or 'sum', got {method!r}")
        self.conv, self.method = conv(in_ch, out_ch, kernel=1), method

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        y = self.conv(x)
        return torch.cat([y, h], dim=1) if self.method == "cat" else y + h
