"""DDPM++ (Song et al. 2021): the NCSN++ U-Net family with the VP conventions.

Same :class:`models.ncsnpp.UNet` (BigGAN residual blocks, skip rescaling, attention), but naive
resampling (no FIR) and no input pyramid by default. Published VP / sub-VP CIFAR-10 settings: nf 128,
ch_mult (1,2,2,2), num_res_blocks 4 (8 "deep"), attn (16,), dropout 0.1, embedding_type "positional",
scale_by_sigma False (a VP network predicts the noise; get_score_fn divides by -std(t)).
"""
from __future__ import annotations

from .ncsnpp import UNet, unet_from_config
from .registry import register_model


@register_model("ddpmpp")
def ddpmpp(config) -> UNet:
    """DDPM++ U-Net from ``config.model`` (``fir`` defaults to False, ``progressive_input`` to "none")."""
    return unet_from_config(config, fir=False, progressive_input="none")
