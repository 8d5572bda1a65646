"""``--mode import``: a checkpoint of the original code (score_sde_pytorch .pth, ermongroup/ncsnv2 .pth, a
diffusers folder) -> this toolkit's checkpoint in workdir, so that every other mode works on it."""
from __future__ import annotations

import os

from models import ExponentialMovingAverage, get_model, import_checkpoint
from training.build import check_config
from training.checkpoint import CheckpointManager, capture_state, checkpoint_dir

from .common import WorkflowError, cli


@cli
def mode_import(config, workdir: str, progress: bool = True, checkpoint: str = "", source: str = "auto",
                force: bool = False) -> int:
    """Import ``checkpoint`` for ``config`` (checked weight by weight, ``models.import_checkpoint``) and write
    it as workdir/checkpoints/ckpt_<step>.pth with the model weights, the EMA weights as the EMA state (used
    for sampling and likelihood, as the originals do) and the config recorded. Refuses a workdir that
    already holds checkpoints unless ``force`` (then the import is added as the newest one)."""
    if not checkpoint:
        raise WorkflowError("--checkpoint PATH is required for --mode import (a score_sde_pytorch or "
                            "ermongroup/ncsnv2 .pth file, or a diffusers model folder)")
    check_config(config, "use")
    mgr = CheckpointManager(checkpoint_dir(workdir), keep=max(1, int(config.training.keep_checkpoints)))
    if mgr.list() and not force:
        raise WorkflowError(f"{checkpoint_dir(workdir)} already holds checkpoints; import into a new --workdir "
                            f"(or pass --force to add the import as the newest checkpoint)")
    out = import_checkpoint(checkpoint, config, source=source)
    model, ema_weights = get_model(config), get_model(config)
    model.load_state_dict(out["model"])
    ema_weights.load_state_dict(out["ema"])
    ema = ExponentialMovingAverage(ema_weights.parameters(), decay=float(config.model.ema_rate))
    step = max(int(out["step"]), (mgr.latest_step() or -1) + 1 if force else 0)
    state = capture_state(step, model, ema, config=config,
                          extra={"imported_from": os.path.abspath(checkpoint), "source": out["source"]})
    path = mgr.save(state, "ckpt")
    print(f"imported {checkpoint} ({out['source']}, step {out['step']}) into {path}; e.g. --mode sample "
          f"--workdir {workdir} now uses its EMA weights")
    return 0
