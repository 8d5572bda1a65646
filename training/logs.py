"""The training run's logs: ``log.csv`` (append-only, truncated to the resumed step by an atomic rewrite,
so a crash at any moment leaves a whole file), TensorBoard scalars when tensorboard imports, and
``loss_curve.png`` at the end."""
from __future__ import annotations

import csv
import io
import logging
import os

from plotting import loss_curve

from .checkpoint import atomic_write_text, remove_temporary_files, temporary_pattern

log = logging.getLogger(__name__)


class CsvLog:
    """Append-only CSV metrics log; on resume, rows after the resumed step are dropped first."""
    FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_sec", "eval_loss"]

    def __init__(self, path: str, start_step: int):
        self.path = path
        rows = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=self.FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in self.FIELDS})
        atomic_write_text(path, buf.getvalue())
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.FIELDS)

    def write(self, **row) -> None:
        self._w.writerow({k: row.get(k, "") for k in self.FIELDS})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def remove_log_temporaries(workdir: str) -> list[str]:
    """Temporary copies of ``log.csv`` left by a crash during its rewrite (removed; their paths)."""
    return remove_temporary_files(workdir, temporary_pattern("log.csv"))


def read_csv_log(path: str) -> dict[str, list[float]]:
    """Columns of a ``CsvLog`` file as float lists (empty cells skipped per column)."""
    out: dict[str, list[float]] = {k: [] for k in CsvLog.FIELDS}
    if not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k in CsvLog.FIELDS:
                if r.get(k):
                    out[k].append(float(r[k]))
    return out


class Tensorboard:
    """SummaryWriter when tensorboard imports; otherwise a no-op (one warning)."""

    def __init__(self, logdir: str, purge_step: int):
        self._w = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as e:  # tensorboard missing or broken
            log.warning("TensorBoard logging disabled (%s: %s)", type(e).__name__, e)
            return
        self._w = SummaryWriter(log_dir=logdir, purge_step=purge_step if purge_step > 0 else None)

    def scalars(self, step: int, **values) -> None:
        if self._w is not None:
            for k, v in values.items():
                if v is not None:
                    self._w.add_scalar(k, v, step)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


class RunLog:
    """The metric logs of a run (main rank only; a no-op elsewhere): CSV, TensorBoard, the console
    (when no progress bar shows the loss) and the loss curve written on ``close``."""

    def __init__(self, workdir: str, start_step: int, enabled: bool = True, echo: bool = True):
        self.workdir, self.enabled, self.echo = workdir, enabled, echo
        if not enabled:
            return
        self.csv = CsvLog(os.path.join(workdir, "log.csv"), start_step)
        self.tb = Tensorboard(os.path.join(workdir, "tensorboard"), start_step)

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        self.csv.write(step=step, **values)
        self.tb.scalars(step, **values)
        if self.echo:
            log.info("step %d: %s", step, ", ".join(f"{k}={v:.5g}" for k, v in values.items() if v is not None))

    def close(self) -> None:
        if not self.enabled:
            return
        self.csv.close()
        self.tb.close()
        steps, losses = _csv_loss_columns(self.csv.path)
        if steps:
            loss_curve(os.path.join(self.workdir, "loss_curve.png"), steps, losses)


def _csv_loss_columns(path: str):
    steps, losses = [], []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("step") and r.get("loss"):
                steps.append(int(r["step"]))
                losses.append(float(r["loss"]))
    return steps, losses
