"""Safe reading of checkpoint files written by other code bases.

Only ``torch.load(..., weights_only=True)`` is used (never plain pickle). The original score_sde_pytorch
checkpoints store the optimizer's learning rate as a numpy float64 scalar, which the weights-only
unpickler refuses by default; the smallest allowlist that reads them is numpy's scalar reconstructor,
``numpy.dtype`` and the float dtype classes (under both numpy 1.x and 2.x module paths). Anything else
(a numpy array, an arbitrary class) is refused with a ValueError that names the file and the global.
"""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import torch

try:                                   # numpy >= 2
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:                    # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import scalar as _np_scalar


def _allowlist() -> list:
    """(object, pickled name) pairs: the numpy scalar reconstructor and the dtypes it needs."""
    pairs = [(_np_scalar, "numpy._core.multiarray.scalar"), (_np_scalar, "numpy.core.multiarray.scalar"),
             (np.dtype, "numpy.dtype")]
    for name in ("Float64DType", "Float32DType"):
        cls = getattr(getattr(np, "dtypes", None), name, None)
        if cls is not None:
            pairs.append((cls, f"numpy.dtypes.{name}"))
    return pairs


ALLOWED_GLOBALS = tuple(name for _, name in _allowlist())


def load_torch_file(path: str, what: str = "checkpoint"):
    """``torch.load(path, map_location="cpu", weights_only=True)`` with the numpy-scalar allowlist.

    Raises FileNotFoundError for a missing path and ValueError, naming ``path``, for a damaged or
    truncated file, a file of another format, or a global outside the allowlist.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path} is a directory, expected a .pth file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{what} {path} is empty (0 bytes)")
    return _read(path, what)


def _read(path: str, what: str):
    try:
        with torch.serialization.safe_globals(list(_allowlist())):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = " ".join(str(e).split())
        if "Unsupported global" in text or "not an allowed global" in text:
            glob = text.split("GLOBAL", 1)[-1].split(" was not")[0].strip() if "GLOBAL" in text else "?"
            raise ValueError(f"{what} {path} contains the object {glob}, which is outside the safe-load "
                             f"allowlist {list(ALLOWED_GLOBALS)}; refusing to unpickle it (only "
                             f"tensors, containers and numpy scalars are read)") from None
        raise ValueError(f"{what} {path} is damaged or not a torch checkpoint: {text[:200]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, ValueError, AttributeError,
            TypeError, IndexError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{what} {path} is damaged, truncated or not a torch checkpoint "
                         f"({type(e).__name__}: {text[:200]})") from None
