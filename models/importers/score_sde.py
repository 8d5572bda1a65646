"""score_sde_pytorch checkpoints (Song et al. 2021): NCSN++, DDPM++ and DDPM networks.

File: ``torch.save({'optimizer', 'model', 'ema', 'step'})`` with the model under DataParallel
('module.' keys): 'module.sigmas' (the VE ladder, a buffer) and 'module.all_modules.{i}.<name>' for the
flat module list the original builds; 'ema' = {'decay', 'num_updates', 'shadow_params': the EMA of the
trainable parameters, in parameter order}. The original learning rate is a numpy float64 (read by the
safe-load allowlist).

Mapping: module i of the original is ``model.original_order[i]`` of this toolkit's U-Net (the same
construction order), and inside a block the original's submodule names map through the block's
``ORIGINAL_NAMES`` (e.g. GroupNorm_0 -> norm0, NIN_1 -> k); parameterisations are identical.
"""
from __future__ import annotations

import math
import re

import torch

from .registry import Importer, register_importer
from .common import check_buffer, check_state_dict
from .safe_load import load_torch_file

Tensor = torch.Tensor
_KEY = re.compile(r"^all_modules\.(\d+)\.(.+)$")


def original_key_map(model: torch.nn.Module) -> dict[str, str]:
    """{original key 'all_modules.{i}.<rest>' -> this model's state-dict key} for every entry of
    ``model.state_dict()`` (ValueError when the model is not a score_sde-layout network)."""
    order = getattr(model, "original_order", None)
    if order is None:
        raise ValueError(f"config.model.name builds {type(model).__name__}, which has no score_sde "
                         f"layout; use 'ncsnpp', 'ddpmpp' or 'ddpm'")
    out = {}
    ours = set(model.state_dict())
    for i, name in enumerate(order):
        module = model.get_submodule(name)
        inverse = {local: orig for orig, local in getattr(module, "ORIGINAL_NAMES", {}).items()}
        for key in module.state_dict():
            head, dot, tail = key.partition(".")
            orig = f"all_modules.{i}.{inverse.get(head, head) if dot else head}{dot}{tail}"
            if f"{name}.{key}" in ours:
                out[orig] = f"{name}.{key}"
    return out


@register_importer
class ScoreSDEImporter(Importer):
    name = "score_sde_pytorch"

    def detect(self, path: str, obj) -> bool:
        return isinstance(obj, dict) and {"model", "ema", "step"} <= set(obj) and isinstance(obj["model"], dict)

    def load(self, path: str, config, obj=None) -> dict:
        from models.registry import get_model
        obj = load_torch_file(path) if obj is None else obj
        if not self.detect(path, obj):
            raise ValueError(f"checkpoint {path} is not a score_sde_pytorch checkpoint (expected a dict with "
                             f"'model', 'ema', 'optimizer', 'step')")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj["model"].items()}
        with torch.device("cpu"):
            model = get_model(config)
        expected = model.state_dict()
        key_map = original_key_map(model)
        unknown = [k for k in state if k != "sigmas" and k not in key_map]
        if unknown:
            raise ValueError(f"config does not match checkpoint {path}: the checkpoint has weight "
                             f"'module.{unknown[0]}' {tuple(state[unknown[0]].shape)}, which the network "
                             f"config.model builds lacks ({_layout_hint(model)})")
        mapped = {key_map[k]: v for k, v in state.items() if k != "sigmas"}
        model_sd = check_state_dict(mapped, expected, path, _layout_hint(model))
        if "sigmas" in state:
            _check_sigmas(state["sigmas"], config, path)
        ema_sd = self._ema(obj.get("ema"), state, key_map, model, model_sd, path)
        step = obj.get("step", 0)
        return {"model": model_sd, "ema": ema_sd, "step": int(step), "source": self.name}

    @staticmethod
    def _ema(ema, state: dict, key_map: dict, model, model_sd: dict, path: str) -> dict:
        """Model weights with the EMA shadow copied over the trainable parameters (original order)."""
        if ema is None:
            return {k: v.clone() for k, v in model_sd.items()}
        shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
        if not isinstance(shadow, (list, tuple)):
            raise ValueError(f"checkpoint {path}: 'ema' must hold 'shadow_params' (a list of tensors)")
        params = dict(model.named_parameters())
        trainable = [k for k in state if k in key_map and key_map[k] in params]
        if len(shadow) != len(trainable):
            raise ValueError(f"checkpoint {path}: its EMA has {len(shadow)} tensors but the network has "
                             f"{len(trainable)} trainable parameters")
        out = {k: v.clone() for k, v in model_sd.items()}
        for orig, value in zip(trainable, shadow):
            ours = key_map[orig]
            if not isinstance(value, Tensor) or tuple(value.shape) != tuple(out[ours].shape):
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"checkpoint {path}: EMA tensor for 'module.{orig}' has shape {got}, "
                                 f"expected {tuple(out[ours].shape)}")
            out[ours] = value.detach().to(out[ours].dtype).clone()
        return out


def _layout_hint(model) -> str:
    return ("check config.model.nf, ch_mult, num_res_blocks, attn_resolutions, resblock_type, progressive, "
            "progressive_input, progressive_combine, embedding_type, conditional and config.data.shape "
            "against the original config")


def _check_sigmas(sigmas: Tensor, config, path: str) -> None:
    """The original stores its VE ladder exp(linspace(log sigma_max, log sigma_min, num_scales)); for a VE
    config it must be the config's (VP networks carry the default ladder, unused)."""
    if getattr(config.training, "sde", "") != "vesde":
        return
    m = config.model
    want = torch.exp(torch.linspace(math.log(float(m.sigma_max)), math.log(float(m.sigma_min)),
                                    int(m.num_scales), dtype=torch.float64))
    check_buffer("noise ladder 'module.sigmas'", sigmas, want, path,
                 "config.model.sigma_max / sigma_min / num_scales")
