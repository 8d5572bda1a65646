"""Command-line entry point: train, evaluate, sample, compute likelihoods and encode with score SDEs.

    python main.py --config configs/vp/toy2d.py --workdir runs/vp_toy --mode train \
        [--config.training.n_iters=2000 ...any ml_collections override]

Data-parallel training on K processes (gloo on CPUs, nccl on GPUs; sample / likelihood / eval shard
their batches across the ranks and rank 0 writes the results):

    torchrun --nproc_per_node=K main.py --config configs/vp/toy2d.py --workdir runs/vp_toy --mode train

This file only parses flags and dispatches: every mode is a workflow of ``workflows.WORKFLOWS``
(``workflows/<mode>.py``), which composes the library (training, evaluation, samplers, ...). A bad
config (unknown SDE / model / data set, missing data path, shape mismatch) or bad flags stop before any
work with one line ``error: ...`` on stderr and exit code 2; so do a negative --num, a workdir that is a
file or cannot be written (the first path that fails), a second trainer on a locked workdir and any
operating-system error (the path and the reason).
"""
from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from workflows import WORKFLOWS
from workflows.common import fail, one_line, os_error_line

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration file (configs/<sde>/<name>.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Working directory: checkpoints, logs, samples, evaluation results.")
flags.DEFINE_string("mode", "train", "What to do; one of workflows.WORKFLOWS: train, eval, sample, likelihood, "
                    "encode, compare, train_classifier, recipe, interpolate, inpaint, colorize, "
                    "conditional_sample, import.")
flags.DEFINE_string("eval_folder", "eval", "Subfolder of workdir for --mode eval outputs.")
flags.DEFINE_bool("decode", False, "--mode encode: also decode the latents and report the reconstruction error.")
flags.DEFINE_bool("progress", True, "Show tqdm progress bars.")
flags.DEFINE_integer("num", 0, "--mode sample: number of samples (0: config.sampling.num_samples); "
                     "--mode likelihood / encode: number of test points (0: all / config.eval.batch_size).")
flags.DEFINE_string("checkpoint", "", "--mode import: the original code's checkpoint (score_sde_pytorch or "
                    "ermongroup/ncsnv2 .pth, or a diffusers model / pipeline folder).")
flags.DEFINE_string("source", "auto", "--mode import: score_sde_pytorch | ncsnv2 | diffusers | auto.")
flags.DEFINE_bool("force", False, "--mode import: add the import to a workdir that already holds checkpoints.")
flags.DEFINE_alias("num_points", "num")  # torchrun's argument parser takes --num=... for its --numa-binding

CONFIG_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError)


#: mode name -> fn(config, workdir) -> exit code (the workflows, with their default options)
MODES = {name: w.run for name, w in WORKFLOWS.items()}
#: modes that run under ``torchrun --nproc_per_node=K`` (train: DDP; eval / sample / likelihood: sharded)
DISTRIBUTED_MODES = tuple(name for name, w in WORKFLOWS.items() if w.distributed)


def _options(workflow) -> dict:
    """The command-line options a workflow takes, from the flags."""
    values = {"num": FLAGS.num, "decode": FLAGS.decode, "eval_folder": FLAGS.eval_folder,
              "checkpoint": FLAGS.checkpoint, "source": FLAGS.source, "force": FLAGS.force}
    return {"progress": FLAGS.progress, **{k: values[k] for k in workflow.options}}


# ----------------------------------------------------------------------------- entry
def _parse_flags(argv):
    """absl flag parsing, with any flag / config-file error reported as one ``error:`` line (exit 2)."""
    try:
        rest = FLAGS(argv)
        if FLAGS.config is not None:
            FLAGS.config.keys()  # config_flags loads lazily: surface a bad file here, not mid-run
        return rest
    except flags.Error as e:
        sys.exit(fail(one_line(e)))
    except AttributeError as e:
        inner = e.args[0] if e.args else e
        if isinstance(inner, KeyError):
            sys.exit(fail(f"--config override names a key the config does not have: '{one_line(inner)}' "
                          f"(see configs/default.py for the schema)"))
        sys.exit(fail(f"could not load --config: {one_line(e)}"))
    except OSError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[-1] if lines else type(e).__name__
        sys.exit(fail(f"could not load --config: {detail}"))
    except CONFIG_ERRORS + (SyntaxError, ImportError) as e:
        sys.exit(fail(f"could not load --config: {one_line(e)}"))


def main(argv) -> None:
    if len(argv) > 1:
        sys.exit(fail(f"unexpected arguments {argv[1:]}"))
    if FLAGS.config is None:
        sys.exit(fail("--config is required (e.g. --config configs/vp/toy2d.py)"))
    if not FLAGS.workdir:
        sys.exit(fail("--workdir is required"))
    if FLAGS.mode not in WORKFLOWS:
        sys.exit(fail(f"--mode must be one of {sorted(WORKFLOWS)}, got {FLAGS.mode!r}"))
    workflow = WORKFLOWS[FLAGS.mode]
    from training.distributed import init_distributed, launched_by_torchrun, shutdown
    if launched_by_torchrun() and not workflow.distributed:
        sys.exit(fail(f"--mode {FLAGS.mode} runs in a single process; launch it without torchrun "
                      f"(modes that run under torchrun: {', '.join(DISTRIBUTED_MODES)})"))
    config = FLAGS.config
    try:
        n = int(getattr(config.training, "num_threads", 0))
        if n > 0:
            import torch
            torch.set_num_threads(n)
        if launched_by_torchrun():
            from training.build import resolve_device
            init_distributed(resolve_device(config))
        code = workflow.run(config, FLAGS.workdir, **_options(workflow))
    except CONFIG_ERRORS as e:  # the workflows report their own errors; this catches the set-up's
        code = fail(os_error_line(e) if isinstance(e, OSError) and e.filename is not None else one_line(e))
    except OSError as e:        # a read-only or full disk met outside a workflow: the path, not a traceback
        code = fail(os_error_line(e))
    finally:
        shutdown()
    sys.exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
