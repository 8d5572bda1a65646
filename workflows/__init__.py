"""The command-line workflows: one module per ``main.py --mode``, each a thin composition of library calls.

    mode                module               what it composes
    train               train                training.train
    eval                evaluate             training.evaluate (open_run + evaluation)
    sample              sample               open_run -> run.sample -> evaluation.sample_stats, plotting
    likelihood          likelihood           open_run -> run.likelihood (evaluation.split_likelihood)
    encode              encode               open_run -> samplers.encode / decode
    compare             compare              evaluation.sampler_comparison + comparison_report
    train_classifier    train_classifier     training.classifier.train_classifiers
    recipe              recipe               training.recipes.propose
    interpolate         interpolate          samplers.encode / decode + slerp
    inpaint             inpaint              samplers.controllable.inpaint (+ NCSN Algorithm 2)
    colorize            colorize             samplers.controllable.colorize
    conditional_sample  conditional_sample   samplers.pc_sample with classifier guidance
    import              import_weights       models.import_checkpoint -> a toolkit checkpoint in workdir

Every workflow is ``mode_<name>(config, workdir, progress=True, ...) -> exit code``; a user error (bad
config, no checkpoint, wrong data kind) prints one ``error: ...`` line and returns 2. ``WORKFLOWS``
registers them with the command-line options each takes and whether it runs under torchrun. To add a
workflow: write ``workflows/<name>.py`` with a ``@cli``-wrapped ``mode_<name>`` and register it here.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .colorize import PALETTE, mode_colorize, tinted_digits
from .common import WorkflowError, cli
from .compare import mode_compare
from .conditional_sample import mode_conditional_sample
from .encode import mode_encode
from .evaluate import mode_eval
from .import_weights import mode_import
from .inpaint import MASKS, make_mask, mode_inpaint
from .interpolate import interpolate, mode_interpolate, slerp
from .likelihood import mode_likelihood
from .options import CONTROLLABLE_DEFAULTS, controllable_options
from .recipe import mode_recipe
from .sample import mode_sample
from .train import mode_train
from .train_classifier import mode_train_classifier


@dataclasses.dataclass(frozen=True)
class Workflow:
    """A ``--mode``: its function, the command-line options it takes (besides ``progress``) and whether
    it runs under ``torchrun --nproc_per_node=K`` (train: DDP; eval / sample / likelihood: sharded)."""
    run: Callable[..., int]
    options: tuple[str, ...] = ()
    distributed: bool = False


#: mode name -> Workflow, for main.py
WORKFLOWS: dict[str, Workflow] = {
    "train": Workflow(mode_train, distributed=True),
    "eval": Workflow(mode_eval, ("eval_folder",), distributed=True),
    "sample": Workflow(mode_sample, ("num",), distributed=True),
    "likelihood": Workflow(mode_likelihood, ("num",), distributed=True),
    "encode": Workflow(mode_encode, ("num", "decode"), distributed=True),
    "compare": Workflow(mode_compare),
    "train_classifier": Workflow(mode_train_classifier),
    "recipe": Workflow(mode_recipe),
    "interpolate": Workflow(mode_interpolate),
    "inpaint": Workflow(mode_inpaint),
    "colorize": Workflow(mode_colorize),
    "conditional_sample": Workflow(mode_conditional_sample),
    "import": Workflow(mode_import, ("checkpoint", "source", "force")),
}
#: the researcher workflows as plain functions (the older registry form)
WORKFLOW_MODES: dict[str, Callable[..., int]] = {name: w.run for name, w in WORKFLOWS.items()}

__all__ = ["WORKFLOWS", "Workflow", "WORKFLOW_MODES", "WorkflowError", "cli", "CONTROLLABLE_DEFAULTS",
           "controllable_options", "MASKS", "make_mask", "PALETTE", "tinted_digits", "slerp", "interpolate",
           "mode_train", "mode_eval", "mode_sample", "mode_likelihood", "mode_encode", "mode_compare",
           "mode_train_classifier", "mode_recipe", "mode_interpolate", "mode_inpaint", "mode_colorize",
           "mode_conditional_sample", "mode_import"]
