"""Atomic, self-pruning training checkpoints that load with ``torch.load(weights_only=True)``.

Layout of ``<workdir>/checkpoints``:

* ``ckpt_<step>.pth``   periodic checkpoints (every ``snapshot_freq`` steps), the newest ``keep`` kept;
* ``resume_<step>.pth`` the frequent preemption checkpoint (every ``snapshot_freq_for_preemption``
  steps); only the newest one is kept, and it is removed once a newer periodic checkpoint exists.

Every file is written to a temporary file in the same directory, flushed, ``fsync``-ed and moved into
place with ``os.replace``, so a crash never leaves a partially written checkpoint under a final name
(a process killed mid-write leaves its ``.<name>.<random>.tmp``, which ``remove_temporary_files``
clears when the next trainer takes the directory). Each file carries a BLAKE2b digest of its content,
checked on load. Loading walks the candidates newest first and skips unreadable or damaged files with
a warning, so a truncated (or otherwise corrupted) latest checkpoint falls back to the previous good one.

Unreadable files are never counted as checkpoints and never deleted: pruning keeps the newest ``keep``
*readable* periodic files (a file the manager did not write or load itself is verified by loading it
before it is counted), so damaged files at higher steps cannot get new checkpoints pruned. A directory
whose files are all unreadable is a run that cannot be continued: ``training.train`` refuses it.

A checkpoint is a plain dict of tensors, ints, floats, strings, lists and dicts (``capture_state``):
model, EMA, optimizer, step and the RNG states (torch CPU RNG, named ``torch.Generator`` states as
uint8 tensors, the CUDA RNG when CUDA is initialised).

Every reader of a run goes through ``read_latest_checkpoint(workdir)`` (the newest readable file of
``checkpoint_dir(workdir)``); every writer through ``CheckpointManager.save``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Mapping

import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(ckpt|resume)_(\d+)\.pth$")
_TEMPORARY = re.compile(r"^\.(ckpt|resume)_\d+\.pth\..+\.tmp$")   # ``_atomic_write``'s temporary names
FORMAT_VERSION = 1


def checkpoint_dir(workdir: str) -> str:
    """Where a run keeps its checkpoints: ``<workdir>/checkpoints``."""
    return os.path.join(workdir, "checkpoints")


# ----------------------------------------------------------------------------- file level
def _fsync_dir(directory: str) -> None:
    """Make a rename durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, mode: str, write) -> None:
    """Call ``write(file)`` on a temp file in ``path``'s directory, fsync it, then os.replace it onto
    ``path`` (and fsync the directory): readers see the old file or the whole new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def remove_temporary_files(directory: str, pattern: "re.Pattern[str]") -> list[str]:
    """Delete the temporary files ``_atomic_write`` left in ``directory`` (names matching ``pattern``)
    when a process died mid-write; returns their paths. Call it only while no other process writes there
    (the trainer holds the workdir lock, ``training.workdir``)."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if pattern.match(name):
            path = os.path.join(directory, name)
            _remove(path)
            removed.append(path)
    return removed


def temporary_pattern(basename: str) -> "re.Pattern[str]":
    """The names ``_atomic_write`` uses for a temporary copy of ``basename``."""
    return re.compile(r"^\." + re.escape(basename) + r"\..+\.tmp$")


def atomic_save(obj, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically (``_atomic_write``)."""
    _atomic_write(path, "wb", lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    """Write a text file atomically (``_atomic_write``)."""
    _atomic_write(path, "w", lambda f: f.write(text))


def content_digest(obj) -> str:
    """BLAKE2b digest of a nested state (keys, tensor dtypes/shapes/bytes, scalars), order-independent
    of dict insertion order. Detects damage that still unpickles (flipped bytes inside tensor data)."""
    h = hashlib.blake2b(digest_size=16)

    def feed(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, Mapping):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(repr(k).encode())
                feed(o[k])
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for v in o:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(o).encode())

    feed(obj)
    return h.hexdigest()


def save_file(state: dict, path: str) -> None:
    """Atomically save a checkpoint ``state`` with its content digest."""
    body = {k: v for k, v in state.items() if k != "digest"}
    atomic_save({**body, "digest": content_digest(body)}, path)


def load_file(path: str, map_location="cpu") -> dict:
    """Load one checkpoint file with ``weights_only=True`` (no arbitrary code is unpickled) and
    verify its content digest. Raises on an unreadable or damaged file."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path} is not a training checkpoint (no 'step' entry)")
    digest = state.pop("digest", None)
    if digest is not None and digest != content_digest(state):
        raise ValueError(f"{path} is damaged (content digest mismatch)")
    return state


# ----------------------------------------------------------------------------- state dicts
def _cpu(obj):
    """Detach tensors to CPU, recursively (so a checkpoint loads on any device)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def capture_state(step: int, model: torch.nn.Module, ema=None, optimizer=None,
                  generators: Mapping[str, torch.Generator] | None = None, extra: dict | None = None,
                  config=None) -> dict:
    """Everything needed to continue training bitwise-identically from ``step``, and the ``config`` the
    run uses (``training.run_config.config_record``; checked by every later use of the checkpoint)."""
    state = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "model": _cpu(model.state_dict()),
        "rng": {
            "torch": torch.get_rng_state(),
            "generators": {name: g.get_state().cpu() for name, g in (generators or {}).items()},
        },
    }
    if ema is not None:
        state["ema"] = _cpu(ema.state_dict())
    if optimizer is not None:
        state["optimizer"] = _cpu(optimizer.state_dict())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["rng"]["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    if extra:
        state["extra"] = dict(extra)
    if config is not None:
        from .run_config import config_record
        state["config"] = config_record(config)
    return state


def restore_state(state: dict, model: torch.nn.Module, ema=None, optimizer=None,
                  generators: Mapping[str, torch.Generator] | None = None, restore_rng: bool = True) -> int:
    """Load ``state`` (from ``capture_state``) into the given objects in place; returns the step.

    Raises ValueError when the checkpoint was written for a different model (e.g. another config.model).
    """
    try:
        model.load_state_dict(state["model"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = " ".join(str(e).split("\n")[:2]).strip()
        raise ValueError(f"the checkpoint (step {state.get('step')}) does not match the model built from "
                         f"config.model: {first}") from None
    if restore_rng:
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        for name, g in (generators or {}).items():
            if name in rng.get("generators", {}):
                g.set_state(rng["generators"][name].to(torch.uint8).cpu())
        if "cuda" in rng and torch.cuda.is_available():
            states = rng["cuda"]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
    return int(state["step"])


# ----------------------------------------------------------------------------- manager
class CheckpointManager:
    """Periodic (keep the last ``keep`` readable ones) and resume checkpoints in ``directory``;
    newest-valid loading. It remembers which files it found readable (wrote, loaded or verified) and
    which unreadable; unreadable files are skipped by loading and by pruning, and never deleted."""

    def __init__(self, directory: str, keep: int = 3):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive int, got {keep!r}")
        self.directory = directory
        self.keep = keep
        self._readable: dict[str, bool] = {}

    # ------------------------------------------------------------------ listing
    def list(self, kind: str | None = None) -> list[tuple[int, str, str]]:
        """(step, kind, path) of the checkpoints on disk, newest first (periodic before resume at a tie)."""
        if not os.path.isdir(self.directory):
            return []
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m and (kind is None or m.group(1) == kind):
                out.append((int(m.group(2)), m.group(1), os.path.join(self.directory, name)))
        out.sort(key=lambda e: (e[0], e[1] == "ckpt"), reverse=True)
        return out

    def path(self, step: int, kind: str = "ckpt") -> str:
        return os.path.join(self.directory, f"{kind}_{int(step):09d}.pth")

    def is_readable(self, path: str) -> bool:
        """Whether ``path`` loads (``load_file``); remembered, so each file is loaded at most once."""
        if path not in self._readable:
            try:
                load_file(path)
                self._readable[path] = True
            except Exception:
                self._readable[path] = False
        return self._readable[path]

    def readable_steps(self, kind: str = "ckpt") -> list[int]:
        """Steps of the readable ``kind`` files, newest first (verifying files not seen yet)."""
        return [step for step, _, p in self.list(kind) if self.is_readable(p)]

    def unreadable(self) -> list[str]:
        """Paths of the files found unreadable so far (by ``load_latest``, pruning or ``is_readable``)."""
        return [p for _, _, p in self.list() if self._readable.get(p) is False]

    def remove_temporary_files(self) -> list[str]:
        """Delete temporary files of interrupted writes (see ``remove_temporary_files``)."""
        return remove_temporary_files(self.directory, _TEMPORARY)

    # ------------------------------------------------------------------ writing
    def save(self, state: dict, kind: str = "ckpt") -> str:
        """Write ``state`` as a periodic (``ckpt``) or ``resume`` checkpoint, then prune old files."""
        if kind not in ("ckpt", "resume"):
            raise ValueError(f"kind must be 'ckpt' or 'resume', got {kind!r}")
        step = int(state["step"])
        path = self.path(step, kind)
        save_file(state, path)
        self._readable[path] = True
        self._prune(step)
        return path

    def _prune(self, newest_step: int) -> None:
        """Keep the newest ``keep`` readable periodic files and delete older periodic files; drop resume
        files older than the checkpoint just written. Files known to be unreadable are left alone: they
        neither count nor get deleted."""
        readable = 0
        for _, _, p in self.list("ckpt"):
            if readable >= self.keep:
                if self._readable.get(p) is not False:
                    self._forget(p)
            elif self.is_readable(p):
                readable += 1
        for step, _, p in self.list("resume"):
            if step < newest_step and self._readable.get(p) is not False:
                self._forget(p)

    def _forget(self, path: str) -> None:
        _remove(path)
        self._readable.pop(path, None)

    # ------------------------------------------------------------------ reading
    def latest_step(self) -> int | None:
        entries = self.list()
        return entries[0][0] if entries else None

    def load_latest(self, map_location="cpu") -> tuple[dict, str] | None:
        """The newest checkpoint that loads, as (state, path); unreadable ones are skipped with a
        warning (and remembered, see ``unreadable``). None when there is no readable checkpoint."""
        for _, _, path in self.list():
            try:
                state = load_file(path, map_location=map_location)
            except Exception as e:  # truncated zip, bad pickle, wrong content ...
                self._readable[path] = False
                log.warning("checkpoint %s is unreadable (%s: %s); falling back to the previous one",
                            path, type(e).__name__, e)
                continue
            self._readable[path] = True
            return state, path
        return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------- reading a run
@dataclass(frozen=True)
class LoadedCheckpoint:
    """The newest readable checkpoint of a run: its state dict (``capture_state``), path and step."""
    state: dict
    path: str
    step: int


def read_latest_checkpoint(workdir: str, map_location="cpu") -> LoadedCheckpoint:
    """The newest readable checkpoint in ``checkpoint_dir(workdir)`` (damaged files are skipped with a
    warning). Raises FileNotFoundError "no checkpoint in ..." when there is none on disk and "no readable
    checkpoint in ..." when none of them loads. Every mode that uses a trained run reads it here."""
    mgr = CheckpointManager(checkpoint_dir(workdir), keep=1)
    if not mgr.list():
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}; train first with --mode train "
                                f"--workdir {workdir}")
    loaded = mgr.load_latest(map_location=map_location)
    if loaded is None:
        raise FileNotFoundError(f"no readable checkpoint in {checkpoint_dir(workdir)}; train first "
                                f"(--mode train --workdir {workdir})")
    state, path = loaded
    return LoadedCheckpoint(state=state, path=path, step=int(state["step"]))
