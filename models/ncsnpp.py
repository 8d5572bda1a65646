"""NCSN++ / DDPM++ U-Net (Song et al. 2021, Appendix H) and the ``ncsnpp`` factory.

One class, :class:`UNet`, serves both registered names; they differ only in defaults
(``ncsnpp``: FIR resampling and a residual input pyramid, as in the NCSN++ CIFAR-10 configs;
``ddpmpp``: neither). Layout for ``ch_mult`` of length L, ``num_res_blocks`` = R:

    conv3x3 -> [level l: R res blocks (+ attention at the listed resolutions), 2x down] x L
               (no down after the last level; with progressive_input="residual" the input image,
               downsampled by a conv layer per level, is added to h after every 2x down)
            -> res block, attention, res block
            -> [level l: R+1 res blocks on concat(h, skip) (+ attention), 2x up] x L
            -> GroupNorm, SiLU, conv3x3 (init_scale)   [/ sigma when scale_by_sigma]

Residual and attention outputs are (x + h) / sqrt(2) with ``skip_rescale``. The noise label is
embedded once (Fourier or sinusoidal features -> dense -> SiLU -> dense, width 4 nf) and added in
every residual block.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from . import registry as R
from .layers import (AttnBlock, Downsample, EMBEDDINGS, NoiseConditioning, NoiseEmbedding, RESBLOCKS,
                     Upsample, check_inputs, conv, group_norm)

Tensor = torch.Tensor


class UNet(nn.Module):
    """NCSN++/DDPM++ U-Net on [B, C, H, W]; ``forward(x, cond)`` with cond [B] (see NoiseConditioning)."""

    def __init__(self, data_shape: tuple[int, int, int], spec: NoiseConditioning, *, nf: int = 128,
                 ch_mult=(1, 2, 2, 2), num_res_blocks: int = 2, attn_resolutions=(16,), dropout: float = 0.,
                 resamp_with_conv: bool = True, skip_rescale: bool = True, init_scale: float = 0.,
                 conditional: bool = True, embedding_type: str = "fourier", fourier_scale: float = 16.,
                 scale_by_sigma: bool = False, resblock_type: str = "biggan", fir: bool = False,
                 fir_kernel=(1, 3, 3, 1), progressive_input: str = "none"):
        super().__init__()
        C, H, W = data_shape
        self.data_shape = tuple(data_shape)
        self.noise_conditioning = spec
        self.scale_by_sigma = scale_by_sigma
        self.progressive_input = progressive_input
        self.skip_rescale = skip_rescale
        self.num_res_blocks = num_res_blocks
        n_levels = len(ch_mult)

        self.embed = NoiseEmbedding(spec, embedding_type, nf, 4 * nf, fourier_scale) if conditional else None
        temb_dim = 4 * nf if conditional else None
        Block = RESBLOCKS[resblock_type]

        def block(i: int, o: int, **kw) -> nn.Module:
            return Block(i, o, temb_dim=temb_dim, dropout=dropout, skip_rescale=skip_rescale,
                         init_scale=init_scale, fir=fir, fir_kernel=fir_kernel, **kw)

        def attn(ch: int) -> nn.Module:
            return AttnBlock(ch, skip_rescale=skip_rescale, init_scale=init_scale)

        def resample(ch: int, up: bool) -> nn.Module:
            if resblock_type == "biggan":
                return block(ch, ch, up=up, down=not up)
            layer = Upsample if up else Downsample
            return layer(ch, with_conv=resamp_with_conv, fir=fir, fir_kernel=fir_kernel)

        self.conv_in = conv(C, nf)
        self.down_blocks, self.down_attn = nn.ModuleList(), nn.ModuleList()
        self.downsample, self.pyramid = nn.ModuleList(), nn.ModuleList()
        skip_ch, ch, res, pyramid_ch = [nf], nf, H, C
        for level, mult in enumerate(ch_mult):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(ch, nf * mult))
                ch = nf * mult
                attns.append(attn(ch) if res in attn_resolutions else nn.Identity())
                skip_ch.append(ch)
            self.down_blocks.append(blocks)
            self.down_attn.append(attns)
            if level != n_levels - 1:
                self.downsample.append(resample(ch, up=False))
                if progressive_input == "residual":
                    self.pyramid.append(Downsample(pyramid_ch, ch, with_conv=True, fir=fir,
                                                   fir_kernel=fir_kernel))
                    pyramid_ch = ch
                skip_ch.append(ch)
                res //= 2

        self.mid = nn.ModuleList([block(ch, ch), attn(ch), block(ch, ch)])

        self.up_blocks, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(n_levels)):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(block(ch + skip_ch.pop(), nf * ch_mult[level]))
                ch = nf * ch_mult[level]
            self.up_blocks.append(blocks)
            self.up_attn.append(attn(ch) if res in attn_resolutions else nn.Identity())
            if level != 0:
                self.upsample.append(resample(ch, up=True))
                res *= 2
        assert not skip_ch

        self.norm_out = group_norm(ch)
        self.conv_out = conv(ch, C, init_scale=init_scale)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Network output for x [B, C, H, W] at noise label cond [B]: a score (VE) or noise prediction."""
        cond = check_inputs(x, cond, self.data_shape)
        temb = self.embed(cond) if self.embed is not None else None
        h = self.conv_in(x)
        skips, pyramid = [h], x
        n_levels = len(self.down_blocks)
        for level in range(n_levels):
            for blk, att in zip(self.down_blocks[level], self.down_attn[level]):
                h = att(blk(h, temb))
                skips.append(h)
            if level != n_levels - 1:
                h = self.downsample[level](h, temb)
                if self.progressive_input == "residual":
                    pyramid = self.pyramid[level](pyramid)
                    pyramid = h = (pyramid + h) / math.sqrt(2.) if self.skip_rescale else pyramid + h
                skips.append(h)

        h = self.mid[0](h, temb)
        h = self.mid[1](h)
        h = self.mid[2](h, temb)

        for i, (blocks, att) in enumerate(zip(self.up_blocks, self.up_attn)):
            for blk in blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), temb)
            h = att(h)
            if i < len(self.upsample):
                h = self.upsample[i](h, temb)

        h = self.conv_out(F.silu(self.norm_out(h)))
        if self.scale_by_sigma:
            h = h / cond.reshape(-1, 1, 1, 1)
        return h


def unet_from_config(config, *, fir: bool, progressive_input: str) -> UNet:
    """Read and validate the U-Net keys of ``config.model`` (``fir`` / ``progressive_input`` are the
    per-name defaults for the optional keys of the same name)."""
    C, H, W = R.image_shape(config)
    ch_mult = R.ints_option(config, "ch_mult")
    factor = 2 ** (len(ch_mult) - 1)
    if H % factor or W % factor:
        raise ValueError(f"config.data.shape={(C, H, W)}: H and W must be divisible by "
                         f"2^(len(config.model.ch_mult) - 1) = {factor} for config.model.name="
                         f"{R.option(config, 'name')!r} with config.model.ch_mult={ch_mult}; "
                         f"use fewer levels or pad/crop the data")
    spec = R.noise_conditioning(config)
    scale_by_sigma = R.scale_by_sigma_option(config, spec)
    attn_resolutions = R.ints_option(config, "attn_resolutions", (), allow_empty=True)
    levels = [H // 2 ** i for i in range(len(ch_mult))]
    unused = [r for r in attn_resolutions if r not in levels]
    if unused:
        raise ValueError(f"config.model.attn_resolutions={attn_resolutions} contains {unused}, which "
                         f"is not a feature-map height of this U-Net {levels} (config.data.shape="
                         f"{(C, H, W)}, config.model.ch_mult={ch_mult})")
    return UNet(
        (C, H, W), spec,
        nf=R.int_option(config, "nf"),
        ch_mult=ch_mult,
        num_res_blocks=R.int_option(config, "num_res_blocks"),
        attn_resolutions=attn_resolutions,
        dropout=R.float_option(config, "dropout", 0., 0., 1., high_open=True),
        resamp_with_conv=R.bool_option(config, "resamp_with_conv", True),
        skip_rescale=R.bool_option(config, "skip_rescale", True),
        init_scale=R.float_option(config, "init_scale", 0.),
        conditional=R.bool_option(config, "conditional", True),
        embedding_type=R.choice_option(config, "embedding_type", EMBEDDINGS, "fourier"),
        fourier_scale=R.float_option(config, "fourier_scale", 16., low_open=True),
        scale_by_sigma=scale_by_sigma,
        resblock_type=R.choice_option(config, "resblock_type", RESBLOCKS, "biggan"),
        fir=R.bool_option(config, "fir", fir),
        fir_kernel=R.ints_option(config, "fir_kernel", (1, 3, 3, 1)),
        progressive_input=R.choice_option(config, "progressive_input", ("none", "residual"),
                                          progressive_input),
    )


@R.register_model("ncsnpp")
def ncsnpp(config) -> UNet:
    """NCSN++: BigGAN residual blocks with FIR [1,3,3,1] resampling and a residual input pyramid
    (``config.model.fir`` / ``progressive_input`` override). Published VE CIFAR-10 settings: nf 128,
    ch_mult (1,2,2,2), num_res_blocks 4 (8 "deep"), attn (16,), dropout 0.1, fourier embedding,
    scale_by_sigma True."""
    return unet_from_config(config, fir=True, progressive_input="residual")
