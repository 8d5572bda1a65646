"""Shared helpers for benchmark scripts: CLI flags, timing, JSON lines and Markdown tables.

Every benchmark prints one JSON object per workload (``emit``) and then Markdown tables
(``print_table``) of the same records.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable, Iterable, Sequence

import torch

# make the repository importable when a script is run as ``python benchmarks/<name>.py``
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def base_parser(description: str) -> argparse.ArgumentParser:
    """Parser with the common flags: --threads (default 1), --quick, --json-out, --device."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--quick", action="store_true", help="small fast smoke run")
    p.add_argument("--json-out", default=None, help="also write all records to this JSON file")
    p.add_argument("--device", default="cpu", help="torch device for the workloads (default cpu)")
    return p


def setup(args) -> None:
    """Apply --threads."""
    if args.threads < 1:
        raise ValueError(f"threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)


def sync(device) -> None:
    """Wait for queued kernels on an accelerator so that wall-clock timings are honest."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def best_time(fn: Callable[[], object], number: int = 10, repeat: int = 5, warmup: int = 2,
              device="cpu", clock: Callable[[], float] = time.perf_counter) -> float:
    """Best (minimum over ``repeat`` rounds) mean seconds per call of ``fn`` over ``number`` calls.

    The minimum is the least noisy estimate on a shared machine. ``clock`` may be
    ``time.process_time`` (CPU seconds of this process: insensitive to other processes on a loaded
    machine; equals wall time for single-threaded CPU work).
    """
    for _ in range(warmup):
        fn()
    sync(device)
    best = math.inf
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn()
        sync(device)
        best = min(best, (clock() - t0) / number)
    return best


class Stopwatch:
    """``with Stopwatch() as sw: ...``; then ``sw.seconds`` (wall) and ``sw.cpu_seconds`` (process CPU)."""

    def __init__(self, device="cpu"):
        self.device = device
        self.seconds = self.cpu_seconds = float("nan")

    def __enter__(self):
        sync(self.device)
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._c0
        return False


def _clean(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return float(f"{v:.6g}")
    if isinstance(v, (list, tuple)):
        return [_clean(u) for u in v]
    if isinstance(v, dict):
        return {k: _clean(u) for k, u in v.items()}
    return v


def emit(record: dict, records: list | None = None, stream=None) -> dict:
    """Print ``record`` as one JSON line (floats to 6 significant digits) and append it to ``records``."""
    rec = _clean(record)
    print(json.dumps(rec), file=stream or sys.stdout, flush=True)
    if records is not None:
        records.append(rec)
    return rec


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v).replace("|", "\\|")


def markdown_table(rows: Sequence[dict], columns: Iterable[str] | None = None) -> str:
    """A GitHub Markdown table; ``columns`` default to the union of keys in order of appearance."""
    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def print_table(rows: Sequence[dict], columns: Iterable[str] | None = None, title: str | None = None,
                stream=None) -> None:
    """Print a Markdown table (with an optional ``### title``) of the rows that have any of ``columns``."""
    out = stream or sys.stdout
    if columns is not None:
        columns = list(columns)
        rows = [r for r in rows if any(c in r for c in columns if c != "workload")]
    if not rows:
        return
    if title:
        print(f"\n### {title}\n", file=out)
    print(markdown_table(rows, columns), file=out, flush=True)


def write_json(path: str | None, records: list) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)
