"""Checkpoint importers: files written by the original code bases -> this toolkit's state dicts.

    out = import_checkpoint(path, config, source="auto")
    model = get_model(config); model.load_state_dict(out["ema"])     # EMA weights, as the originals sample

Each importer (registry ``IMPORTERS``: name -> :class:`Importer`) reads one format with safe loading
only (``weights_only=True`` with a minimal allowlist, safetensors for diffusers), maps the keys onto
``get_model(config)``'s and checks every weight against the network the config builds, so that a
config that does not match the file stops with a ValueError naming the first differing key or weight.
"""
from __future__ import annotations

import os

from .registry import IMPORTERS, Importer, register_importer
from .safe_load import ALLOWED_GLOBALS, load_torch_file


def read_checkpoint(path: str):
    """The content of a checkpoint file (safe loading), or None for a folder (diffusers)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return None if os.path.isdir(path) else load_torch_file(path)


def detect_source(path: str, obj=None) -> str:
    """The name of the importer that recognises ``path`` (ValueError when none does)."""
    if obj is None and not os.path.isdir(path):
        obj = read_checkpoint(path)
    for name, importer in IMPORTERS.items():
        if importer.detect(path, obj):
            return name
    raise ValueError(f"checkpoint {path} is not in a known format; source must be one of "
                     f"{sorted(IMPORTERS)} (score_sde_pytorch .pth, ermongroup/ncsnv2 .pth, or a "
                     f"diffusers folder with config.json + safetensors)")


def import_checkpoint(path: str, config, source: str = "auto") -> dict:
    """Read a checkpoint of the original code and return this toolkit's weights for get_model(config).

    ``source``: "score_sde_pytorch", "ncsnv2", "diffusers" or "auto" (told apart by content). Returns
    {"model": state_dict, "ema": state_dict of the EMA weights (equal to "model" when the file has
    none), "step": int, "source": str}. Raises ValueError naming the first config key or weight that
    differs, and for damaged files or unknown formats (nothing is half-loaded: the result is built
    completely before it is returned).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file or folder path, got {type(path).__name__}")
    path = os.fspath(path)
    if source != "auto" and source not in IMPORTERS:
        raise ValueError(f"source must be 'auto' or one of {sorted(IMPORTERS)}, got {source!r}")
    obj = read_checkpoint(path)
    if source == "auto":
        source = detect_source(path, obj)
    elif not IMPORTERS[source].detect(path, obj):
        raise ValueError(f"checkpoint {path} is not a {source} checkpoint (its content does not have "
                         f"that format); use source='auto' or the right source")
    return IMPORTERS[source].load(path, config, obj)


__all__ = ["IMPORTERS", "Importer", "register_importer", "import_checkpoint", "detect_source",
           "read_checkpoint", "load_torch_file", "ALLOWED_GLOBALS"]

from . import diffusers, ncsnv2, score_sde  # noqa: E402,F401  (register the importers)
