"""The training loop: exact resume, corrupt-checkpoint fallback, NaN guard, outputs, batch drawing."""
import csv
import importlib
import logging
import math
import os

import pytest
import torch

from configs.vp.toy2d import get_config as vp_toy2d
from training.checkpoint import CheckpointManager, load_file, save_file

# the module, not the function: ``training.train`` is also the exported train() (SPEC)
T = importlib.import_module("training.train")


def small_config(n_iters=40, **training):
    """A tiny VP toy run: ~2 ms per step on one CPU thread."""
    c = vp_toy2d()
    c.model.nf = 32
    c.model.n_layers = 2
    c.model.num_scales = 100
    c.data.n_train = 2000
    c.data.n_test = 500
    c.training.batch_size = 64
    c.training.n_iters = n_iters
    c.training.log_freq = 5
    c.training.eval_freq = 10
    c.training.snapshot_freq = 10
    c.training.snapshot_freq_for_preemption = 5
    c.training.keep_checkpoints = 2
    c.training.snapshot_sampling = False
    c.training.n_snapshot_samples = 64
    c.optim.warmup = 10
    c.optim.lr = 1e-3
    c.training.update(training)
    return c


def final_state(workdir):
    state, _ = CheckpointManager(T.checkpoint_dir(workdir)).load_latest()
    return state


def flat(state, key):
    if key == "model":
        return [v for _, v in sorted(state["model"].items())]
    if key == "ema":
        return state["ema"]["shadow_params"]
    return [s[k] for _, s in sorted(state["optimizer"]["state"].items()) for k in ("exp_avg", "exp_avg_sq")]


def bitwise_equal(a, b):
    return all(torch.equal(x, y) for k in ("model", "ema", "optimizer") for x, y in zip(flat(a, k), flat(b, k)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted 40-step run with snapshot sampling on (it must not perturb the RNG streams)."""
    wd = str(tmp_path_factory.mktemp("full"))
    T.train(small_config(snapshot_sampling=True), wd, progress=False)
    return wd, final_state(wd)


def test_run_outputs(uninterrupted):
    wd, state = uninterrupted
    assert state["step"] == 40
    names = [(s, k) for s, k, _ in CheckpointManager(T.checkpoint_dir(wd)).list()]
    assert names == [(40, "ckpt"), (30, "ckpt")]           # keep_checkpoints = 2, resume files pruned
    for name in ("log.csv", "loss_curve.png", "samples/step_000000010.png", "samples/step_000000040.png"):
        assert os.path.getsize(os.path.join(wd, name)) > 0, name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "tensorboard")))
    rows = list(csv.DictReader(open(os.path.join(wd, "log.csv"))))
    assert [int(r["step"]) for r in rows] == list(range(5, 41, 5))
    assert all(math.isfinite(float(r["loss"])) and float(r["steps_per_sec"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(5e-4) and float(rows[-1]["lr"]) == pytest.approx(1e-3)  # warmup
    assert [r["step"] for r in rows if r["eval_loss"]] == ["10", "20", "30", "40"]
    # every tensor is finite and the run actually trained (the EMA moved away from the init)
    assert all(torch.isfinite(v).all() for v in flat(state, "model"))


def test_exact_resume_is_bitwise(uninterrupted, tmp_path):
    _, full = uninterrupted
    wd = str(tmp_path / "resumed")
    T.train(small_config(n_iters=17), wd, progress=False)     # stops between checkpoints
    assert final_state(wd)["step"] == 17
    T.train(small_config(n_iters=40), wd, progress=False)     # same workdir, larger n_iters
    resumed = final_state(wd)
    assert resumed["step"] == 40 and bitwise_equal(resumed, full)
    rows = list(csv.DictReader(open(os.path.join(wd, "log.csv"))))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 17, 20, 25, 30, 35, 40]

    # negative control: a resume that restores weights and optimizer but not the RNG streams differs
    wd2 = str(tmp_path / "naive")
    T.train(small_config(n_iters=17), wd2, progress=False)
    mgr = CheckpointManager(T.checkpoint_dir(wd2))
    _, _, path = mgr.list()[0]
    state = load_file(path)
    state["rng"] = {"torch": torch.get_rng_state(), "generators": {}}
    save_file(state, path)
    T.train(small_config(n_iters=40), wd2, progress=False)
    naive = final_state(wd2)
    assert naive["step"] == 40 and not bitwise_equal(naive, full)


def test_corrupt_latest_checkpoint_falls_back(uninterrupted, tmp_path, caplog):
    _, full = uninterrupted
    wd = str(tmp_path / "corrupt")
    T.train(small_config(n_iters=25), wd, progress=False)
    mgr = CheckpointManager(T.checkpoint_dir(wd))
    entries = mgr.list()
    assert [(s, k) for s, k, _ in entries] == [(25, "resume"), (20, "ckpt"), (10, "ckpt")]
    with open(entries[0][2], "r+b") as f:                    # a crash-truncated latest file
        f.truncate(os.path.getsize(entries[0][2]) // 2)
    with caplog.at_level(logging.WARNING):
        T.train(small_config(n_iters=40), wd, progress=False)
    assert any("unreadable" in r.getMessage() and "resume_000000025" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert bitwise_equal(final_state(wd), full)              # resumed from step 20, same trajectory


@pytest.mark.parametrize("what", ["loss", "gradient norm"])
def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, what):
    real = T.build_loss_fn
    bad_step = 13

    def poisoned(config, sde, train=True):
        loss_fn = real(config, sde, train)
        calls = {"n": 0}

        def fn(model, batch, generator=None):
            loss = loss_fn(model, batch, generator=generator)
            if not train:
                return loss
            calls["n"] += 1
            if calls["n"] == bad_step:
                if what == "loss":
                    return loss * float("nan")
                p = next(model.parameters())
                return loss + torch.sqrt(p.sum() * 0.)         # finite loss, NaN gradient
            return loss
        return fn

    monkeypatch.setattr(T, "build_loss_fn", poisoned)
    wd = str(tmp_path)
    with pytest.raises(FloatingPointError, match=f"non-finite {what}.*at step {bad_step}") as err:
        T.train(small_config(n_iters=40), wd, progress=False)
    assert "ckpt_000000010.pth (step 10)" in str(err.value)
    mgr = CheckpointManager(T.checkpoint_dir(wd))
    assert [(s, k) for s, k, _ in mgr.list()] == [(10, "ckpt")]   # nothing after the bad step
    state = final_state(wd)
    assert state["step"] == 10 and all(torch.isfinite(v).all() for v in flat(state, "model"))


def test_nothing_to_do_and_untrained_checkpoint(tmp_path):
    wd = str(tmp_path)
    T.train(small_config(n_iters=0), wd, progress=False)      # an untrained model, for baselines
    assert final_state(wd)["step"] == 0
    T.train(small_config(n_iters=5), wd, progress=False)
    before = os.path.getmtime(CheckpointManager(T.checkpoint_dir(wd)).list()[0][2])
    T.train(small_config(n_iters=3), wd, progress=False)      # already past n_iters: no new write
    assert final_state(wd)["step"] == 5
    assert os.path.getmtime(CheckpointManager(T.checkpoint_dir(wd)).list()[0][2]) == before


def test_lr_warmup():
    c = small_config()
    c.optim.warmup, c.optim.lr = 100, 2e-4
    assert [T.lr_at(c, s) for s in (1, 50, 100, 5000)] == pytest.approx([2e-6, 1e-4, 2e-4, 2e-4])
    c.optim.warmup = 0
    assert T.lr_at(c, 1) == 2e-4


def test_draw_batch_shards_and_flips():
    data = torch.arange(100 * 3 * 2 * 2, dtype=torch.float32).reshape(100, 3, 2, 2)
    full = T.draw_batch(data, torch.Generator().manual_seed(0), 8)
    shards = [T.draw_batch(data, torch.Generator().manual_seed(0), 8, rank=r, world_size=2) for r in (0, 1)]
    assert torch.equal(torch.cat(shards), full)               # ranks see disjoint halves of one global batch
    flipped = T.draw_batch(data, torch.Generator().manual_seed(0), 64, random_flip=True)
    plain = T.draw_batch(data, torch.Generator().manual_seed(0), 64)
    same = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54


def test_bad_config_raises_before_training(tmp_path):
    c = small_config()
    c.data.shape = (3,)
    with pytest.raises(ValueError, match="config.data.shape"):
        T.train(c, str(tmp_path), progress=False)
    c = small_config()
    c.training.sde = "nosuchsde"
    with pytest.raises(ValueError, match="config.training.sde"):
        T.train(c, str(tmp_path), progress=False)
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_exact_resume_image_model_with_dropout_and_flips(tmp_path):
    """Bitwise resume also holds for a U-Net with dropout (torch RNG) and random flips (data RNG)."""
    from configs.ve.digits import get_config as ve_digits

    def cfg(n_iters):
        c = ve_digits()
        c.model.nf, c.model.ch_mult, c.model.num_res_blocks = 8, (1, 2), 1
        c.model.attn_resolutions, c.model.dropout = (), 0.1
        c.data.random_flip = True
        c.training.update(dict(batch_size=8, n_iters=n_iters, log_freq=2, eval_freq=0, snapshot_freq=0,
                               snapshot_freq_for_preemption=0, snapshot_sampling=False))
        return c

    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    T.train(cfg(6), full, progress=False)
    T.train(cfg(3), part, progress=False)
    T.train(cfg(6), part, progress=False)
    a, b = final_state(full), final_state(part)
    assert a["step"] == b["step"] == 6 and bitwise_equal(a, b)
