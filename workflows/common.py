"""What every workflow shares: one-line errors (exit code 2), opening the run, output folders, JSON,
figure copies, printing metrics.

A user error (``USER_ERRORS``: a bad config or option, a missing or unreadable file) and an operating-
system error (``OSError``: a read-only or full disk, a path of the wrong kind) end a workflow with one
``error:`` line (the path and the system's reason for an OSError) and exit code 2, never a traceback."""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from typing import Callable

import torch

from plotting import enlarge_png, image_grid
from scoredata import is_image
from training.checkpoint import atomic_write_text
from training.classifier import load_classifier
from training.names import sampler_tag
from training.run import TrainedRun, open_run

Tensor = torch.Tensor
#: exceptions that are the user's input going wrong (a bad config, a missing file): one ``error:`` line
USER_ERRORS = (ValueError, FileNotFoundError, KeyError)


class WorkflowError(ValueError):
    """A user error reported as one ``error:`` line (exit code 2)."""


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (a KeyError's quotes removed)."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, KeyError):
        text = text.strip("'\"")
    return " ".join(text.split())


def fail(message: str, code: int = 2) -> int:
    """Print ``error: message`` on stderr; return the exit code."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def os_error_line(e: OSError) -> str:
    """An OSError as one line naming the path: ``cannot use <path>: <reason>``."""
    where = e.filename if e.filename is not None else "a file"
    extra = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    return f"cannot use {where}{extra}: {e.strerror or one_line(e)} ({type(e).__name__})"


def cli(fn: Callable) -> Callable:
    """Report a user error (``USER_ERRORS``) or an OSError as ``error: <one line>`` on stderr, exit code 2."""
    @functools.wraps(fn)
    def wrapper(config, workdir: str, *args, **kwargs) -> int:
        try:
            return fn(config, workdir, *args, **kwargs)
        except USER_ERRORS as e:
            if isinstance(e, OSError) and e.filename is not None:   # the system's, not one of our messages
                return fail(os_error_line(e))
            return fail(one_line(e))
        except OSError as e:
            return fail(os_error_line(e))
    return wrapper


def check_num(num, default: str) -> int:
    """The ``--num`` option: an int >= 0 (0: ``default``), else a WorkflowError naming --num."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise WorkflowError(f"--num must be >= 0 (0: {default}), got {num!r}")
    return num


def open_trained(config, workdir: str, device="cpu") -> TrainedRun:
    """``training.run.open_run`` for the single-process workflows (CPU unless told otherwise)."""
    return open_run(config, workdir, device=device)


def maybe_classifier(config, workdir: str, kind: str):
    """The classifier ``kind`` of ``--mode train_classifier`` in workdir, or None when there is none."""
    try:
        return load_classifier(config, workdir, kind)
    except ValueError:
        return None


def out_dir(workdir: str, name: str) -> str:
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    return d


def write_json(path: str, obj: dict) -> str:
    """``obj`` as indented, key-sorted JSON (floats for numpy / torch scalars), written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))
    return path


def copy_figure(png: str, opts) -> str | None:
    """Copy ``png`` to ``config.controllable.figure`` when that is set."""
    dest = str(opts.figure)
    if not dest:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    shutil.copyfile(png, dest)
    return dest


def grid(path: str, images: Tensor, nrow: int, width: int = 720) -> str:
    """``plotting.image_grid`` enlarged (nearest neighbour) to about ``width`` pixels."""
    return enlarge_png(image_grid(path, images.float(), nrow=nrow), width)


def generator(config, opts, offset: int) -> torch.Generator:
    """The sampling generator of a workflow: seed config.seed + controllable.seed_offset + ``offset``."""
    return torch.Generator().manual_seed(int(config.seed) + int(opts.seed_offset) + offset)


def pc_tag(config) -> str:
    """The name part of the PC settings ``pc_kwargs`` passes on (``training.names.sampler_tag``)."""
    return sampler_tag(config, method="pc")


def pc_kwargs(config) -> dict:
    """``samplers.pc_sample`` keywords from config.sampling."""
    s = config.sampling
    return dict(predictor=str(s.predictor), corrector=str(s.corrector), snr=float(s.snr),
                n_steps=int(s.n_steps_each), probability_flow=bool(s.probability_flow),
                denoise=bool(s.noise_removal), eps=float(s.eps))


def require_images(config, what: str) -> None:
    if not is_image(config):
        raise WorkflowError(f"config.data.dataset must be an image data set for --mode {what}, got "
                            f"{config.data.dataset!r}")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v)


def print_metrics(title: str, metrics: dict, skip: tuple[str, ...] = (), fmt: bool = True) -> None:
    """``title`` and one indented ``key: value`` line per metric (sorted; with ``fmt`` floats to 4 digits)."""
    print(title)
    for k in sorted(metrics):
        if k not in skip:
            print(f"  {k}: {_fmt(metrics[k]) if fmt else metrics[k]}")
