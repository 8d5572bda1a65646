"""Command-line entry point: train, evaluate, sample, compute likelihoods and encode with score SDEs.

    python main.py --config configs/vp/toy2d.py --workdir runs/vp_toy --mode train \
        [--config.training.n_iters=2000 ...any ml_collections override]

Data-parallel training on K processes (gloo on CPUs, nccl on GPUs; sample / likelihood / eval shard
their batches across the ranks and rank 0 writes the results):

    torchrun --nproc_per_node=K main.py --config configs/vp/toy2d.py --workdir runs/vp_toy --mode train

Modes live in the ``MODES`` registry (name -> function(config, workdir) -> exit code). A bad config
(unknown SDE / model / data set, missing data path, shape mismatch) or bad flags stop before any work
with one line ``error: ...`` on stderr and exit code 2.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Callable

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration file (configs/<sde>/<name>.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Working directory: checkpoints, logs, samples, evaluation results.")
flags.DEFINE_string("mode", "train", "What to do; one of the MODES registry: train, eval, sample, likelihood, "
                    "encode, compare, train_classifier, recipe, interpolate, inpaint, colorize, "
                    "conditional_sample.")
flags.DEFINE_string("eval_folder", "eval", "Subfolder of workdir for --mode eval outputs.")
flags.DEFINE_bool("decode", False, "--mode encode: also decode the latents and report the reconstruction error.")
flags.DEFINE_bool("progress", True, "Show tqdm progress bars.")
flags.DEFINE_integer("num", 0, "--mode sample: number of samples (0: config.sampling.num_samples); "
                     "--mode likelihood / encode: number of test points (0: all / config.eval.batch_size).")
flags.DEFINE_alias("num_points", "num")  # torchrun's argument parser takes --num=... for its --numa-binding

log = logging.getLogger("main")
CONFIG_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError)
MODES: dict[str, Callable[[object, str], int]] = {}
#: modes that run under ``torchrun --nproc_per_node=K`` (train: DDP; eval / sample / likelihood: sharded)
DISTRIBUTED_MODES = ("train", "eval", "sample", "likelihood", "encode")


class ConfigError(Exception):
    """A user error reported as one ``error:`` line with exit code 2."""


def register_mode(name: str):
    """Decorator adding ``fn(config, workdir) -> int`` (exit code) to ``MODES``."""
    def wrap(fn):
        MODES[name] = fn
        return fn
    return wrap


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, KeyError):
        text = text.strip("'\"")
    return " ".join(text.split())


# ----------------------------------------------------------------------------- helpers
def _torch_setup(config) -> None:
    import torch
    n = int(getattr(config.training, "num_threads", 0))
    if n > 0:
        torch.set_num_threads(n)


def _validate(config, need_checkpoint_in: str | None = None):
    """Build SDE, model and data up front; raise ConfigError with one line on any problem."""
    from training.inference import check_sampling_config
    from training.train import build_components, build_loss_fn, resolve_device
    try:
        device = resolve_device(config)
        comp = build_components(config, device)
        build_loss_fn(config, comp.sde)
        check_sampling_config(config)
        if need_checkpoint_in is not None:
            from training.checkpoint import CheckpointManager
            from training.train import checkpoint_dir
            if not CheckpointManager(checkpoint_dir(need_checkpoint_in)).list():
                raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(need_checkpoint_in)}; "
                                        f"train first with --mode train --workdir {need_checkpoint_in}")
    except CONFIG_ERRORS as e:
        raise ConfigError(_one_line(e)) from None
    return comp


def _info(device="cpu"):
    """This process's ``RunInfo`` (rank / world size; single process outside torchrun)."""
    from training.distributed import current_info
    return current_info(device)


def _test_points(config, n: int):
    from scoredata import get_dataset
    x = get_dataset(config, "test")
    return x if n <= 0 else x[:n]


def _write_json(path: str, obj: dict) -> None:
    from training.evaluate import write_json
    write_json(path, obj)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v)


def _print_metrics(title: str, metrics: dict) -> None:
    print(title)
    for k in sorted(metrics):
        print(f"  {k}: {_fmt(metrics[k])}")


# ----------------------------------------------------------------------------- modes
@register_mode("train")
def run_train(config, workdir: str) -> int:
    """Train (resuming from the newest checkpoint in workdir) up to config.training.n_iters."""
    from training.train import train
    _validate(config)
    try:
        train(config, workdir, progress=FLAGS.progress)
    except FloatingPointError as e:
        return fail(_one_line(e), code=1)
    if not _info().is_main:
        return 0
    print(f"training done: checkpoints in {os.path.join(workdir, 'checkpoints')}, log in "
          f"{os.path.join(workdir, 'log.csv')}")
    return 0


@register_mode("eval")
def run_eval(config, workdir: str) -> int:
    """Bits/dim (or NLL) on the test split and sample statistics of the newest checkpoint."""
    from training.evaluate import evaluate
    _validate(config, need_checkpoint_in=workdir)
    metrics = evaluate(config, workdir, eval_folder=FLAGS.eval_folder, progress=FLAGS.progress)
    if not _info().is_main:
        return 0
    _print_metrics(f"evaluation of {metrics['checkpoint']}:", metrics)
    return 0


@register_mode("sample")
def run_sample(config, workdir: str) -> int:
    """Draw samples (config.sampling: method pc|ode, predictor, corrector, snr, n_steps_each) -> .npz + PNG."""
    import numpy as np
    import torch
    from training.evaluate import draw_samples, load_trained, sample_stats, save_samples_png

    _validate(config, need_checkpoint_in=workdir)
    sde, model, step, _ = load_trained(config, workdir)
    device = next(model.parameters()).device
    n = FLAGS.num or int(config.sampling.num_samples)
    g = torch.Generator(device=device).manual_seed(int(config.seed) + 21)
    info = _info(device)  # under torchrun each rank draws its shard; rank 0 writes
    x, nfe = draw_samples(config, sde, model, n, generator=g, device=device,
                          progress=FLAGS.progress and info.is_main, info=info)
    if not info.is_main:
        return 0
    out = os.path.join(workdir, "samples")
    os.makedirs(out, exist_ok=True)
    tag = f"{config.sampling.method}_{step}"
    npz = os.path.join(out, f"samples_{tag}.npz")
    np.savez(npz, samples=x.numpy(), nfe=nfe, step=step)
    test = _test_points(config, 0)
    png = save_samples_png(config, x, os.path.join(out, f"samples_{tag}.png"), data=test,
                           title=f"{config.sampling.method} samples, step {step}")
    stats = sample_stats(config, x, test, generator=torch.Generator().manual_seed(int(config.seed) + 13))
    stats.update({"nfe": nfe, "step": step, "npz": npz, "png": png})
    _write_json(os.path.join(out, f"stats_{tag}.json"), stats)
    _print_metrics(f"{n} samples ({config.sampling.method}) written to {npz} and {png}:", stats)
    return 0


@register_mode("likelihood")
def run_likelihood(config, workdir: str) -> int:
    """Bits/dim (images) or NLL in nats per sample (toy data) on the test split."""
    import torch
    from training.evaluate import likelihood_stats, load_trained

    _validate(config, need_checkpoint_in=workdir)
    sde, model, step, _ = load_trained(config, workdir)
    device = next(model.parameters()).device
    x = _test_points(config, FLAGS.num).to(device)
    g = torch.Generator(device=device).manual_seed(int(config.seed) + 11)
    info = _info(device)  # under torchrun each rank evaluates its shard of the test points; rank 0 writes
    stats = likelihood_stats(config, sde, model, x, generator=g, progress=FLAGS.progress and info.is_main,
                             info=info)
    if not info.is_main:
        return 0
    stats["step"] = step
    path = os.path.join(workdir, "likelihood", f"likelihood_{step}.json")
    _write_json(path, stats)
    if "bpd" in stats:
        print(f"bits/dim on {stats['n']} test points: {stats['bpd']:.4f} +- {stats['bpd_se']:.4f} (written to {path})")
    else:
        ref = stats.get("nll_nats_data_distribution")
        ref = f"; the data distribution itself: {ref:.4f}" if ref is not None else ""
        print(f"NLL on {stats['n']} test points: {stats['nll_nats']:.4f} +- {stats['nll_nats_se']:.4f} "
              f"nats per sample{ref} (written to {path})")
    return 0


@register_mode("encode")
def run_encode(config, workdir: str) -> int:
    """Encode test points to latents with the probability-flow ODE (.npz); with --decode, decode them
    back and report the relative reconstruction error ||x - decode(encode(x))|| / ||x||."""
    import numpy as np
    import torch
    from samplers import decode, encode
    from training.evaluate import load_trained, score_fn_for

    _validate(config, need_checkpoint_in=workdir)
    sde, model, step, _ = load_trained(config, workdir)
    device = next(model.parameters()).device
    x = _test_points(config, FLAGS.num or int(config.eval.batch_size)).to(device)
    s = config.sampling
    score_fn = score_fn_for(config, sde, model)
    kw = dict(rtol=float(s.rtol), atol=float(s.atol), eps=float(s.eps))
    z = encode(sde, score_fn, x, **kw)
    if not _info(device).is_main:  # encoding is not sharded: every rank computes, rank 0 writes
        return 0
    out = os.path.join(workdir, "latents")
    os.makedirs(out, exist_ok=True)
    arrays = {"x": x.cpu().numpy(), "z": z.detach().cpu().numpy(), "step": step}
    msg = f"encoded {x.shape[0]} test points; latent std {float(z.std()):.4f} (prior std {sde.prior_std:.4g})"
    stats = {"n": int(x.shape[0]), "latent_std": float(z.std()), "prior_std": float(sde.prior_std), "step": step}
    if FLAGS.decode:
        x_rec = decode(sde, score_fn, z, **kw)
        err = float(torch.linalg.vector_norm(x_rec - x) / torch.linalg.vector_norm(x))
        arrays["x_rec"] = x_rec.detach().cpu().numpy()
        stats["relative_reconstruction_error"] = err
        msg += f"; decoded back with relative reconstruction error {err:.3g}"
    path = os.path.join(out, f"latents_{step}.npz")
    np.savez(path, **arrays)
    _write_json(os.path.join(out, f"latents_{step}.json"), stats)
    print(f"{msg} (written to {path})")
    return 0


def _register_workflows() -> None:
    """The researcher workflows (training/workflows.py) as modes, with --progress passed through."""
    from training.workflows import WORKFLOW_MODES

    for name, fn in WORKFLOW_MODES.items():
        def run(config, workdir: str, _fn=fn) -> int:
            return _fn(config, workdir, progress=FLAGS.progress)
        run.__name__ = f"run_{name}"
        run.__doc__ = fn.__doc__
        register_mode(name)(run)


_register_workflows()


# ----------------------------------------------------------------------------- entry
def _parse_flags(argv):
    """absl flag parsing, with any flag / config-file error reported as one ``error:`` line (exit 2)."""
    try:
        rest = FLAGS(argv)
        if FLAGS.config is not None:
            FLAGS.config.keys()  # config_flags loads lazily: surface a bad file here, not mid-run
        return rest
    except flags.Error as e:
        sys.exit(fail(_one_line(e)))
    except AttributeError as e:
        inner = e.args[0] if e.args else e
        if isinstance(inner, KeyError):
            sys.exit(fail(f"--config override names a key the config does not have: '{_one_line(inner)}' "
                          f"(see configs/default.py for the schema)"))
        sys.exit(fail(f"could not load --config: {_one_line(e)}"))
    except OSError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[-1] if lines else type(e).__name__
        sys.exit(fail(f"could not load --config: {detail}"))
    except CONFIG_ERRORS + (SyntaxError, ImportError) as e:
        sys.exit(fail(f"could not load --config: {_one_line(e)}"))


def main(argv) -> None:
    if len(argv) > 1:
        sys.exit(fail(f"unexpected arguments {argv[1:]}"))
    if FLAGS.config is None:
        sys.exit(fail("--config is required (e.g. --config configs/vp/toy2d.py)"))
    if not FLAGS.workdir:
        sys.exit(fail("--workdir is required"))
    if FLAGS.mode not in MODES:
        sys.exit(fail(f"--mode must be one of {sorted(MODES)}, got {FLAGS.mode!r}"))
    from training.distributed import init_distributed, launched_by_torchrun, shutdown
    if launched_by_torchrun() and FLAGS.mode not in DISTRIBUTED_MODES:
        sys.exit(fail(f"--mode {FLAGS.mode} runs in a single process; launch it without torchrun "
                      f"(modes that run under torchrun: {', '.join(DISTRIBUTED_MODES)})"))
    config = FLAGS.config
    _torch_setup(config)
    try:
        if launched_by_torchrun():
            from training.train import resolve_device
            init_distributed(resolve_device(config))
        code = MODES[FLAGS.mode](config, FLAGS.workdir)
    except ConfigError as e:
        code = fail(str(e))
    except (ValueError, FileNotFoundError) as e:  # bad input met after validation (e.g. a checkpoint
        code = fail(_one_line(e))                 # written for another config.model)
    finally:
        shutdown()
    sys.exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
