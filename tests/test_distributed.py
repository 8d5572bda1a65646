"""Data-parallel training under torchrun (2 CPU processes, gloo), sharded sampling / likelihood, and the
sharded loss noise that makes K ranks follow one process."""
import importlib
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from configs.vp.toy2d import get_config as vp_toy2d
from sde_lib import VPSDE
from training.checkpoint import CheckpointManager
from training.distributed import RunInfo, gather_rows, rank_generator, shard_slice
from training.losses import get_loss_fn

T = importlib.import_module("training.train")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/vp/toy2d.py"
COMMON = ["--noprogress", "--config.training.num_threads=1", "--config.training.batch_size=64",
          "--config.model.nf=32", "--config.model.n_layers=2", "--config.data.n_train=2000",
          "--config.data.n_test=500", "--config.training.snapshot_sampling=False",
          "--config.training.eval_freq=0", "--config.training.log_freq=5",
          "--config.training.snapshot_freq=0", "--config.training.snapshot_freq_for_preemption=5"]
N_ITERS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(workdir, mode, *overrides, nproc=1):
    """main.py in one process, or under torchrun with ``nproc`` gloo processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    prefix = [sys.executable]
    if nproc > 1:
        prefix += ["-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    cmd = [*prefix, "main.py", "--config", CONFIG, "--workdir", str(workdir), "--mode", mode, *COMMON, *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def latest(workdir):
    state, _ = CheckpointManager(T.checkpoint_dir(str(workdir))).load_latest()
    return state


def max_rel_diff(a, b):
    """max |a - b| / max |a| over the model weights, EMA weights and Adam moments of two checkpoints."""
    pairs = [(a["model"][k], b["model"][k]) for k in a["model"]]
    pairs += list(zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]))
    for k, s in a["optimizer"]["state"].items():
        pairs += [(s[m], b["optimizer"]["state"][k][m]) for m in ("exp_avg", "exp_avg_sq")]
    return max(float((x - y).abs().max() / x.abs().max().clamp_min(1e-12)) for x, y in pairs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    run(root / "one", "train", f"--config.training.n_iters={N_ITERS}")
    run(root / "two", "train", f"--config.training.n_iters={N_ITERS}", nproc=2)
    # resume with another number of ranks: 2 processes up to step 15, then 1 process to the end
    run(root / "switch", "train", f"--config.training.n_iters={N_ITERS // 2}", nproc=2)
    run(root / "switch", "train", f"--config.training.n_iters={N_ITERS}")
    return root


def test_two_gloo_processes_equal_one_process(runs):
    one, two = latest(runs / "one"), latest(runs / "two")
    assert one["step"] == two["step"] == N_ITERS
    assert max_rel_diff(one, two) < 1e-5          # float rounding of the gradient all-reduce only
    assert not any(torch.equal(v, torch.zeros_like(v)) for v in two["model"].values())
    # rank 0 alone wrote: one checkpoint set, one log
    with open(runs / "two" / "log.csv") as f:
        steps = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert steps == [str(s) for s in range(5, N_ITERS + 1, 5)]


def test_resume_with_a_different_number_of_ranks(runs):
    one, switched = latest(runs / "one"), latest(runs / "switch")
    assert switched["step"] == N_ITERS
    assert max_rel_diff(one, switched) < 1e-5


def test_sharded_likelihood_and_sampling_gather_every_point(runs):
    wd = runs / "two"
    ll = ["--num_points=100", "--config.eval.rtol=1e-5", "--config.eval.atol=1e-5"]
    single = run(wd, "likelihood", *ll).stdout
    sharded = run(wd, "likelihood", *ll, nproc=2).stdout
    nll = [float(s.split("NLL on 100 test points: ")[1].split()[0]) for s in (single, sharded)]
    assert abs(nll[0] - nll[1]) < 2e-3           # same points, batches of 100 vs 2 x 50 (adaptive steps)
    run(wd, "sample", "--num_points=301", "--config.sampling.method=ode", "--config.sampling.rtol=1e-3",
        "--config.sampling.atol=1e-3", nproc=2)
    samples = np.load(next((wd / "samples").glob(f"samples_ode_*_n301_{N_ITERS}.npz")))["samples"]
    assert samples.shape == (301, 2) and np.isfinite(samples).all()
    assert len(np.unique(samples[:, 0])) == 301   # the two ranks drew different points


def test_single_process_modes_refuse_torchrun(runs):
    with pytest.raises(AssertionError, match="runs in a single process"):
        run(runs / "two", "recipe", nproc=2)


# ---------------------------------------------------------------------------- in-process pieces
class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))

    def forward(self, x, cond):
        return self.net(torch.cat([x, cond[:, None].to(x.dtype)], 1))


@pytest.mark.parametrize("objective", ["dsm"])
def test_sharded_loss_noise_reproduces_the_global_batch(objective):
    """mean over K shards of loss_fn(shard) == loss_fn(global batch) with identically seeded generators."""
    sde = VPSDE(N=100)
    torch.manual_seed(0)
    model = TinyNet()
    loss_fn = get_loss_fn(sde, reduce_mean=True, objective=objective)
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(1))
    full = loss_fn(model, x, generator=torch.Generator().manual_seed(5))
    for k in (2, 3):
        parts = [loss_fn(model, x[shard_slice(12, RunInfo(r, k))], generator=torch.Generator().manual_seed(5),
                         shard=(r, k)) for r in range(k)]
        assert torch.allclose(torch.stack(parts).mean(), full, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="shard"):
        loss_fn(model, x, shard=(2, 2))


def test_single_process_helpers_are_identities():
    info = RunInfo()
    x = torch.arange(5.)
    assert gather_rows(x, info) is x
    g = torch.Generator().manual_seed(3)
    assert rank_generator(g, info) is g
    assert shard_slice(7, info) == slice(0, 7)
    # shards of an uneven batch cover it in order
    rows = [shard_slice(7, RunInfo(r, 3)) for r in range(3)]
    assert [i for s in rows for i in range(s.start, s.stop)] == list(range(7))


def test_bf16_mixed_precision_trains(tmp_path):
    """config.training.mixed_precision = "bf16" (autocast) trains the toy model on a CPU: the loss falls
    as in float32, to within bf16 rounding."""
    losses = {}
    for mp in ("none", "bf16"):
        c = vp_toy2d()
        c.model.nf, c.model.n_layers = 32, 2
        c.data.n_train, c.data.n_test = 2000, 500
        c.training.update(dict(batch_size=64, n_iters=150, log_freq=50, eval_freq=0, snapshot_freq=0,
                               snapshot_freq_for_preemption=0, snapshot_sampling=False, mixed_precision=mp))
        T.train(c, str(tmp_path / mp), progress=False)
        cols = T.read_csv_log(str(tmp_path / mp / "log.csv"))
        losses[mp] = cols["loss"]
    assert losses["bf16"][-1] < 0.7 * losses["bf16"][0]
    assert abs(losses["bf16"][-1] - losses["none"][-1]) < 0.1 * losses["none"][-1]
