"""``--mode eval``: bits/dim (or NLL) on the test split and sample statistics of the newest checkpoint."""
from __future__ import annotations

from training.distributed import current_info
from training.evaluate import evaluate

from .common import cli, print_metrics


@cli
def mode_eval(config, workdir: str, progress: bool = True, eval_folder: str = "eval") -> int:
    """``training.evaluate`` into workdir/<eval_folder>; prints the metrics (rank 0)."""
    metrics = evaluate(config, workdir, eval_folder=eval_folder, progress=progress)
    if current_info().is_main:
        print_metrics(f"evaluation of {metrics['checkpoint']}:", metrics)
    return 0
