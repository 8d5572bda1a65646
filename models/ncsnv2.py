"""NCSNv2-style score network (Song & Ermon 2020): an unconditional RefineNet-lite, divided by sigma.

    s_theta(x, sigma) = f_theta(x) / sigma                (Technique 3: no noise embedding at all)

f_theta: conv3x3 -> stages of pre-activation residual blocks (GroupNorm, ELU; stage 1 halves the
resolution, later stages use dilation 2, 4, ... instead, as NCSNv2 does on CIFAR-10) -> RefineNet
refinement from the deepest stage up (residual conv units, multi-resolution fusion by bilinear
upsampling and summation, chained residual pooling) -> GroupNorm, ELU, conv3x3. Stage i has
nf * ch_mult[i] channels and num_res_blocks blocks. ``cond`` must be the noise level sigma (VE SDE).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import registry as R
from .conditioning import NoiseConditioning
from .layers import check_inputs, conv, group_norm

Tensor = torch.Tensor


class ResBlockV2(nn.Module):
    """out = skip(x) + conv(ELU(GN(conv(ELU(GN(x)))))), 2x2 mean-pooled on both paths when ``down``."""

    def __init__(self, in_ch: int, out_ch: int, down: bool = False, dilation: int = 1):
        super().__init__()
        self.norm0, self.conv0 = group_norm(in_ch), conv(in_ch, out_ch, dilation=dilation)
        self.norm1, self.conv1 = group_norm(out_ch), conv(out_ch, out_ch, dilation=dilation)
        self.skip = conv(in_ch, out_ch, kernel=1) if (in_ch != out_ch or down) else nn.Identity()
        self.down = down

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.elu(self.norm1(self.conv0(F.elu(self.norm0(x))))))
        if self.down:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        return self.skip(x) + h


class RefineBlock(nn.Module):
    """RefineNet block: per input a residual conv unit + conv to ``out_ch``; bilinear upsampling to the
    first (largest) input's size and summation; chained residual pooling (x <- x + conv(avgpool5(path)),
    twice); an output residual unit (two at the end of the network)."""

    def __init__(self, in_chs: list[int], out_ch: int, end: bool = False, n_pool: int = 2):
        super().__init__()
        self.adapt = nn.ModuleList(nn.Sequential(ResBlockV2(c, c), conv(c, out_ch)) for c in in_chs)
        self.pool_convs = nn.ModuleList(conv(out_ch, out_ch) for _ in range(n_pool))
        self.out = nn.Sequential(*[ResBlockV2(out_ch, out_ch) for _ in range(2 if end else 1)])

    def forward(self, xs: list[Tensor]) -> Tensor:
        size = xs[0].shape[-2:]
        h = 0.
        for adapt, x in zip(self.adapt, xs):
            y = adapt(x)
            h = h + (y if y.shape[-2:] == size else F.interpolate(y, size=size, mode="bilinear",
                                                                  align_corners=True))
        h = F.elu(h)
        path = h
        for conv_ in self.pool_convs:
            path = conv_(F.avg_pool2d(path, 5, stride=1, padding=2, count_include_pad=False))
            h = h + path
        return self.out(h)


class NCSNv2(nn.Module):
    """f_theta(x) / sigma on x [B, C, H, W] with cond = sigma [B]."""

    def __init__(self, data_shape: tuple[int, int, int], spec: NoiseConditioning, *, nf: int = 128,
                 ch_mult=(1, 2, 2, 2), num_res_blocks: int = 2, init_scale: float = 0.):
        super().__init__()
        C, _, _ = data_shape
        self.data_shape = tuple(data_shape)
        self.noise_conditioning = spec
        chs = [nf * m for m in ch_mult]
        self.conv_in = conv(C, nf)
        self.stages = nn.ModuleList()
        prev = nf
        for i, ch in enumerate(chs):
            dilation = 2 ** (i - 1) if i >= 2 else 1
            blocks = [ResBlockV2(prev, ch, down=(i == 1), dilation=dilation)]
            blocks += [ResBlockV2(ch, ch, dilation=dilation) for _ in range(num_res_blocks - 1)]
            self.stages.append(nn.Sequential(*blocks))
            prev = ch
        # refine[i] fuses stage i with refine[i+1]; outputs the channel count of stage i-1
        self.refine = nn.ModuleList(
            RefineBlock([chs[i]] + ([chs[i]] if i < len(chs) - 1 else []), chs[max(i - 1, 0)],
                        end=(i == 0))
            for i in range(len(chs)))
        self.norm_out = group_norm(chs[0])
        self.conv_out = conv(chs[0], C, init_scale=init_scale)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        cond = check_inputs(x, cond, self.data_shape)
        h = self.conv_in(x)
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        ref = None
        for i in reversed(range(len(feats))):
            ref = self.refine[i]([feats[i]] + ([ref] if ref is not None else []))
        out = self.conv_out(F.elu(self.norm_out(ref)))
        return out / self.noise_conditioning.sigma(cond).reshape(-1, 1, 1, 1)


@R.register_model("ncsnv2")
def ncsnv2(config) -> NCSNv2:
    """NCSNv2 from ``config.model`` (nf, ch_mult, num_res_blocks, init_scale); needs a VE SDE."""
    C, H, W = R.image_shape(config)
    spec = R.noise_conditioning(config)
    if not spec.is_ve:
        raise ValueError(f"config.model.name='ncsnv2' divides by the noise level sigma and needs "
                         f"config.training.sde='vesde', got {config.training.sde!r}")
    ch_mult = R.ints_option(config, "ch_mult")
    if len(ch_mult) > 1 and (H % 2 or W % 2):
        raise ValueError(f"config.data.shape={(C, H, W)}: H and W must be even for config.model.name="
                         f"'ncsnv2' with more than one stage (config.model.ch_mult={ch_mult})")
    return NCSNv2((C, H, W), spec, nf=R.int_option(config, "nf"), ch_mult=ch_mult,
                  num_res_blocks=R.int_option(config, "num_res_blocks"),
                  init_scale=R.float_option(config, "init_scale", 0.))
