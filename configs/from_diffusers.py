"""diffusers NCSN++ (UNet2DModel + ScoreSdeVeScheduler) configuration -> this toolkit's config.

Only the layout diffusers converts from score_sde NCSN++ is accepted (the Hub's google/ncsnpp-* models):
SkipDownBlock2D / AttnSkipDownBlock2D and SkipUpBlock2D / AttnSkipUpBlock2D (BigGAN residual blocks with
FIR [1, 3, 3, 1] resampling, the output_skip / input_skip pyramids with sum combines, sqrt(2) skip
rescaling), Gaussian Fourier time features of log(sigma) with scale 16 and the output divided by sigma.
The scheduler gives the VE SDE (sigma_min, sigma_max, N = num_train_timesteps) and the PC sampler
(snr, correct_steps, sampling_eps).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import ml_collections

from configs.default import get_default_configs

_DOWN = ("SkipDownBlock2D", "AttnSkipDownBlock2D")
_UP = ("SkipUpBlock2D", "AttnSkipUpBlock2D")


def from_diffusers(unet_config: Mapping[str, Any],
                   scheduler_config: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """A toolkit config whose ``get_model`` is the network of the diffusers ``unet_config`` (config.json)
    and whose SDE / sampler follow ``scheduler_config`` (scheduler_config.json; VE defaults when None)."""
    if not isinstance(unet_config, Mapping):
        raise ValueError(f"unet_config must be the UNet's config.json as a dict, got {type(unet_config).__name__}")
    u = dict(unet_config)
    down, up = list(u.get("down_block_types", ())), list(u.get("up_block_types", ()))
    channels = [int(c) for c in u.get("block_out_channels", ())]
    if not channels or len(down) != len(channels) or len(up) != len(channels):
        raise ValueError("unet_config.block_out_channels, down_block_types and up_block_types must be "
                         f"non-empty and of equal length, got {channels}, {down}, {up}")
    bad = [b for b in down if b not in _DOWN] + [b for b in up if b not in _UP]
    if bad:
        raise ValueError(f"unet_config block type {bad[0]!r} is not supported: only the score_sde NCSN++ "
                         f"layout ({', '.join(_DOWN + _UP)}) is (diffusers' own UNets are not NCSN++)")
    if u.get("time_embedding_type", "fourier") != "fourier":
        raise ValueError(f"unet_config.time_embedding_type must be 'fourier' (NCSN++), got "
                         f"{u.get('time_embedding_type')!r}")
    for key, want in (("act_fn", "silu"), ("flip_sin_to_cos", True), ("freq_shift", 0)):
        if key in u and u[key] != want:
            raise ValueError(f"unet_config.{key} must be {want!r} for an NCSN++ UNet, got {u[key]!r}")
    nf = channels[0]
    if any(c % nf for c in channels):
        raise ValueError(f"unet_config.block_out_channels={channels} must be multiples of the first one")
    size = int(u.get("sample_size", 0))
    if size < 1:
        raise ValueError(f"unet_config.sample_size must be a positive int, got {u.get('sample_size')!r}")
    attn = tuple(size // 2 ** i for i, b in enumerate(down) if b.startswith("Attn"))
    attn_up = tuple(size // 2 ** (len(up) - 1 - i) for i, b in enumerate(up) if b.startswith("Attn"))
    if sorted(attn) != sorted(attn_up):
        raise ValueError(f"unet_config: attention levels differ between down ({attn}) and up ({attn_up}) blocks")
    small = [channels[i] for i, b in enumerate(down) if b.startswith("Attn") and channels[i] < 128]
    if small:
        raise ValueError(f"unet_config: attention at {small[0]} channels: diffusers' attention GroupNorm has "
                         f"32 groups where the original NCSN++ has min(C/4, 32); they agree only for C >= 128 "
                         f"(all Hub models), so this UNet is not an NCSN++ the toolkit reproduces")
    head_dim = u.get("attention_head_dim")
    attn_channels = [channels[i] for i, b in enumerate(down) if b.startswith("Attn")] + [channels[-1]]
    if head_dim is not None and any(int(head_dim) < c for c in attn_channels):
        raise ValueError(f"unet_config.attention_head_dim={head_dim} gives multi-head attention; NCSN++ attention "
                         f"is single-head (attention_head_dim null, as in diffusers' NCSN++ conversions)")
    if not u.get("add_attention", True):
        raise ValueError("unet_config.add_attention=False removes the middle attention NCSN++ has")
    s = dict(scheduler_config or {})
    sched = s.get("_class_name", "ScoreSdeVeScheduler")
    if sched not in ("ScoreSdeVeScheduler", "VeSdeScheduler"):
        raise ValueError(f"scheduler_config._class_name must be ScoreSdeVeScheduler, got {sched!r}")

    config = get_default_configs()
    t = config.training
    t.sde, t.continuous, t.reduce_mean, t.keep_checkpoints = "vesde", True, True, 5
    d = config.data
    d.shape = (int(u.get("in_channels", 3)), size, size)
    if int(u.get("out_channels", d.shape[0])) != d.shape[0]:
        raise ValueError("unet_config.out_channels must equal in_channels for a score network")
    d.centered = not bool(u.get("center_input_sample", True))   # centring inside the UNet: data in [0, 1]
    d.dataset, d.path, d.random_flip, d.n_bins = "image_folder", "data/images", True, 256
    m = config.model
    m.name, m.nf = "ncsnpp", nf
    m.ch_mult = tuple(c // nf for c in channels)
    m.num_res_blocks = int(u.get("layers_per_block", 1))
    m.attn_resolutions = tuple(sorted(attn, reverse=True))
    m.dropout = float(u.get("dropout", 0.))
    m.embedding_type, m.fourier_scale, m.scale_by_sigma, m.conditional = "fourier", 16., True, True
    m.resblock_type, m.fir, m.fir_kernel, m.skip_rescale = "biggan", True, (1, 3, 3, 1), True
    m.progressive, m.progressive_input, m.progressive_combine = "output_skip", "input_skip", "sum"
    m.resamp_with_conv, m.init_scale, m.ema_rate = True, 0., 0.9999
    m.sigma_min = float(s.get("sigma_min", 0.01))
    m.sigma_max = float(s.get("sigma_max", 1348. if size >= 1024 else 348.))
    m.num_scales = int(s.get("num_train_timesteps", 2000) or 2000)
    for key in ("sigma_min", "sigma_max"):
        if not (math.isfinite(getattr(m, key)) and getattr(m, key) > 0):
            raise ValueError(f"scheduler_config.{key} must be a positive number, got {s.get(key)!r}")
    sa = config.sampling
    sa.method, sa.predictor, sa.corrector = "pc", "reverse_diffusion", "langevin"
    sa.snr = float(s.get("snr", 0.15 if size >= 1024 else 0.075))
    sa.n_steps_each = int(s.get("correct_steps", 1))
    sa.eps = float(s.get("sampling_eps", 1e-5))
    sa.noise_removal = True
    return config
