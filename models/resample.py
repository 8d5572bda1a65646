"""2x up- and down-sampling: nearest / mean-pool, FIR (StyleGAN2 upfirdn) and fused FIR convolutions.

``upfirdn2d(x, k, up, down, pad)``: insert up-1 zeros after every pixel, zero-pad by ``pad`` = (p0, p1)
on both axes, convolve depthwise with the 2-D FIR kernel k (a true convolution: k is flipped), keep
every ``down``-th pixel. With k = outer(f, f) / sum(outer(f, f)) for a 1-D filter f (any number of taps):

    upsample_2d:        k * gain * 4,   up=2,   pad = ((p+1)//2 + 1, p//2),          p = len(f) - 2
    downsample_2d:      k * gain,       down=2, pad = ((p+1)//2, p//2),              p = len(f) - 2
    conv_downsample_2d: blur with pad ((p+1)//2, p//2), p = len(f) - 2 + (K-1), then a stride-2 KxK conv
    upsample_conv_2d:   a stride-2 transposed KxK conv, then blur with k * 4 and pad ((p+1)//2 + 1, p//2 + 1),
                        p = len(f) - 2 - (K-1)

(the fused forms blur once at full resolution: NCSN++'s FIR resampling with convolution).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv, variance_scaling_

Tensor = torch.Tensor


def fir_kernel_2d(taps: Sequence[float]) -> Tensor:
    """outer(f, f) / sum, float64 (a 2-D kernel is accepted as is and normalised)."""
    k = torch.as_tensor(taps, dtype=torch.float64, device="cpu")
    if k.dim() == 1:
        k = torch.outer(k, k)
    if k.dim() != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ValueError(f"config.model.fir_kernel must be a 1-D filter or a square 2-D kernel, got {tuple(taps)}")
    total = float(k.sum())
    if total == 0:
        raise ValueError(f"config.model.fir_kernel must not sum to zero, got {tuple(taps)}")
    return k / total


def upfirdn2d(x: Tensor, k: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter (true convolution with k) and downsample x [B, C, H, W]."""
    B, C, H, W = x.shape
    if up > 1:
        z = x.new_zeros(B, C, H * up, W * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0):x.shape[2] - max(-p1, 0), max(-p0, 0):x.shape[3] - max(-p1, 0)]
    w = torch.flip(k, (0, 1)).to(dtype=x.dtype, device=x.device)
    w = w[None, None].expand(C, 1, *w.shape)
    return F.conv2d(x, w, stride=down, groups=C)


def upsample_2d(x: Tensor, k: Tensor, factor: int = 2, gain: float = 1.) -> Tensor:
    """FIR upsampling by ``factor`` (a constant image keeps its value times ``gain``)."""
    p = k.shape[0] - factor
    return upfirdn2d(x, k * (gain * factor ** 2), up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: Tensor, k: Tensor, factor: int = 2, gain: float = 1.) -> Tensor:
    """FIR downsampling by ``factor``."""
    p = k.shape[0] - factor
    return upfirdn2d(x, k * gain, down=factor, pad=((p + 1) // 2, p // 2))


def conv_downsample_2d(x: Tensor, weight: Tensor, k: Tensor, factor: int = 2) -> Tensor:
    """Fused FIR blur + stride-``factor`` convolution with ``weight`` [out, in, K, K] (no bias)."""
    K = weight.shape[-1]
    p = (k.shape[0] - factor) + (K - 1)
    x = upfirdn2d(x, k, pad=((p + 1) // 2, p // 2))
    return F.conv2d(x, weight, stride=factor)


def upsample_conv_2d(x: Tensor, weight: Tensor, k: Tensor, factor: int = 2) -> Tensor:
    """Fused stride-``factor`` transposed convolution with ``weight`` [out, in, K, K] + FIR blur."""
    K = weight.shape[-1]
    p = (k.shape[0] - factor) - (K - 1)
    w = torch.flip(weight, (2, 3)).transpose(0, 1)          # conv_transpose2d layout [in, out, K, K]
    x = F.conv_transpose2d(x, w, stride=factor)
    return upfirdn2d(x, k * factor ** 2, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def naive_upsample_2d(x: Tensor, factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling (each pixel repeated factor x factor times)."""
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def naive_downsample_2d(x: Tensor, factor: int = 2) -> Tensor:
    """Mean over factor x factor blocks."""
    return F.avg_pool2d(x, factor)


class FIRKernel(nn.Module):
    """Holds a normalised FIR kernel as a non-persistent buffer (moves with the module)."""

    def __init__(self, taps: Sequence[float]):
        super().__init__()
        self.register_buffer("k", fir_kernel_2d(taps).float(), persistent=False)


class Resample(FIRKernel):
    """Parameter-free 2x resampling: FIR (``fir``) or nearest-neighbour up / mean-pool down."""

    def __init__(self, up: bool, fir: bool = False, fir_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__(fir_kernel if fir else (1, 1))
        self.up, self.fir = up, fir

    def forward(self, x: Tensor) -> Tensor:
        if self.fir:
            return upsample_2d(x, self.k) if self.up else downsample_2d(x, self.k)
        return naive_upsample_2d(x) if self.up else naive_downsample_2d(x)


class FIRConv2d(FIRKernel):
    """KxK convolution fused with 2x FIR up- or down-sampling (weight [out, in, K, K], bias [out])."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, up: bool = False, down: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True):
        super().__init__(fir_kernel)
        if up == down:
            raise ValueError("FIRConv2d resamples: exactly one of up / down")
        self.up, self.down = up, down
        self.weight = nn.Parameter(variance_scaling_(torch.empty(out_ch, in_ch, kernel, kernel)))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype)
        h = upsample_conv_2d(x, w, self.k) if self.up else conv_downsample_2d(x, w, self.k)
        return h if self.bias is None else h + self.bias.to(x.dtype)[None, :, None, None]


class Upsample(nn.Module):
    """2x upsampling: naive (nearest, then a 3x3 conv when ``with_conv``) or FIR (upsample_2d, or the
    fused FIR transposed convolution when ``with_conv``)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch or in_ch
        if out_ch != in_ch and not with_conv:
            raise ValueError("Upsample: changing the channel count needs with_conv=True")
        self.fir, self.with_conv = fir, with_conv
        self.ORIGINAL_NAMES = {"Conv2d_0" if fir else "Conv_0": "conv"}     # the original's name for conv
        self.resample = Resample(up=True, fir=fir, fir_kernel=fir_kernel) if not (fir and with_conv) else None
        if with_conv:
            self.conv = FIRConv2d(in_ch, out_ch, up=True, fir_kernel=fir_kernel) if fir else conv(in_ch, out_ch)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        if self.fir and self.with_conv:
            return self.conv(x)
        h = self.resample(x)
        return self.conv(h) if self.with_conv else h


class Downsample(nn.Module):
    """2x downsampling: naive (a stride-2 3x3 conv after padding (0, 1, 0, 1), TF "SAME", when
    ``with_conv``, else 2x2 mean-pooling) or FIR (downsample_2d, or the fused FIR convolution)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch or in_ch
        if out_ch != in_ch and not with_conv:
            raise ValueError("Downsample: changing the channel count needs with_conv=True")
        self.fir, self.with_conv = fir, with_conv
        self.ORIGINAL_NAMES = {"Conv2d_0" if fir else "Conv_0": "conv"}     # the original's name for conv
        self.resample = Resample(up=False, fir=fir, fir_kernel=fir_kernel) if not with_conv else None
        if with_conv:
            self.conv = (FIRConv2d(in_ch, out_ch, down=True, fir_kernel=fir_kernel) if fir
                         else conv(in_ch, out_ch, stride=2, padding=0))

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        if not self.with_conv:
            return self.resample(x)
        if self.fir:
            return self.conv(x)
        return self.conv(F.pad(x, (0, 1, 0, 1)))
