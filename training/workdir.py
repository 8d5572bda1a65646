"""A training run's workdir: checked before any work, and locked against a second trainer.

* ``check_workdir(workdir)``: ValueError when ``workdir`` (or a folder above it) is a file, or when it
  cannot be written: the message names the first path that failed (creating a folder, or a probe
  file in it) and the system's reason, so a read-only or full disk is one line, not a traceback.
* ``WorkdirLock(workdir)``: ``<workdir>/train.lock``, an exclusive ``fcntl.flock`` held while training.
  A second trainer on the same workdir refuses with the holder's pid and host (read from the file).
  The kernel drops a flock when its process dies, also on SIGKILL, so a lock file left by a dead
  trainer never blocks: the next trainer simply takes it. On release the file is removed. Where
  ``fcntl`` is missing (Windows) the file is created with O_EXCL and taken over when its pid is gone.
"""
from __future__ import annotations

import os
import socket
import tempfile

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

LOCK_NAME = "train.lock"
#: folders of a workdir that training writes into
TRAIN_FOLDERS = ("checkpoints", "samples", "tensorboard")


def _first_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _unwritable(workdir, where: str, e: OSError) -> ValueError:
    return ValueError(f"workdir {str(workdir)!r}: cannot write {where} ({e.strerror or e}); use a writable --workdir")


def check_workdir(workdir: str, folders=TRAIN_FOLDERS) -> None:
    """Create ``workdir`` and its ``folders`` and write a probe file in each; ValueError naming the first
    path that fails. A workdir that is a file (or lies under one) is refused the same way."""
    if not str(workdir):
        raise ValueError("workdir must be a folder path, got ''")
    path = os.path.abspath(str(workdir))
    existing = _first_existing(path)
    if not os.path.isdir(existing):
        raise ValueError(f"workdir {str(workdir)!r}: {existing} is a file, not a folder; use another --workdir")
    for d in (path, *(os.path.join(path, f) for f in folders)):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise _unwritable(workdir, e.filename or d, e) from None
        try:
            fd, probe = tempfile.mkstemp(prefix=".write_probe.", dir=d)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise _unwritable(workdir, d, e) from None
    log_csv = os.path.join(path, "log.csv")
    if os.path.exists(log_csv):
        try:
            with open(log_csv, "a"):
                pass
        except OSError as e:
            raise _unwritable(workdir, log_csv, e) from None


def _describe(path: str) -> str:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    """Exclusive lock of a workdir for one trainer (see the module docstring); a context manager."""

    def __init__(self, workdir: str):
        self.path = os.path.join(str(workdir), LOCK_NAME)
        self._fd: int | None = None

    def _refuse(self, holder: str) -> ValueError:
        return ValueError(f"another trainer ({holder}) holds {self.path}; two trainers on one workdir would "
                          f"overwrite each other's checkpoints. Wait for it to finish or use another --workdir")

    def acquire(self) -> "WorkdirLock":
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        me = f"pid {os.getpid()} on {socket.gethostname()}"
        if fcntl is None:  # pragma: no cover
            return self._acquire_exclusive(me)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refuse(_describe(self.path)) from None
            try:   # the holder before us may have removed the file after we opened it: lock the live one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, me.encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def _acquire_exclusive(self, me: str) -> "WorkdirLock":  # pragma: no cover (no fcntl)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _describe(self.path)
                parts = holder.split()
                if len(parts) >= 2 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                    os.remove(self.path)          # stale: its process is gone
                    continue
                raise self._refuse(holder) from None
            os.write(fd, me.encode())
            self._fd = fd
            return self
        raise self._refuse(_describe(self.path))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)   # removed while still locked: no other trainer can hold this inode
        except OSError:
            pass
        os.close(self._fd)         # closing drops the flock
        self._fd = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
