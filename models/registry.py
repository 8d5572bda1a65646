"""Model registry (name -> factory(config) -> nn.Module) and the validated config readers the
factories share, so that every bad ``config.model.*`` / ``config.data.shape`` value stops with one
``ValueError`` naming the config key before any work is done."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from sde_lib import get_sde
from sde_lib.checks import check_choice

from .conditioning import NoiseConditioning

ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {}
_MISSING = object()


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: ``@register_model("ncsnpp")`` adds a factory ``f(config) -> nn.Module`` to MODELS."""
    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in MODELS and MODELS[name] is not factory:
            raise ValueError(f"name {name!r} is already registered in MODELS")
        MODELS[name] = factory
        return factory
    return wrap


def get_model(config) -> nn.Module:
    """Build the network named by ``config.model.name`` (one of MODELS) for ``config.data.shape``.

    The network's ``forward(x, cond)`` takes x [B, *config.data.shape] and cond [B] =
    ``sde.model_label(t, continuous)`` of the SDE named by ``config.training.sde``.
    """
    name = option(config, "name")
    check_choice("config.model.name", name, MODELS)
    return MODELS[name](config)


# ------------------------------------------------------------------------------ config readers
def option(config, key: str, default=_MISSING):
    """``config.model.<key>``, or ``default`` when absent (ValueError when absent and no default)."""
    model = getattr(config, "model", None)
    value = getattr(model, key, _MISSING) if model is not None else _MISSING
    if value is _MISSING:
        if default is _MISSING:
            raise ValueError(f"config.model.{key} must be set")
        return default
    return value


def int_option(config, key: str, default=_MISSING, minimum: int = 1) -> int:
    """A config.model int >= ``minimum``."""
    value = option(config, key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"config.model.{key} must be an int >= {minimum}, got {value!r}")
    return int(value)


def float_option(config, key: str, default=_MISSING, low: float = 0., high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite config.model number in the interval [low, high] (open ends when asked)."""
    value = option(config, key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"config.model.{key} must be a finite number in {interval}, got {value!r}")
    return float(value)


def bool_option(config, key: str, default=_MISSING) -> bool:
    value = option(config, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"config.model.{key} must be True or False, got {value!r}")
    return value


def ints_option(config, key: str, default=_MISSING, allow_empty: bool = False) -> tuple[int, ...]:
    """A config.model tuple/list of positive ints (non-empty unless ``allow_empty``)."""
    value = option(config, key, default)
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if out is None or (not out and not allow_empty) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out):
        kind = "a (possibly empty) tuple" if allow_empty else "a non-empty tuple"
        raise ValueError(f"config.model.{key} must be {kind} of positive ints, got {value!r}")
    return tuple(int(v) for v in out)


def choice_option(config, key: str, choices, default=_MISSING) -> str:
    value = option(config, key, default)
    check_choice(f"config.model.{key}", value, choices)
    return value


def data_shape(config) -> tuple[int, ...]:
    """``config.data.shape``: a non-empty tuple of positive ints (the per-sample shape)."""
    value = getattr(getattr(config, "data", None), "shape", None)
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"config.data.shape must be a non-empty tuple of positive ints "
                         f"(e.g. (2,) or (1, 8, 8)), got {value!r}")
    return tuple(int(s) for s in shape)


def image_shape(config) -> tuple[int, int, int]:
    """``config.data.shape`` as (C, H, W), for the convolutional networks."""
    shape = data_shape(config)
    if len(shape) != 3:
        raise ValueError(f"config.data.shape must be (C, H, W) for config.model.name="
                         f"{option(config, 'name')!r} (a convolutional network), got {shape}; "
                         f"use config.model.name='mlp' for vector data")
    return shape  # type: ignore[return-value]


def noise_conditioning(config) -> NoiseConditioning:
    """What ``cond`` means for the SDE of ``config.training.sde`` (``sde.model_label``): sigma(t) for a
    continuous VE SDE, the ladder index (0 = sigma_max) for a discrete one, time labels for VP / sub-VP.
    The VE ladder's ends sigma(0), sigma(T) are stored so that an index maps to its noise level."""
    with torch.device("cpu"):            # also when the model is built under torch.device("meta")
        sde = get_sde(config)
    continuous = getattr(getattr(config, "training", None), "continuous", True)
    if not isinstance(continuous, bool):
        raise ValueError(f"config.training.continuous must be True or False, got {continuous!r}")
    if sde.score_parameterization == "score":
        ends = sde.noise_level(torch.tensor([0., sde.T], dtype=torch.float64, device="cpu"))
        lo, hi = (math.log(float(v)) for v in ends)
        return NoiseConditioning("sigma" if continuous else "ve_index", sde.N, lo, hi)
    return NoiseConditioning("label", sde.N, label_scale=float(sde.model_label_scale(continuous)))


def data_centered(config) -> bool:
    """``config.data.centered``: data in [-1, 1] (True) or [0, 1] (False; the score_sde / NCSNv2 image
    networks then map x -> 2x - 1 themselves)."""
    value = getattr(getattr(config, "data", None), "centered", False)
    if not isinstance(value, bool):
        raise ValueError(f"config.data.centered must be True or False, got {value!r}")
    return value


def floats_option(config, key: str, default=_MISSING) -> tuple[float, ...]:
    """A config.model non-empty tuple/list of finite numbers."""
    value = option(config, key, default)
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                      for v in out):
        raise ValueError(f"config.model.{key} must be a non-empty tuple of finite numbers, got {value!r}")
    return tuple(float(v) for v in out)


def scale_by_sigma_option(config, spec: NoiseConditioning) -> bool:
    """``config.model.scale_by_sigma`` (output / sigma); only meaningful when cond is sigma (VE)."""
    value = bool_option(config, "scale_by_sigma", False)
    if value and not spec.is_ve:
        raise ValueError(f"config.model.scale_by_sigma=True needs a VE SDE (the network input cond is "
                         f"then sigma); config.training.sde={config.training.sde!r} passes time labels")
    return value
