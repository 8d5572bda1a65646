"""DDPM++ (Song et al. 2021) and the legacy DDPM network (Ho et al. 2020) as options of the U-Net.

* ``ddpmpp``: the NCSN++ U-Net with the VP conventions: naive resampling (no FIR), no pyramids by
  default. Published VP / sub-VP CIFAR-10 settings: nf 128, ch_mult (1,2,2,2), num_res_blocks 4 (8 "deep"),
  attn (16,), dropout 0.1, embedding_type "positional", scale_by_sigma False (a VP network predicts the
  noise; get_score_fn divides by -std(t)). (The original names this network "ncsnpp" too.)
* ``ddpm``: the original DDPM U-Net (score_sde ``models/ddpm.py``): DDPM residual blocks (NIN shortcut),
  GroupNorm with 32 groups everywhere, attention and residual sums without sqrt(2) rescaling, naive
  resampling with a TF-"SAME" stride-2 conv, sinusoidal embedding of the label.
"""
from __future__ import annotations

from . import registry as R
from .ncsnpp import UNet, unet_from_config


@R.register_model("ddpmpp")
def ddpmpp(config) -> UNet:
    """DDPM++ U-Net from ``config.model`` (``fir`` defaults to False, ``progressive_input`` to "none")."""
    return unet_from_config(config, fir=False, progressive_input="none")


@R.register_model("ddpm")
def ddpm(config) -> UNet:
    """Legacy DDPM U-Net (vp/cifar10_ddpm, subvp/cifar10_ddpm_continuous): see the module docstring."""
    for key, want in (("resblock_type", "ddpm"), ("fir", False), ("progressive", "none"),
                      ("progressive_input", "none"), ("embedding_type", "positional"),
                      ("skip_rescale", False)):
        got = R.option(config, key, want)
        if got != want:
            raise ValueError(f"config.model.{key} must be {want!r} for config.model.name='ddpm' "
                             f"(the DDPM network has no such option), got {got!r}")
    return unet_from_config(config, fir=False, progressive_input="none", resblock_type="ddpm",
                            norm_groups=32, attn_skip_rescale=False, skip_rescale=False)
