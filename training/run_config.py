"""The config a checkpoint was made with, recorded in the checkpoint and checked on every later use.

``config_record(config)`` is the config as plain values (safe for ``torch.load(weights_only=True)``);
``check_recorded(state, config, path)`` refuses a config that would give another function than the one
the weights were trained for: another SDE (training.sde, .continuous, the noise schedule), another
network (every config.model key except the training-only ema_rate and dropout) or another data shape or
range (data.shape, data.centered). The error names the first differing key. A checkpoint written before
configs were recorded is used as it is (nothing to compare against).
"""
from __future__ import annotations

from typing import Any, Mapping

#: config.model keys that change training but not the function the weights compute
TRAINING_ONLY = frozenset({"ema_rate", "dropout"})
COMPARED = (("training", ("sde", "continuous")), ("data", ("shape", "centered")))


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_record(config) -> dict:
    """The whole config as nested dicts / lists / scalars."""
    return _plain(config)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def differences(recorded: Mapping, config) -> list[tuple[str, Any, Any]]:
    """(dotted key, recorded value, config value) for every compared key that differs."""
    current = config_record(config)
    out = []
    sections = list(COMPARED) + [("model", tuple(sorted(set(recorded.get("model", {})) |
                                                         set(current.get("model", {})))))]
    for section, keys in sections:
        rec, cur = recorded.get(section, {}) or {}, current.get(section, {}) or {}
        for key in keys:
            if section == "model" and key in TRAINING_ONLY:
                continue
            if key in rec and key in cur and not _same(rec[key], cur[key]):
                out.append((f"{section}.{key}", rec[key], cur[key]))
    return out


def check_recorded(state: Mapping, config, path: str) -> None:
    """ValueError naming the first key in which ``config`` differs from the config recorded in ``state``."""
    recorded = state.get("config") if isinstance(state, Mapping) else None
    if not isinstance(recorded, Mapping):
        return
    diff = differences(recorded, config)
    if diff:
        key, was, now = diff[0]
        more = f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""
        raise ValueError(f"config.{key} is {now!r} but {path} was made with config.{key} = {was!r}{more}; use the "
                         f"config the run was trained with (a different SDE, network or data shape gives a "
                         f"wrong model), or another --workdir")
