"""``--mode sample``: draw samples of the trained run as config.sampling says -> .npz, PNG, statistics."""
from __future__ import annotations

import os

import numpy as np
import torch

from evaluation import sample_stats
from plotting import save_samples_png
from training.distributed import current_info
from training.names import output_name, sampler_tag
from training.run import open_run

from .common import check_num, cli, print_metrics, write_json


@cli
def mode_sample(config, workdir: str, progress: bool = True, num: int = 0) -> int:
    """``num`` (default config.sampling.num_samples) samples by config.sampling (method pc|ode, predictor,
    corrector, snr, n_steps_each) into workdir/samples/: samples_<tag>_n<num>_<step>.{npz,png} and
    stats_<tag>_n<num>_<step>.json (sample statistics against the test split), <tag> the sampler's
    settings (``training.names.sampler_tag``). Builds no loss."""
    check_num(num, "config.sampling.num_samples")
    run = open_run(config, workdir)
    test = run.test_data()                       # read first: a missing data path fails before sampling
    n = num or int(config.sampling.num_samples)
    g = torch.Generator(device=run.device).manual_seed(int(config.seed) + 21)
    info = current_info(run.device)              # under torchrun each rank draws its shard; rank 0 writes
    x, nfe = run.sample(n, generator=g, progress=progress and info.is_main, info=info)
    if not info.is_main:
        return 0
    out = os.path.join(workdir, "samples")
    os.makedirs(out, exist_ok=True)
    method, step = config.sampling.method, run.step
    tag = sampler_tag(config)
    npz = os.path.join(out, output_name("samples", step, tag, f"n{n}", ext="npz"))
    np.savez(npz, samples=x.numpy(), nfe=nfe, step=step)
    png = save_samples_png(config, x, os.path.join(out, output_name("samples", step, tag, f"n{n}", ext="png")),
                           data=test, title=f"{method} samples, step {step}")
    stats = sample_stats(config, x, test, generator=torch.Generator().manual_seed(int(config.seed) + 13))
    stats.update({"nfe": nfe, "step": step, "npz": npz, "png": png, "sampler": tag})
    write_json(os.path.join(out, output_name("stats", step, tag, f"n{n}", ext="json")), stats)
    print_metrics(f"{n} samples ({method}) written to {npz} and {png}:", stats)
    return 0
