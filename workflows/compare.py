"""``--mode compare``: every sampler family against NFE (``evaluation.sampler_comparison.compare``) for
the checkpoint in workdir, or for the exact score of the two_mode toy mixture ("closed_form", the
default without a checkpoint on that data set). Writes workdir/compare/compare_<source>[_step<step>]_n<n>_
<families>[_quick].{md,json,png}."""
from __future__ import annotations

from evaluation import compare, markdown_table, write_report
from sde_lib import get_sde
from sde_lib.mixture import two_mode_mixture
from training.checkpoint import CheckpointManager, checkpoint_dir

from .common import WorkflowError, cli, copy_figure, generator, open_trained, out_dir
from .options import controllable_options

SOURCES = ("auto", "checkpoint", "closed_form")


def _has_checkpoint(workdir: str) -> bool:
    return bool(CheckpointManager(checkpoint_dir(workdir)).list())


@cli
def mode_compare(config, workdir: str, progress: bool = True) -> int:
    """Every predictor x corrector pair, the probability-flow ODE, annealed Langevin and the fast solvers
    against NFE; options config.controllable.compare_{source,n,quick,families}. Prints the table."""
    opts = controllable_options(config)
    source = str(opts.compare_source)
    closed_ok = str(config.data.dataset) == "toy2d" and str(config.data.toy) == "two_mode"
    if source == "auto":
        source = "checkpoint" if _has_checkpoint(workdir) else ("closed_form" if closed_ok else "checkpoint")
    n = int(opts.compare_n)
    families = [f for f in str(opts.compare_families).split(",") if f]
    log = print if progress else None
    if source == "closed_form":
        if not closed_ok:
            raise WorkflowError("config.controllable.compare_source='closed_form' needs the two_mode toy set "
                                "(config.data.dataset='toy2d', config.data.toy='two_mode')")
        mixture = two_mode_mixture()
        sde = get_sde(config)
        reference = mixture.sample(n, generator=generator(config, opts, 71))
        rows = compare(sde, mixture.score_fn(sde), reference, (n, 2), mixture=mixture, seed=int(config.seed),
                       quick=bool(opts.compare_quick), families=families, log=log)
        title = f"2-D 0.2/0.8 mixture, exact score, {sde!r}, {n} samples"
        meta = {"source": "closed_form", "n": n}
    elif source == "checkpoint":
        run = open_trained(config, workdir)
        reference = run.test_data()[:n]
        n = min(n, reference.shape[0])
        rows = compare(run.sde, run.score_fn, reference, (n, *reference.shape[1:]), sde_factory=run.sampling_sde,
                       seed=int(config.seed), quick=bool(opts.compare_quick), families=families, log=log)
        title = f"checkpoint step {run.step} ({run.sde!r}), {n} samples"
        meta = {"source": "checkpoint", "workdir": workdir, "step": run.step, "n": n}
    else:
        raise WorkflowError(f"config.controllable.compare_source must be one of {list(SOURCES)}, got {source!r}")
    meta.update({"quick": bool(opts.compare_quick), "families": families})
    parts = ["compare", source, f"step{meta['step']}" if "step" in meta else "", f"n{n}", "-".join(families),
             "quick" if bool(opts.compare_quick) else ""]
    paths = write_report(rows, out_dir(workdir, "compare"), title, meta, stem="_".join(p for p in parts if p))
    copy_figure(paths["png"], opts)
    print(markdown_table(rows))
    print("sampler comparison written to " + ", ".join(paths.values()))
    return 0
