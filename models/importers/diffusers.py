"""diffusers NCSN++ folders (the Hub's google/ncsnpp-* models, converted from score_sde by diffusers).

A folder is a ``UNet2DModel`` (config.json + diffusion_pytorch_model.safetensors) or a ``ScoreSdeVePipeline``
(model_index.json, unet/, scheduler/). Weights are read with safetensors only (a ``.bin`` pickle is refused).
diffusers' names map onto this toolkit's U-Net by structure (down_blocks.l.resnets.b -> down.l.blocks.b,
resnet_down -> the level's down block, skip_conv -> the input pyramid's Combine, skip_norm / skip_conv of
an up block -> its output-pyramid GroupNorm / conv, conv_norm_out / conv_out -> those of the last level);
attention projections are dense layers (weight [out, in]) in diffusers and NIN layers (W [in, out]) here:
transposed. Both the current (to_q / to_k / to_v / to_out.0) and the legacy (query / key / value /
proj_attn) attention names are read. A diffusers folder holds one set of weights (the EMA weights of the
original checkpoint): "model" and "ema" are equal.
"""
from __future__ import annotations

import json
import os
import re

import torch

from .registry import Importer, register_importer
from .common import check_state_dict, expected_state_dict

Tensor = torch.Tensor
WEIGHTS = "diffusion_pytorch_model.safetensors"
_RESNET = {"norm1": "norm0", "conv1": "conv0", "time_emb_proj": "temb_proj", "norm2": "norm1",
           "conv2": "conv1", "conv_shortcut": "skip"}
_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj",
         "query": "q", "key": "k", "value": "v", "proj_attn": "proj"}


def unet_folder(path: str) -> str:
    """The folder holding the UNet's config.json: ``path`` itself or its ``unet/`` (a pipeline)."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    if os.path.isfile(os.path.join(path, "unet", "config.json")):
        return os.path.join(path, "unet")
    raise ValueError(f"diffusers folder {path} has no config.json (nor unet/config.json)")


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_configs(path: str) -> tuple[dict, dict | None]:
    """(UNet config, scheduler config or None) of a diffusers folder."""
    unet = read_json(os.path.join(unet_folder(path), "config.json"))
    sched_path = os.path.join(path, "scheduler", "scheduler_config.json")
    return unet, (read_json(sched_path) if os.path.isfile(sched_path) else None)


def read_weights(folder: str) -> dict[str, Tensor]:
    """The UNet's safetensors weights (ValueError for a damaged file or a pickle-only folder)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    file = os.path.join(folder, WEIGHTS)
    if not os.path.isfile(file):
        if os.path.isfile(os.path.join(folder, "diffusion_pytorch_model.bin")):
            raise ValueError(f"{folder} holds only diffusion_pytorch_model.bin (a pickle); it is not read for "
                             f"safety: convert it to safetensors with diffusers (save_pretrained(..., "
                             f"safe_serialization=True)) first")
        raise ValueError(f"diffusers folder {folder} has no {WEIGHTS}")
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{file} is damaged or truncated ({type(e).__name__}: {str(e)[:200]})") from None


def to_toolkit_key(key: str, n_levels: int) -> tuple[str, bool]:
    """(this toolkit's key, transpose?) for a diffusers UNet2DModel key (ValueError if unknown)."""
    last = f"up.{n_levels - 1}"
    simple = {"conv_in": "conv_in", "time_proj": "embed.features.proj", "time_embedding.linear_1": "embed.mlp.0",
              "time_embedding.linear_2": "embed.mlp.2", "conv_norm_out": f"{last}.pyramid_norm",
              "conv_out": f"{last}.pyramid_conv"}
    module, _, leaf = key.rpartition(".")
    if module == "time_proj" and leaf in ("weight", "W"):
        return "embed.features.proj.W", False
    if module in simple:
        return f"{simple[module]}.{leaf}", False
    patterns = [
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", lambda m: (f"down.{m[1]}.blocks.{m[2]}", m[3], _RESNET)),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", lambda m: (f"down.{m[1]}.attns.{m[2]}", m[3], _ATTN)),
        (r"down_blocks\.(\d+)\.resnet_down\.(.+)", lambda m: (f"down.{m[1]}.resample", m[2], _RESNET)),
        (r"down_blocks\.(\d+)\.skip_conv", lambda m: (f"down.{m[1]}.pyramid.conv", "", {})),
        (r"mid_block\.resnets\.(\d+)\.(.+)", lambda m: (f"mid.{2 * int(m[1])}", m[2], _RESNET)),
        (r"mid_block\.attentions\.0\.(.+)", lambda m: ("mid.1", m[1], _ATTN)),
        (r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", lambda m: (f"up.{m[1]}.blocks.{m[2]}", m[3], _RESNET)),
        (r"up_blocks\.(\d+)\.attentions\.0\.(.+)", lambda m: (f"up.{m[1]}.attn", m[2], _ATTN)),
        (r"up_blocks\.(\d+)\.resnet_up\.(.+)", lambda m: (f"up.{m[1]}.resample", m[2], _RESNET)),
        (r"up_blocks\.(\d+)\.skip_norm", lambda m: (f"up.{m[1]}.pyramid_norm", "", {})),
        (r"up_blocks\.(\d+)\.skip_conv", lambda m: (f"up.{m[1]}.pyramid_conv", "", {})),
    ]
    for pattern, build in patterns:
        m = re.fullmatch(pattern, module)
        if m:
            prefix, sub, names = build(m)
            if sub:
                if sub not in names:
                    break
                prefix = f"{prefix}.{names[sub]}"
            if names is _ATTN and sub != "group_norm":
                return f"{prefix}.{'W' if leaf == 'weight' else 'b'}", leaf == "weight"
            return f"{prefix}.{leaf}", False
    raise ValueError(f"diffusers weight {key!r} has no counterpart in this toolkit's NCSN++ (only the "
                     f"score_sde NCSN++ layout, Skip / AttnSkip blocks, is supported)")


@register_importer
class DiffusersImporter(Importer):
    name = "diffusers"

    def detect(self, path: str, obj) -> bool:
        if not os.path.isdir(path):
            return False
        try:
            return os.path.isfile(os.path.join(unet_folder(path), WEIGHTS)) or \
                os.path.isfile(os.path.join(unet_folder(path), "diffusion_pytorch_model.bin"))
        except ValueError:
            return False

    def load(self, path: str, config, obj=None) -> dict:
        from configs.from_diffusers import from_diffusers
        if not os.path.isdir(path):
            raise ValueError(f"diffusers checkpoint {path} must be a folder (UNet2DModel or ScoreSdeVePipeline)")
        unet_cfg, sched_cfg = read_configs(path)
        _check_config(from_diffusers(unet_cfg, sched_cfg), config, path)
        weights = read_weights(unet_folder(path))
        n_levels = len(unet_cfg.get("block_out_channels", ()))
        mapped = {}
        for key, value in weights.items():
            ours, transpose = to_toolkit_key(key, n_levels)
            if transpose:
                value = value.reshape(value.shape[0], -1).t()
            mapped[ours] = value
        sd = check_state_dict(mapped, expected_state_dict(config), path,
                              "check config.model against the folder's unet/config.json")
        return {"model": sd, "ema": {k: v.clone() for k, v in sd.items()}, "step": 0, "source": self.name}


#: config keys that decide the network (and the SDE) an imported diffusers model needs
_COMPARED = ["training.sde", "training.continuous", "model.name", "model.nf", "model.ch_mult",
             "model.num_res_blocks", "model.attn_resolutions", "model.embedding_type", "model.fourier_scale",
             "model.scale_by_sigma", "model.progressive", "model.progressive_input",
             "model.progressive_combine", "model.resblock_type", "model.fir", "model.fir_kernel",
             "model.skip_rescale", "model.conditional", "data.shape", "data.centered"]


def _get(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return tuple(value) if isinstance(value, list) else value


def _check_config(from_folder, config, path: str) -> None:
    """``config`` must build the network the folder's config.json describes (first differing key named)."""
    for key in _COMPARED:
        want, got = _get(from_folder, key), _get(config, key)
        if isinstance(want, tuple) and isinstance(got, tuple):
            same = tuple(float(v) for v in want) == tuple(float(v) for v in got)
        elif isinstance(want, float) or isinstance(got, float):
            same = want is not None and got is not None and float(want) == float(got)
        else:
            same = want == got
        if not same:
            raise ValueError(f"config does not match checkpoint {path}: config.{key} is {got!r} but the "
                             f"folder's unet/config.json gives {want!r} (build the config with "
                             f"configs.from_diffusers or a configs/ve/*_ncsnpp_continuous.py file)")
