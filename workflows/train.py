"""``--mode train``: train (resuming from the newest checkpoint in workdir) up to config.training.n_iters."""
from __future__ import annotations

import os

from training.distributed import current_info
from training.train import EvaluationFailed, train

from .common import cli, fail, one_line


@cli
def mode_train(config, workdir: str, progress: bool = True) -> int:
    """Train with ``training.train``; a non-finite loss or a failed evaluation (after saving the step) stops
    it with one ``error:`` line and exit code 1."""
    try:
        train(config, workdir, progress=progress)
    except (FloatingPointError, EvaluationFailed) as e:
        return fail(one_line(e), code=1)
    if not current_info().is_main:
        return 0
    print(f"training done: checkpoints in {os.path.join(workdir, 'checkpoints')}, log in "
          f"{os.path.join(workdir, 'log.csv')}")
    return 0
