"""One way to open a trained run: ``open_run(config, workdir)`` -> ``TrainedRun``.

    run = open_run(config, workdir)          # validated config, newest readable checkpoint, EMA weights
    x, nfe = run.sample(64, generator=g)     # config.sampling (PC or ODE), sharded under torchrun
    stats = run.likelihood(run.test_data())  # config.eval's bits/dim or NLL
    run.sde, run.model, run.score_fn, run.data (a scoredata.DataSpec), run.step, run.checkpoint

Every mode and workflow that uses a trained model opens it here, so the order is the same everywhere:
``check_config(config, "use")`` (no loss, no data read), ``read_latest_checkpoint(workdir)`` (the one
reader of a run's checkpoints), the network built from config.model, the weights restored (a
checkpoint of another architecture is refused with the first mismatching key), the EMA weights copied
in unless ``config.eval.ckpt == "raw"``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from models import ExponentialMovingAverage, get_model
from scoredata import DataSpec
from sde_lib.base import SDE

from .build import check_config
from .checkpoint import LoadedCheckpoint, read_latest_checkpoint, restore_state
from .distributed import RunInfo
from .run_config import check_recorded
from .inference import draw_samples, likelihood_stats, sampling_sde, score_fn_for

Tensor = torch.Tensor


@dataclasses.dataclass
class TrainedRun:
    """A trained model as its workdir holds it (see the module docstring); build it with ``open_run``."""
    config: object
    workdir: str
    sde: SDE
    model: torch.nn.Module          # in eval mode, on ``device``, with the chosen weights
    score_fn: Callable[[Tensor, Tensor], Tensor]
    data: DataSpec
    step: int
    checkpoint: str                 # path of the checkpoint file that was loaded
    weights: str                    # "ema" | "raw"
    device: torch.device
    _test: Tensor | None = dataclasses.field(default=None, repr=False)

    def test_data(self) -> Tensor:
        """The test split of config.data (read once)."""
        if self._test is None:
            self._test = self.data.load("test")
        return self._test

    def sample(self, n: int, generator: torch.Generator | None = None, n_steps: int | None = None,
               progress: bool = False, info: RunInfo | None = None) -> tuple[Tensor, int]:
        """``n`` samples as config.sampling says (``training.inference.draw_samples``) and their NFE."""
        return draw_samples(self.config, self.sde, self.model, n, generator=generator, device=self.device,
                            n_steps=n_steps, progress=progress, info=info)

    def likelihood(self, x: Tensor, generator: torch.Generator | None = None, progress: bool = False,
                   info: RunInfo | None = None) -> dict:
        """Bits/dim or NLL of the points ``x`` (``training.inference.likelihood_stats``)."""
        return likelihood_stats(self.config, self.sde, self.model, x.to(self.device), generator=generator,
                                progress=progress, info=info)

    def sampling_sde(self, n_steps: int | None) -> SDE:
        """The SDE with ``n_steps`` predictor steps for PC sampling (continuous models)."""
        return sampling_sde(self.config, self.sde, n_steps)


def load_weights(config, ckpt: LoadedCheckpoint, which: str = "ema") -> torch.nn.Module:
    """The network of config.model with the weights of ``ckpt`` ("ema": the EMA weights when the
    checkpoint has them), in eval mode on the CPU. ValueError naming the file when they do not fit."""
    model = get_model(config)
    ema = ExponentialMovingAverage(model.parameters(), decay=float(config.model.ema_rate))
    try:
        restore_state(ckpt.state, model, ema if which == "ema" else None, restore_rng=False)
    except ValueError as e:
        raise ValueError(f"{ckpt.path}: {e}") from None
    if which == "ema" and "ema" in ckpt.state:
        ema.copy_to(model.parameters())
    return model.eval()


def open_run(config, workdir: str, device: torch.device | str | None = None,
             which: str | None = None) -> TrainedRun:
    """Open the newest readable checkpoint in ``workdir`` for use with ``config``.

    ``device``: default ``config.device``; ``which``: "ema" | "raw" (default ``config.eval.ckpt``).
    Raises ValueError on a bad config or a checkpoint of another architecture, FileNotFoundError when
    ``workdir`` holds no readable checkpoint.
    """
    checked = check_config(config, "use")
    device = checked.device if device is None else torch.device(device)
    which = str(which or getattr(config.eval, "ckpt", "ema"))
    if which not in ("ema", "raw"):
        raise ValueError(f"which must be 'ema' or 'raw', got {which!r}")
    ckpt = read_latest_checkpoint(workdir)
    check_recorded(ckpt.state, config, ckpt.path)
    model = load_weights(config, ckpt, which).to(device)
    return TrainedRun(config=config, workdir=workdir, sde=checked.sde, model=model,
                      score_fn=score_fn_for(config, checked.sde, model), data=checked.data, step=ckpt.step,
                      checkpoint=ckpt.path, weights=which, device=device)


def load_trained(config, workdir: str, device: torch.device | str | None = None, which: str | None = None):
    """(sde, model in eval mode, step, checkpoint path) of ``open_run`` (the older tuple form)."""
    run = open_run(config, workdir, device=device, which=which)
    return run.sde, run.model, run.step, run.checkpoint
