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


# ----------------------------------------------------------------------------- issue 10: nothing lost
def _garble(path):
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 damaged")


def test_unreadable_checkpoints_never_restart_or_prune(uninterrupted, tmp_path, capsys):
    """All checkpoints unreadable: training is refused (files untouched) unless
    training.restart_from_scratch; unreadable files at higher steps never get new checkpoints pruned."""
    from workflows import mode_train
    _, full = uninterrupted
    wd = str(tmp_path / "run")
    T.train(small_config(n_iters=10), wd, progress=False)
    mgr = CheckpointManager(T.checkpoint_dir(wd), keep=2)
    for step in (100, 200):
        _garble(mgr.path(step))
    for _, _, p in mgr.list():
        _garble(p)
    before = {p: open(p, "rb").read() for _, _, p in mgr.list()}
    with pytest.raises(ValueError, match=r"none of the 3 checkpoint files.*readable.*restart_from_scratch"):
        T.train(small_config(n_iters=40), wd, progress=False)
    assert {p: open(p, "rb").read() for _, _, p in mgr.list()} == before
    capsys.readouterr()
    assert mode_train(small_config(n_iters=40), wd, progress=False) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "restart_from_scratch" in err[0]

    T.train(small_config(n_iters=40, restart_from_scratch=True), wd, progress=False)
    assert [(s, k) for s, k, _ in mgr.list()] == [(200, "ckpt"), (100, "ckpt"), (40, "ckpt"), (30, "ckpt")]
    assert bitwise_equal(final_state(wd), full)        # trained from step 0, like the uninterrupted run

    # resuming below unreadable files: the new checkpoints are kept, the run ends where it should
    wd2 = str(tmp_path / "resume")
    T.train(small_config(n_iters=25), wd2, progress=False)
    mgr2 = CheckpointManager(T.checkpoint_dir(wd2), keep=2)
    for step in (100, 200):
        _garble(mgr2.path(step))
    T.train(small_config(n_iters=40), wd2, progress=False)
    assert [(s, k) for s, k, _ in mgr2.list()] == [(200, "ckpt"), (100, "ckpt"), (40, "ckpt"), (30, "ckpt")]
    assert bitwise_equal(final_state(wd2), full)


def test_splits_are_checked_before_training(tmp_path, monkeypatch):
    """An empty test split with evaluation on is refused before any work; without evaluation it trains."""
    from scoredata import registry
    real = registry.DATASETS["toy2d"]

    def load(config, split):
        x = real.load(config, split)
        return x if split == "train" else x[:0]

    monkeypatch.setitem(registry.DATASETS, "toy2d", registry.DatasetSpec(load, image=False, levels=real.levels))
    wd = str(tmp_path)
    with pytest.raises(ValueError, match=r"test split.*empty.*config\.training\.eval_freq"):
        T.train(small_config(n_iters=20), wd, progress=False)
    assert not CheckpointManager(T.checkpoint_dir(wd)).list()
    T.train(small_config(n_iters=10, eval_freq=0), wd, progress=False)
    assert final_state(wd)["step"] == 10
    monkeypatch.setitem(registry.DATASETS, "toy2d", registry.DatasetSpec(
        lambda config, split: real.load(config, split)[:0], image=False, levels=real.levels))
    with pytest.raises(ValueError, match=r"train split.*empty"):
        T.train(small_config(n_iters=20, eval_freq=0), str(tmp_path / "b"), progress=False)

    def broken(config, split):                     # bad data in the test split: refused even without evaluation
        if split == "test":
            raise ValueError("config.data.path: image 'test/7.png' could not be read")
        return real.load(config, split)

    monkeypatch.setitem(registry.DATASETS, "toy2d", registry.DatasetSpec(broken, image=False, levels=real.levels))
    with pytest.raises(ValueError, match=r"test/7\.png"):
        T.train(small_config(n_iters=20, eval_freq=0), str(tmp_path / "c"), progress=False)


def test_evaluation_failure_keeps_the_step(uninterrupted, tmp_path, monkeypatch):
    """An evaluation that fails at a step without a scheduled checkpoint: that step's state is saved
    first, the error names it, and the resumed run ends bitwise equal to the uninterrupted one."""
    _, full = uninterrupted
    real = T._eval_loss

    def failing(config, loss_fn, model, ema, test_data, step, device):
        if step == 15:
            raise RuntimeError("out of memory in the evaluation")
        return real(config, loss_fn, model, ema, test_data, step, device)

    monkeypatch.setattr(T, "_eval_loss", failing)
    wd = str(tmp_path)
    with pytest.raises(RuntimeError, match=r"evaluation at step 15 failed.*out of memory.*resume_000000015"):
        T.train(small_config(n_iters=40, eval_freq=15), wd, progress=False)
    assert final_state(wd)["step"] == 15
    monkeypatch.setattr(T, "_eval_loss", real)
    T.train(small_config(n_iters=40), wd, progress=False)
    assert bitwise_equal(final_state(wd), full)


@pytest.mark.parametrize("overrides, key", [
    ({"training.batch_size": -4}, "config.training.batch_size"),
    ({"training.batch_size": 0}, "config.training.batch_size"),
    ({"training.keep_checkpoints": 0}, "config.training.keep_checkpoints"),
    ({"training.eval_freq": -1}, "config.training.eval_freq"),
    ({"training.log_freq": -2}, "config.training.log_freq"),
    ({"training.mixed_precision": "fp8"}, "config.training.mixed_precision"),
    ({"optim.lr": -1.}, "config.optim.lr"),
    ({"optim.lr": float("nan")}, "config.optim.lr"),
    ({"optim.beta1": 1.5}, "config.optim.beta1"),
    ({"optim.eps": 0.}, "config.optim.eps"),
    ({"optim.warmup": -1}, "config.optim.warmup"),
    ({"optim.weight_decay": -0.1}, "config.optim.weight_decay"),
    ({"eval.batch_size": 0}, "config.eval.batch_size"),
    ({"sampling.corrector": "langevin", "sampling.n_steps_each": 0}, "config.sampling.n_steps_each"),
])
def test_bad_training_settings_are_refused_naming_the_key(tmp_path, overrides, key):
    c = small_config()
    for dotted, value in overrides.items():
        section, name = dotted.split(".")
        c[section][name] = value
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        T.train(c, str(tmp_path), progress=False)
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_fp16_is_refused_without_cuda_and_honoured_with_it(tmp_path):
    c = small_config(n_iters=4, mixed_precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"config\.training\.mixed_precision='fp16' needs a CUDA device"):
            T.train(c, str(tmp_path), progress=False)
        return
    c.device = "cuda"
    seen = []
    real = T.build_loss_fn

    def spy(config, sde, train=True):
        fn = real(config, sde, train)

        def loss(model, batch, generator=None, **kw):
            seen.append(torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.float16)
            return fn(model, batch, generator=generator, **kw)
        return loss

    T.build_loss_fn, saved = spy, T.build_loss_fn
    try:
        T.train(c, str(tmp_path), progress=False)
    finally:
        T.build_loss_fn = saved
    state = final_state(str(tmp_path))
    assert seen and all(seen) and state["step"] == 4 and "scale" in state["extra"]["grad_scaler"]


def test_workdir_that_is_a_file_or_read_only(tmp_path, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("x")
    for wd in (f, f / "sub"):
        with pytest.raises(ValueError, match=r"workdir.*afile.* is a file"):
            T.train(small_config(n_iters=5), str(wd), progress=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:                       # root ignores permissions: simulated below
        ro.chmod(0o555)
        try:
            with pytest.raises(ValueError, match=r"cannot write .*/ro \(Permission denied\)"):
                T.train(small_config(n_iters=5), str(ro), progress=False)
        finally:
            ro.chmod(0o755)
    from training import workdir as W
    real = W.tempfile.mkstemp

    def denied(*a, dir=None, **k):
        if str(dir).startswith(str(ro / "checkpoints")):
            raise PermissionError(13, "Permission denied", os.path.join(dir, ".write_probe.x"))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(W.tempfile, "mkstemp", denied)
    with pytest.raises(ValueError, match=r"cannot write .*/ro/checkpoints \(Permission denied\)"):
        T.train(small_config(n_iters=5), str(ro), progress=False)
    assert not os.path.exists(ro / "log.csv")


def test_second_trainer_on_a_workdir_is_refused(tmp_path):
    """A live lock holder (another process) makes a second trainer refuse; once it dies (SIGKILL: the
    kernel drops its lock) the lock file left behind does not block."""
    import signal
    import time
    from training.workdir import WorkdirLock
    wd = str(tmp_path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the first trainer: hold the lock until killed
        try:
            os.close(r)
            WorkdirLock(wd).acquire()
            os.write(w, b"1")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    try:
        with pytest.raises(ValueError, match=rf"another trainer \(pid {pid}.*holds.*train\.lock"):
            T.train(small_config(n_iters=5), wd, progress=False)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert os.path.exists(os.path.join(wd, "train.lock"))      # stale: left by the killed process
    T.train(small_config(n_iters=5), wd, progress=False)
    assert final_state(wd)["step"] == 5
    assert not os.path.exists(os.path.join(wd, "train.lock"))  # released and removed at the end
