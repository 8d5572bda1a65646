"""The importer registry: ``IMPORTERS`` (name -> :class:`Importer`) and ``register_importer``."""
from __future__ import annotations

import abc


class Importer(abc.ABC):
    """One checkpoint format. ``obj`` is the file's content read by :func:`load_torch_file` (read once
    by :func:`import_checkpoint`), or None when ``path`` is a folder."""

    name: str = ""

    @abc.abstractmethod
    def detect(self, path: str, obj) -> bool:
        """Whether ``path`` (with content ``obj``) is in this format."""

    @abc.abstractmethod
    def load(self, path: str, config, obj=None) -> dict:
        """{"model": state_dict, "ema": state_dict, "step": int, "source": name} for get_model(config);
        reads ``path`` itself when ``obj`` is None."""


IMPORTERS: dict[str, Importer] = {}


def register_importer(cls: type[Importer]) -> type[Importer]:
    """Class decorator adding an instance of ``cls`` to IMPORTERS under ``cls.name``."""
    if not cls.name or cls.name in IMPORTERS:
        raise ValueError(f"importer name {cls.name!r} is empty or already registered")
    IMPORTERS[cls.name] = cls()
    return cls
