"""Building blocks shared by the score networks.

* initialisation: DDPM's variance-scaling init (fan_avg, uniform) and zero-init of output layers;
* noise-level conditioning: how the float label ``cond = sde.model_label(t, continuous)`` becomes a
  feature vector (Gaussian Fourier features or DDPM sinusoidal embedding);
* U-Net pieces: residual blocks (BigGAN- and DDPM-style), self-attention, up/down-sampling (naive or
  FIR-blurred), GroupNorm sized for small channel counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


# ----------------------------------------------------------------------------------- initialisation
def variance_scaling_(weight: Tensor, scale: float = 1.) -> Tensor:
    """DDPM default init: U(-a, a) with a = sqrt(3 scale / fan_avg), fan_avg = (fan_in + fan_out) / 2.

    ``scale == 0`` gives exact zeros (zero-init of the last layer of a residual branch / the output).
    """
    if scale == 0:
        return nn.init.zeros_(weight)
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    bound = math.sqrt(3. * scale / ((fan_in + fan_out) / 2.))
    return nn.init.uniform_(weight, -bound, bound)


def conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
         init_scale: float = 1.) -> nn.Conv2d:
    """``kernel`` x ``kernel`` convolution with 'same' padding, DDPM init and zero bias."""
    layer = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=dilation * (kernel // 2),
                      dilation=dilation)
    variance_scaling_(layer.weight, init_scale)
    nn.init.zeros_(layer.bias)
    return layer


def dense(in_features: int, out_features: int, init_scale: float = 1.) -> nn.Linear:
    """Linear layer with DDPM init and zero bias."""
    layer = nn.Linear(in_features, out_features)
    variance_scaling_(layer.weight, init_scale)
    nn.init.zeros_(layer.bias)
    return layer


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with min(32, channels // 4) groups, lowered until it divides ``channels`` (>= 1)."""
    groups = max(1, min(max_groups, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6)


# ----------------------------------------------------------------------------- noise conditioning
@dataclass(frozen=True)
class NoiseConditioning:
    """What the conditioning input ``cond`` of a network means.

    kind "sigma" (VE SDEs, score parameterization): cond = sigma, the noise level (continuous sigma(t)
    or a ladder value sigma_i). kind "label" (VP / sub-VP, noise parameterization): cond = (N-1) t or
    the ladder index i. ``log_sigma_min/max`` describe the VE ladder (used to turn sigma into an index).
    """
    kind: str
    N: int
    log_sigma_min: float = 0.
    log_sigma_max: float = 1.

    def fourier_input(self, cond: Tensor) -> Tensor:
        """The scalar fed to Gaussian Fourier features: log(sigma) (NCSN++), or t = cond / (N-1)."""
        if self.kind == "sigma":
            return torch.log(cond)
        return cond / max(self.N - 1, 1)

    def positional_input(self, cond: Tensor) -> Tensor:
        """The scalar fed to the sinusoidal embedding: the (continuous) ladder index in [0, N-1].

        sigma -> (N-1) log(sigma / sigma_min) / log(sigma_max / sigma_min), exactly i for sigma_i;
        a label is used as is.
        """
        if self.kind == "sigma":
            span = self.log_sigma_max - self.log_sigma_min
            return (torch.log(cond) - self.log_sigma_min) * ((self.N - 1) / span)
        return cond


class GaussianFourierProjection(nn.Module):
    """gamma(u) = [sin(2 pi W u), cos(2 pi W u)], W ~ N(0, scale^2) fixed (a buffer): [B] -> [B, 2 dim]."""

    def __init__(self, dim: int, scale: float = 16.):
        super().__init__()
        self.register_buffer("W", torch.randn(dim) * scale)

    def forward(self, u: Tensor) -> Tensor:
        proj = u[:, None] * self.W[None, :].to(u.dtype) * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def sinusoidal_embedding(timesteps: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """DDPM/Transformer embedding: [sin(t w_k), cos(t w_k)], w_k = max_positions^(-k / (dim/2 - 1))."""
    half = dim // 2
    freq = math.log(max_positions) / max(half - 1, 1)
    freqs = torch.exp(-freq * torch.arange(half, device=timesteps.device, dtype=timesteps.dtype))
    args = timesteps[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class FourierEmbedding(nn.Module):
    """Gaussian Fourier features of ``spec.fourier_input(cond)``; output size 2 dim."""

    def __init__(self, spec: NoiseConditioning, dim: int, fourier_scale: float = 16.):
        super().__init__()
        self.spec = spec
        self.proj = GaussianFourierProjection(dim, fourier_scale)
        self.out_dim = 2 * dim

    def forward(self, cond: Tensor) -> Tensor:
        return self.proj(self.spec.fourier_input(cond))


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of ``spec.positional_input(cond)``; output size dim."""

    def __init__(self, spec: NoiseConditioning, dim: int, fourier_scale: float = 16.):
        super().__init__()
        self.spec = spec
        self.dim = self.out_dim = dim

    def forward(self, cond: Tensor) -> Tensor:
        return sinusoidal_embedding(self.spec.positional_input(cond), self.dim)


EMBEDDINGS: dict[str, type[nn.Module]] = {"fourier": FourierEmbedding, "positional": PositionalEmbedding}


class NoiseEmbedding(nn.Module):
    """cond [B] -> temb [B, out_dim]: features (EMBEDDINGS[embedding_type]) -> dense -> SiLU -> dense."""

    def __init__(self, spec: NoiseConditioning, embedding_type: str, dim: int, out_dim: int,
                 fourier_scale: float = 16.):
        super().__init__()
        self.features = EMBEDDINGS[embedding_type](spec, dim, fourier_scale)
        self.mlp = nn.Sequential(dense(self.features.out_dim, out_dim), nn.SiLU(), dense(out_dim, out_dim))

    def forward(self, cond: Tensor) -> Tensor:
        return self.mlp(self.features(cond))


# ----------------------------------------------------------------------------------- resampling
def _fir_kernel(kernel: tuple[float, ...], channels: int, gain: float) -> Tensor:
    k = torch.tensor(kernel, dtype=torch.float32)
    k2 = torch.outer(k, k)
    k2 = k2 / k2.sum() * gain
    return k2.flip(0, 1)[None, None].repeat(channels, 1, 1, 1)


class Resample(nn.Module):
    """2x up- or down-sampling without learned weights.

    naive: nearest-neighbour up / 2x2 average-pool down. fir: the separable blur ``fir_kernel``
    (default [1, 3, 3, 1], StyleGAN2 / NCSN++) applied depthwise, as a strided (transposed) convolution.
    """

    def __init__(self, channels: int, up: bool, fir: bool = False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.up, self.fir = up, fir
        if fir:
            if len(fir_kernel) != 4:
                raise ValueError(f"config.model.fir_kernel must have 4 taps, got {tuple(fir_kernel)}")
            self.register_buffer("kernel", _fir_kernel(tuple(fir_kernel), channels, 4. if up else 1.),
                                 persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.fir:
            return F.interpolate(x, scale_factor=2., mode="nearest") if self.up else F.avg_pool2d(x, 2)
        k = self.kernel.to(x.dtype)
        if self.up:
            return F.conv_transpose2d(x, k, stride=2, padding=1, groups=x.shape[1])
        return F.conv2d(x, k, stride=2, padding=1, groups=x.shape[1])


class Upsample(nn.Module):
    """2x upsampling (naive or FIR), then a 3x3 conv when ``with_conv``."""

    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = True, fir: bool = False,
                 fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch or in_ch
        if out_ch != in_ch and not with_conv:
            raise ValueError("Upsample: changing the channel count needs with_conv=True")
        self.resample = Resample(in_ch, up=True, fir=fir, fir_kernel=fir_kernel)
        self.conv = conv(in_ch, out_ch) if with_conv else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        return self.conv(self.resample(x))


class Downsample(nn.Module):
    """2x downsampling: a stride-2 3x3 conv (naive, ``with_conv``), FIR blur then 3x3 conv (fir,
    ``with_conv``), or the parameter-free Resample."""

    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = True, fir: bool = False,
                 fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch or in_ch
        if out_ch != in_ch and not with_conv:
            raise ValueError("Downsample: changing the channel count needs with_conv=True")
        if with_conv and not fir:
            self.resample, self.conv = nn.Identity(), conv(in_ch, out_ch, stride=2)
        else:
            self.resample = Resample(in_ch, up=False, fir=fir, fir_kernel=fir_kernel)
            self.conv = conv(in_ch, out_ch) if with_conv else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        return self.conv(self.resample(x))


# ------------------------------------------------------------------------------- residual blocks
def _combine(x: Tensor, h: Tensor, skip_rescale: bool) -> Tensor:
    """Residual sum, divided by sqrt(2) with skip rescaling (keeps the variance of the sum constant)."""
    return (x + h) / math.sqrt(2.) if skip_rescale else x + h


class ResnetBlockDDPM(nn.Module):
    """DDPM residual block: h = conv(act(GN(x))) + dense(act(temb)); h = conv(dropout(act(GN(h))));
    out = skip(x) + h (divided by sqrt 2 with skip_rescale). The second conv uses ``init_scale``."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int | None = None, dropout: float = 0.,
                 skip_rescale: bool = True, init_scale: float = 0., up: bool = False, down: bool = False,
                 fir: bool = False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        if up or down:
            raise ValueError("ResnetBlockDDPM does not resample; use Upsample / Downsample layers")
        self.norm0, self.conv0 = group_norm(in_ch), conv(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch) if temb_dim else None
        self.norm1, self.dropout = group_norm(out_ch), nn.Dropout(dropout)
        self.conv1 = conv(out_ch, out_ch, init_scale=init_scale)
        self.skip = conv(in_ch, out_ch, kernel=1) if in_ch != out_ch else nn.Identity()
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        if self.temb_proj is not None:
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        return _combine(self.skip(x), h, self.skip_rescale)


class ResnetBlockBigGAN(ResnetBlockDDPM):
    """BigGAN residual block: like the DDPM block, but up/down-sampling happens inside it (on both
    the residual branch after the first norm+act and on the skip path), as in NCSN++ / DDPM++."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int | None = None, dropout: float = 0.,
                 skip_rescale: bool = True, init_scale: float = 0., up: bool = False, down: bool = False,
                 fir: bool = False, fir_kernel=(1, 3, 3, 1)):
        super().__init__(in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale)
        if up and down:
            raise ValueError("a residual block cannot both upsample and downsample")
        self.resample = Resample(in_ch, up=up, fir=fir, fir_kernel=fir_kernel) if (up or down) else None
        if self.resample is not None and in_ch == out_ch:
            self.skip = conv(in_ch, out_ch, kernel=1)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = F.silu(self.norm0(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv0(h)
        if self.temb_proj is not None:
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        return _combine(self.skip(x), h, self.skip_rescale)


RESBLOCKS: dict[str, type[nn.Module]] = {"biggan": ResnetBlockBigGAN, "ddpm": ResnetBlockDDPM}


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions: out = x + proj(softmax(q k^T / sqrt C) v)
    (divided by sqrt 2 with skip_rescale); q, k, v are 1x1 convs of GN(x); proj uses ``init_scale``."""

    def __init__(self, channels: int, skip_rescale: bool = True, init_scale: float = 0.):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = conv(channels, 3 * channels, kernel=1)
        self.proj = conv(channels, channels, kernel=1, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)            # [B, HW, C]
        h = self.proj(h.transpose(-1, -2).reshape(B, C, H, W))
        return _combine(x, h, self.skip_rescale)


def check_inputs(x: Tensor, cond: Tensor, data_shape: tuple[int, ...]) -> Tensor:
    """Cheap shape checks (no device sync): x [B, *data_shape], cond a float tensor [B].

    Returns cond cast to x's dtype (a float64 time grid may drive a float32 network).
    """
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(data_shape):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [batch, {', '.join(map(str, data_shape))}] "
                         f"(config.data.shape={tuple(data_shape)}), got {got}")
    if not isinstance(cond, torch.Tensor) or cond.shape != (x.shape[0],) or not cond.is_floating_point():
        got = (tuple(cond.shape), cond.dtype) if isinstance(cond, torch.Tensor) else type(cond).__name__
        raise ValueError(f"cond must be a float tensor of shape [{x.shape[0]}] "
                         f"(sde.model_label(t, continuous)), got {got}")
    return cond.to(x.dtype)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

