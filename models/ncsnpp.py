"""NCSN++ / DDPM++ / DDPM U-Net (Song et al. 2021, Appendix H; Ho et al. 2020), computing exactly the
function of the original score_sde networks for every option their configs use.

Layout for ``ch_mult`` of length L, ``num_res_blocks`` = R (x in [0, 1] is first mapped to 2x - 1 unless
the data are ``centered``):

    embed(cond) -> temb;  conv3x3
    down, level l: R res blocks (+ attention where the width is in attn_resolutions), then (l < L-1) a 2x
        down (a down res block for resblock_type "biggan", a Downsample layer for "ddpm"), then the input
        pyramid: "input_skip" (x FIR/mean-downsampled, merged by Combine "sum"/"cat") or "residual"
        (x downsampled by a conv layer, (pyramid + h)/sqrt 2 becomes h and the next pyramid)
    middle: res block, attention, res block
    up, level l: R+1 res blocks on concat(h, skip) (+ attention), then the output pyramid: "output_skip"
        (pyramid = upsample(pyramid) + conv3x3(SiLU(GN(h))), the network output) or "residual", then
        (l > 0) a 2x up
    GroupNorm, SiLU, conv3x3 (unless output_skip);  / sigma with scale_by_sigma

Conditioning follows the original networks: Fourier features of log(cond) (cond = sigma for VE), or the
sinusoidal embedding of cond itself (999 t, or the ladder index); scale_by_sigma divides by the noise
level of cond. The original flat module list ``all_modules.{i}`` corresponds to ``original_order[i]``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from . import registry as R
from .blocks import RESBLOCKS, AttnBlock, Combine
from .conditioning import EMBEDDINGS, NoiseConditioning, NoiseEmbedding
from .layers import check_inputs, conv, group_norm
from .resample import Downsample, Resample, Upsample

Tensor = torch.Tensor
PROGRESSIVE = ("none", "output_skip", "residual")
PROGRESSIVE_INPUT = ("none", "input_skip", "residual")


class UNet(nn.Module):
    """NCSN++/DDPM++/DDPM U-Net on [B, C, H, W]; ``forward(x, cond)`` with cond [B] (see NoiseConditioning)."""

    def __init__(self, data_shape: tuple[int, int, int], spec: NoiseConditioning, *, nf: int = 128,
                 ch_mult: Sequence[int] = (1, 2, 2, 2), num_res_blocks: int = 2,
                 attn_resolutions: Sequence[int] = (16,), dropout: float = 0., resamp_with_conv: bool = True,
                 skip_rescale: bool = True, init_scale: float = 0., conditional: bool = True,
                 embedding_type: str = "fourier", fourier_scale: float = 16., scale_by_sigma: bool = False,
                 resblock_type: str = "biggan", fir: bool = False, fir_kernel: Sequence[float] = (1, 3, 3, 1),
                 progressive: str = "none", progressive_input: str = "none", progressive_combine: str = "sum",
                 centered: bool = True, norm_groups: int | None = None, attn_skip_rescale: bool | None = None):
        super().__init__()
        C, H, W = data_shape
        self.data_shape = tuple(data_shape)
        self.noise_conditioning = spec
        self.scale_by_sigma, self.centered, self.skip_rescale = scale_by_sigma, centered, skip_rescale
        self.progressive, self.progressive_input = progressive, progressive_input
        self.resblock_type = resblock_type
        self.num_res_blocks, self.n_levels = num_res_blocks, len(ch_mult)
        attn_skip_rescale = skip_rescale if attn_skip_rescale is None else attn_skip_rescale
        self.original_order: list[str] = []

        def add(name: str, module: nn.Module) -> nn.Module:
            self.original_order.append(name)
            return module

        # the original builds the Fourier projection even for an unconditional network (unused there)
        self.embed = NoiseEmbedding(spec, embedding_type, nf, 4 * nf, fourier_scale, raw=True)
        self.conditional = conditional
        if embedding_type == "fourier":
            add("embed.features.proj", self.embed.features.proj)
        if conditional:
            add("embed.mlp.0", self.embed.mlp[0])
            add("embed.mlp.2", self.embed.mlp[2])
        else:
            self.embed.mlp = nn.Identity()
        Block = RESBLOCKS[resblock_type]

        def block(i: int, o: int | None = None, **kw) -> nn.Module:
            return Block(i, o, temb_dim=4 * nf, dropout=dropout, skip_rescale=skip_rescale,
                         init_scale=init_scale, fir=fir, fir_kernel=fir_kernel, groups=norm_groups, **kw)

        def attn(ch: int) -> nn.Module:
            return AttnBlock(ch, skip_rescale=attn_skip_rescale, init_scale=init_scale, groups=norm_groups)

        def resample(ch: int, up: bool) -> nn.Module:
            if resblock_type == "biggan":
                return block(ch, up=up, down=not up)
            layer = Upsample if up else Downsample
            return layer(ch, with_conv=resamp_with_conv, fir=fir, fir_kernel=fir_kernel)

        self.conv_in = add("conv_in", conv(C, nf))
        heights = [H // 2 ** i for i in range(self.n_levels)]   # attention levels (square: = widths)
        self.down = nn.ModuleList()
        skip_ch, ch, pyr_ch = [nf], nf, C
        for level, mult in enumerate(ch_mult):
            stage = nn.Module()
            stage.blocks, stage.attns = nn.ModuleList(), nn.ModuleList()
            for b in range(num_res_blocks):
                stage.blocks.append(add(f"down.{level}.blocks.{b}", block(ch, nf * mult)))
                ch = nf * mult
                if heights[level] in attn_resolutions:
                    stage.attns.append(add(f"down.{level}.attns.{len(stage.attns)}", attn(ch)))
                skip_ch.append(ch)
            if level != self.n_levels - 1:
                stage.resample = add(f"down.{level}.resample", resample(ch, up=False))
                if progressive_input == "input_skip":
                    stage.pyramid = add(f"down.{level}.pyramid", Combine(pyr_ch, ch, progressive_combine))
                    ch = 2 * ch if progressive_combine == "cat" else ch
                elif progressive_input == "residual":
                    stage.pyramid = add(f"down.{level}.pyramid",
                                        Downsample(pyr_ch, ch, with_conv=True, fir=fir, fir_kernel=fir_kernel))
                    pyr_ch = ch
                skip_ch.append(ch)
            self.down.append(stage)
        if progressive_input == "input_skip":
            self.pyramid_down = Resample(up=False, fir=fir, fir_kernel=fir_kernel)

        self.mid = nn.ModuleList([add("mid.0", block(ch)), add("mid.1", attn(ch)), add("mid.2", block(ch))])

        self.up = nn.ModuleList()
        pyr_ch = 0
        for level in reversed(range(self.n_levels)):
            stage = nn.Module()
            name = f"up.{len(self.up)}"
            stage.blocks = nn.ModuleList()
            for b in range(num_res_blocks + 1):
                stage.blocks.append(add(f"{name}.blocks.{b}", block(ch + skip_ch.pop(), nf * ch_mult[level])))
                ch = nf * ch_mult[level]
            if heights[level] in attn_resolutions:
                stage.attn = add(f"{name}.attn", attn(ch))
            if progressive == "output_skip" or (progressive == "residual" and level == self.n_levels - 1):
                stage.pyramid_norm = add(f"{name}.pyramid_norm", group_norm(ch, norm_groups))
                out_ch = C if progressive == "output_skip" else ch
                stage.pyramid_conv = add(f"{name}.pyramid_conv", conv(ch, out_ch, init_scale=init_scale
                                                                      if progressive == "output_skip" else 1.))
                pyr_ch = out_ch
            elif progressive == "residual":
                stage.pyramid_up = add(f"{name}.pyramid_up",
                                       Upsample(pyr_ch, ch, with_conv=True, fir=fir, fir_kernel=fir_kernel))
                pyr_ch = ch
            if level != 0:
                stage.resample = add(f"{name}.resample", resample(ch, up=True))
            self.up.append(stage)
        assert not skip_ch
        if progressive == "output_skip":
            self.pyramid_upsample = Resample(up=True, fir=fir, fir_kernel=fir_kernel)
        else:
            self.norm_out = add("norm_out", group_norm(ch, norm_groups))
            self.conv_out = add("conv_out", conv(ch, C, init_scale=init_scale))

    # ----------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Network output for x [B, C, H, W] at noise label cond [B]: a score (VE) or noise prediction."""
        cond = check_inputs(x, cond, self.data_shape, self.noise_conditioning)
        temb = self.embed(cond) if self.conditional else None
        if not self.centered:
            x = 2 * x - 1.
        pyramid = x
        hs = [self.conv_in(x)]
        for level, stage in enumerate(self.down):
            for b, blk in enumerate(stage.blocks):
                h = blk(hs[-1], temb)
                hs.append(stage.attns[b](h) if len(stage.attns) else h)
            if level != self.n_levels - 1:
                h = stage.resample(hs[-1], temb)
                if self.progressive_input == "input_skip":
                    pyramid = self.pyramid_down(pyramid)
                    h = stage.pyramid(pyramid, h)
                elif self.progressive_input == "residual":
                    pyramid = stage.pyramid(pyramid)
                    pyramid = h = (pyramid + h) / math.sqrt(2.) if self.skip_rescale else pyramid + h
                hs.append(h)

        h = self.mid[0](hs[-1], temb)
        h = self.mid[1](h)
        h = self.mid[2](h, temb)

        pyramid = None
        for stage in self.up:
            for blk in stage.blocks:
                h = blk(torch.cat([h, hs.pop()], dim=1), temb)
            if hasattr(stage, "attn"):
                h = stage.attn(h)
            if hasattr(stage, "pyramid_conv"):
                p = stage.pyramid_conv(F.silu(stage.pyramid_norm(h)))
                pyramid = p if pyramid is None else self.pyramid_upsample(pyramid) + p
            elif hasattr(stage, "pyramid_up"):
                pyramid = stage.pyramid_up(pyramid)
                pyramid = h = (pyramid + h) / math.sqrt(2.) if self.skip_rescale else pyramid + h
            if hasattr(stage, "resample"):
                h = stage.resample(h, temb)

        if self.progressive == "output_skip":
            h = pyramid
        else:
            h = self.conv_out(F.silu(self.norm_out(h)))
        if self.scale_by_sigma:
            h = h / self.noise_conditioning.sigma(cond).to(h.dtype).reshape(-1, 1, 1, 1)
        return h


# ------------------------------------------------------------------------------------- factories
def unet_from_config(config, *, fir: bool, progressive_input: str, resblock_type: str = "biggan",
                     norm_groups: int | None = None, attn_skip_rescale: bool | None = None,
                     skip_rescale: bool = True) -> UNet:
    """Read and validate the U-Net keys of ``config.model`` (the keyword arguments are the per-name
    defaults of the optional keys)."""
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
    embedding_type = R.choice_option(config, "embedding_type", EMBEDDINGS, "fourier")
    if embedding_type == "fourier" and spec.kind == "ve_index":
        raise ValueError("config.model.embedding_type='fourier' needs continuous conditioning "
                         "(config.training.continuous=True): a discrete VE network is fed ladder indices; "
                         "use embedding_type='positional'")
    nf = R.int_option(config, "nf")
    return UNet(
        (C, H, W), spec,
        nf=nf,
        ch_mult=ch_mult,
        num_res_blocks=R.int_option(config, "num_res_blocks"),
        attn_resolutions=attn_resolutions,
        dropout=R.float_option(config, "dropout", 0., 0., 1., high_open=True),
        resamp_with_conv=R.bool_option(config, "resamp_with_conv", True),
        skip_rescale=R.bool_option(config, "skip_rescale", skip_rescale),
        init_scale=R.float_option(config, "init_scale", 0.),
        conditional=R.bool_option(config, "conditional", True),
        embedding_type=embedding_type,
        fourier_scale=R.float_option(config, "fourier_scale", 16., low_open=True),
        scale_by_sigma=scale_by_sigma,
        resblock_type=R.choice_option(config, "resblock_type", RESBLOCKS, resblock_type),
        fir=R.bool_option(config, "fir", fir),
        fir_kernel=R.floats_option(config, "fir_kernel", (1, 3, 3, 1)),
        progressive=R.choice_option(config, "progressive", PROGRESSIVE, "none"),
        progressive_input=R.choice_option(config, "progressive_input", PROGRESSIVE_INPUT, progressive_input),
        progressive_combine=R.choice_option(config, "progressive_combine", ("sum", "cat"), "sum"),
        centered=R.data_centered(config),
        norm_groups=norm_groups,
        attn_skip_rescale=attn_skip_rescale,
    )


@R.register_model("ncsnpp")
def ncsnpp(config) -> UNet:
    """NCSN++: BigGAN residual blocks with FIR [1,3,3,1] resampling and a residual input pyramid
    (``config.model.fir`` / ``progressive`` / ``progressive_input`` / ``progressive_combine`` override;
    the original's DDPM++ configs are this network with fir=False and no pyramids)."""
    return unet_from_config(config, fir=True, progressive_input="residual")
