"""``--mode likelihood``: bits/dim (images) or NLL in nats per sample (toy data) on the test split."""
from __future__ import annotations

import os

import torch

from training.distributed import current_info
from training.names import likelihood_tag, output_name
from training.run import open_run

from .common import check_num, cli, write_json


@cli
def mode_likelihood(config, workdir: str, progress: bool = True, num: int = 0) -> int:
    """The first ``num`` (0: all) test points; writes workdir/likelihood/likelihood_<tag>_<step>.json, <tag>
    the estimator, tolerances and number of points (``training.names.likelihood_tag``)."""
    check_num(num, "all test points")
    run = open_run(config, workdir)
    x = run.test_data()
    x = x if num <= 0 else x[:num]
    g = torch.Generator(device=run.device).manual_seed(int(config.seed) + 11)
    info = current_info(run.device)  # under torchrun each rank evaluates its shard of the points; rank 0 writes
    stats = run.likelihood(x, generator=g, progress=progress and info.is_main, info=info)
    if not info.is_main:
        return 0
    stats["step"] = run.step
    path = os.path.join(workdir, "likelihood", output_name("likelihood", run.step, likelihood_tag(config, x.shape[0]),
                                                           ext="json"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, stats)
    if "bpd" in stats:
        print(f"bits/dim on {stats['n']} test points: {stats['bpd']:.4f} +- {stats['bpd_se']:.4f} (written to {path})")
    else:
        ref = stats.get("nll_nats_data_distribution")
        ref = f"; the data distribution itself: {ref:.4f}" if ref is not None else ""
        print(f"NLL on {stats['n']} test points: {stats['nll_nats']:.4f} +- {stats['nll_nats_se']:.4f} "
              f"nats per sample{ref} (written to {path})")
    return 0
