"""ermongroup/ncsnv2 checkpoints (Song & Ermon 2020): NCSNv2, NCSNv2Deeper, NCSNv2Deepest.

File (``runners/ncsn_runner.py``): ``torch.save([score.state_dict(), optimizer.state_dict(), epoch,
step, ema_helper.state_dict()])`` in torch's legacy (non-zip) format, the last entry only when the
config has model.ema. The model is under DataParallel: keys 'module.<name>', including the buffer
'module.sigmas' (the float32 noise ladder); the EMA entry is ``EMAHelper.shadow``, a dict
'<name>' (no 'module.' prefix) -> tensor for every trainable parameter.

Mapping: this toolkit's NCSNv2 networks (:mod:`models.ncsnv2`) use the original's parameter names, so
a key maps by dropping 'module.'; 'sigmas' is not a weight here (the ladder comes from the SDE) and is
checked against config.model.sigma_max / sigma_min / num_scales instead. The EMA weights are the model
weights with the shadow copied over the parameters, as ``EMAHelper.ema`` does before the authors sample.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from .registry import Importer, register_importer
from .common import check_buffer, check_state_dict
from .safe_load import load_torch_file

Tensor = torch.Tensor
_PREFIX = "module."
#: which network a state dict holds, by the stages only it has (checked deepest first)
_LAYOUT_KEYS = (("res31.0.conv1.weight", "ncsnv2_deepest", "NCSNv2Deepest"),
                ("res5.0.conv1.weight", "ncsnv2_deeper", "NCSNv2Deeper"),
                ("res4.0.conv1.weight", "ncsnv2", "NCSNv2"))


def _strip(state: Mapping) -> dict:
    """Keys without the DataParallel prefix (a file saved without DataParallel has none)."""
    return {(k[len(_PREFIX):] if isinstance(k, str) and k.startswith(_PREFIX) else k): v for k, v in state.items()}


def _is_state_dict(value) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(isinstance(k, str) for k in value)


def file_layout(state: Mapping) -> tuple[str, str] | None:
    """(toolkit model name, original class name) of the network a (prefix-free) state dict holds."""
    for key, name, cls in _LAYOUT_KEYS:
        if key in state:
            return name, cls
    return None


def _check_tensors(state: Mapping, path: str, what: str) -> None:
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"checkpoint {path}: {what} entry {key!r} is a {type(value).__name__}, "
                             f"expected a tensor (damaged or not an ermongroup/ncsnv2 checkpoint)")


@register_importer
class NCSNv2Importer(Importer):
    name = "ncsnv2"

    def detect(self, path: str, obj) -> bool:
        """A list [state_dict with begin_conv / res* weights, optimizer dict, epoch, step(, ema dict)]."""
        if not isinstance(obj, (list, tuple)) or len(obj) not in (4, 5) or not _is_state_dict(obj[0]):
            return False
        if not isinstance(obj[1], Mapping) or any(isinstance(v, bool) or not isinstance(v, int) for v in obj[2:4]):
            return False
        state = _strip(obj[0])
        return "begin_conv.weight" in state and file_layout(state) is not None

    def load(self, path: str, config, obj=None) -> dict:
        from models.ncsnv2 import ALIASES, LAYOUTS
        from models.registry import get_model
        obj = load_torch_file(path) if obj is None else obj
        if not self.detect(path, obj):
            raise ValueError(f"checkpoint {path} is not an ermongroup/ncsnv2 checkpoint (expected a list "
                             f"[model state_dict with 'module.begin_conv.weight', optimizer state_dict, epoch, "
                             f"step, ema shadow], got {_describe(obj)})")
        state = _strip(obj[0])
        _check_tensors(state, path, "model state_dict")
        layout, cls = file_layout(state)
        name = getattr(getattr(config, "model", None), "name", None)
        ours = ALIASES.get(name, name)
        if ours not in LAYOUTS:
            raise ValueError(f"config.model.name={name!r} cannot hold checkpoint {path}, an ermongroup/ncsnv2 "
                             f"{cls}; use config.model.name={layout!r} (configs.from_ncsnv2 of its config.yml)")
        if ours != layout:
            raise ValueError(f"config does not match checkpoint {path}: config.model.name={name!r} builds "
                             f"another network than the checkpoint's {cls} (its stages are "
                             f"{_stages(state)}); use config.model.name={layout!r}")
        hint = (f"the checkpoint holds an {cls} (config.model.name={layout!r}); check config.model.nf "
                f"(= ngf), normalization and config.data.shape (channels) against the original config")
        sigmas = state.pop("sigmas", None)
        with torch.device("cpu"):
            model = get_model(config)
        model_sd = check_state_dict(state, model.state_dict(), path, hint)
        if sigmas is not None:
            _check_sigmas(sigmas, config, path)
        ema_sd = self._ema(obj[4] if len(obj) == 5 else None, model, model_sd, path)
        return {"model": model_sd, "ema": ema_sd, "step": int(obj[3]), "source": self.name}

    @staticmethod
    def _ema(shadow, model, model_sd: dict, path: str) -> dict:
        """model_sd with the EMA shadow copied over every trainable parameter (EMAHelper.ema)."""
        out = {k: v.clone() for k, v in model_sd.items()}
        if shadow is None:
            return out
        if not isinstance(shadow, Mapping):
            raise ValueError(f"checkpoint {path}: its EMA entry (item 4) must be a dict name -> tensor, got "
                             f"{type(shadow).__name__}")
        shadow = _strip(shadow)
        _check_tensors(shadow, path, "EMA")
        params = [k for k, p in model.named_parameters() if p.requires_grad]
        for key in params:
            if key not in shadow:
                raise ValueError(f"checkpoint {path}: its EMA lacks parameter {key!r} of the network the config "
                                 f"builds")
            if tuple(shadow[key].shape) != tuple(out[key].shape):
                raise ValueError(f"checkpoint {path}: EMA tensor {key!r} has shape {tuple(shadow[key].shape)}, "
                                 f"expected {tuple(out[key].shape)}")
        extra = [k for k in shadow if k not in params]
        if extra:
            raise ValueError(f"checkpoint {path}: its EMA has tensor {extra[0]!r}, which is not a trainable "
                             f"parameter of the network the config builds")
        for key in params:
            out[key] = shadow[key].detach().to(out[key].dtype).clone()
        return out


def _stages(state: Mapping) -> str:
    return ", ".join(dict.fromkeys(k.split(".")[0] for k in state if k.startswith("res")))


def _describe(obj) -> str:
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items ({', '.join(type(v).__name__ for v in obj[:5])})"
    if isinstance(obj, Mapping):
        return f"a dict with keys {sorted(map(str, obj))[:6]}"
    return f"a {type(obj).__name__}"


def _check_sigmas(sigmas, config, path: str) -> None:
    """The file's ladder exp(linspace(log sigma_begin, log sigma_end, num_classes)) must be the config's."""
    if not isinstance(sigmas, Tensor):
        raise ValueError(f"checkpoint {path}: 'module.sigmas' is a {type(sigmas).__name__}, expected a tensor")
    m = config.model
    want = torch.exp(torch.linspace(math.log(float(m.sigma_max)), math.log(float(m.sigma_min)),
                                    int(m.num_scales), dtype=torch.float64))
    check_buffer("noise ladder 'module.sigmas'", sigmas, want, path,
                 "config.model.sigma_max / sigma_min / num_scales (= sigma_begin / sigma_end / num_classes)")
