"""Acceptance (issue 10): training killed with SIGKILL at random moments, some of them inside a checkpoint
write (after the temporary file is written, before it is renamed), resumes each time and ends bitwise
equal to an uninterrupted run, with the same log rows and no temporary or lock file left behind.

The trainers are forked from the test process (torch already imported: each run costs only its steps).
"""
import csv
import os
import random
import signal
import time

import pytest
import torch

from training.checkpoint import CheckpointManager, checkpoint_dir
from training.train import train

from test_train import bitwise_equal, small_config

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

N_ITERS = 40
PAUSE = 0.03          # the child pauses after each torch.save of a checkpoint (temporary file complete)


def config():
    return small_config(n_iters=N_ITERS, snapshot_freq=20, snapshot_freq_for_preemption=5, eval_freq=10,
                        num_threads=1)


def _child(workdir: str, marker_fd: int) -> None:
    """The trainer: reports every checkpoint write on ``marker_fd`` and pauses before the rename."""
    code = 1
    try:
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            if isinstance(obj, dict) and "digest" in obj:     # a checkpoint, not another file
                os.write(marker_fd, b"w")
                time.sleep(PAUSE)

        torch.save = save
        train(config(), workdir, progress=False)
        code = 0
    finally:
        os._exit(code)


def _start(workdir: str):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(workdir, w)
    os.close(w)
    return pid, r


def _temporaries(workdir: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(workdir) for f in files if f.endswith(".tmp")]


def _log_steps(workdir: str) -> list[int]:
    with open(os.path.join(workdir, "log.csv"), newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_sigkill_at_random_moments_resumes_bitwise(tmp_path):
    rng = random.Random(0)
    ref = str(tmp_path / "reference")
    train(config(), ref, progress=False)
    mgr_ref = CheckpointManager(checkpoint_dir(ref))
    full = mgr_ref.load_latest()[0]
    assert full["step"] == N_ITERS

    wd = str(tmp_path / "killed")
    killed_in_write = 0
    for attempt, when in enumerate(["write", "write", "time", "write", "time"]):
        pid, r = _start(wd)
        if when == "write":                       # the k-th checkpoint write of this run
            k = rng.randint(1, 2)
            got = b""
            while len(got) < k:
                chunk = os.read(r, 1)
                if not chunk:
                    break
                got += chunk
        else:
            time.sleep(rng.uniform(0.05, 0.5))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(r)
        if when == "write" and os.WIFSIGNALED(status):
            leftovers = _temporaries(os.path.join(wd, "checkpoints"))
            assert leftovers, f"attempt {attempt}: killed during a write but no temporary file was left"
            killed_in_write += 1
    assert killed_in_write >= 2                   # the first two always land (they need <= 20 of 40 steps)

    pid, r = _start(wd)                           # the last run, left to finish
    while os.read(r, 1):
        pass
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    mgr = CheckpointManager(checkpoint_dir(wd))
    state = mgr.load_latest()[0]
    assert state["step"] == N_ITERS and bitwise_equal(state, full)
    assert [s for s, _, _ in mgr.list()] == [s for s, _, _ in mgr_ref.list()]
    assert _log_steps(wd) == _log_steps(ref) == list(range(5, N_ITERS + 1, 5))
    assert _temporaries(wd) == [] and not os.path.exists(os.path.join(wd, "train.lock"))
