"""Checkpoint files: atomic writes, keep-last-K pruning, corrupt-file fallback, weights_only round trip."""
import logging
import os

import pytest
import torch

from training import checkpoint as ck
from training.checkpoint import CheckpointManager, atomic_save, capture_state, load_file, restore_state


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.SiLU(), torch.nn.Linear(8, 3))


def _params(m):
    return [p.detach().clone() for p in m.parameters()]


def _state(step, seed=0):
    m = _model(seed)
    return capture_state(step, m), m


def test_atomic_save_leaves_no_partial_file_on_crash(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pth")
    atomic_save({"step": 1, "w": torch.ones(4)}, path)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial bytes")  # the start of a zip file, then the process "dies"
        raise KeyboardInterrupt("simulated crash while writing")

    monkeypatch.setattr(ck.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.setattr(ck.torch, "save", real_save)
    # the old file is untouched and no temporary file is left behind
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]
    state = load_file(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(4))

    # a crash between writing and renaming: the final name never holds a partial file
    def crashing_replace(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(ck.os, "replace", crashing_replace)
    with pytest.raises(OSError):
        atomic_save({"step": 3, "w": torch.zeros(4)}, str(tmp_path / "new.pth"))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]


def test_keep_last_k_and_resume_pruning(tmp_path):
    mgr = CheckpointManager(str(tmp_path), keep=2)
    for step in (10, 20, 30):
        mgr.save(_state(step)[0], "ckpt")
    mgr.save(_state(35)[0], "resume")
    mgr.save(_state(38)[0], "resume")  # replaces the resume file of step 35
    assert [(s, k) for s, k, _ in mgr.list()] == [(38, "resume"), (30, "ckpt"), (20, "ckpt")]
    mgr.save(_state(40)[0], "ckpt")    # a newer periodic checkpoint supersedes the resume file
    assert [(s, k) for s, k, _ in mgr.list()] == [(40, "ckpt"), (30, "ckpt")]
    assert mgr.latest_step() == 40
    with pytest.raises(ValueError, match="keep"):
        CheckpointManager(str(tmp_path), keep=0)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_latest_falls_back_with_warning(tmp_path, caplog, damage):
    mgr = CheckpointManager(str(tmp_path), keep=3)
    good, m_good = _state(10, seed=1)
    mgr.save(good, "ckpt")
    latest = mgr.save(_state(20, seed=2)[0], "resume")
    size = os.path.getsize(latest)
    with open(latest, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        elif damage == "garbage":
            f.seek(size // 3)
            f.write(os.urandom(64))
        else:
            f.truncate(0)
    with caplog.at_level(logging.WARNING):
        state, path = mgr.load_latest()
    assert state["step"] == 10 and path.endswith("ckpt_000000010.pth")
    assert any("unreadable" in r.getMessage() and os.path.basename(latest) in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    m = _model(seed=99)
    restore_state(state, m)
    assert all(torch.equal(a, b) for a, b in zip(_params(m), _params(m_good)))


def test_no_readable_checkpoint_returns_none(tmp_path, caplog):
    mgr = CheckpointManager(str(tmp_path / "missing"))
    assert mgr.load_latest() is None
    mgr = CheckpointManager(str(tmp_path))
    (tmp_path / "ckpt_000000005.pth").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        assert mgr.load_latest() is None
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_full_state_round_trip_weights_only(tmp_path):
    """Model, Adam state, generator states and the torch RNG survive torch.load(weights_only=True)."""
    m = _model(0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999))
    g_data = torch.Generator().manual_seed(5)
    g_noise = torch.Generator().manual_seed(6)
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(4, 3, generator=g_data)).pow(2).sum().backward()
        opt.step()
    torch.manual_seed(123)
    state = capture_state(3, m, optimizer=opt, generators={"data": g_data, "noise": g_noise})
    assert state["rng"]["generators"]["data"].dtype == torch.uint8
    path = CheckpointManager(str(tmp_path)).save(state)
    expect = (torch.randn(5, generator=g_data), torch.randn(5, generator=g_noise), torch.randn(5))

    loaded = torch.load(path, weights_only=True)  # must not need arbitrary unpickling
    m2 = _model(1)
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-3)
    g2_data, g2_noise = torch.Generator(), torch.Generator()
    torch.manual_seed(0)
    assert restore_state(loaded, m2, optimizer=opt2, generators={"data": g2_data, "noise": g2_noise}) == 3
    got = (torch.randn(5, generator=g2_data), torch.randn(5, generator=g2_noise), torch.randn(5))
    assert all(torch.equal(a, b) for a, b in zip(expect, got))
    assert all(torch.equal(a, b) for a, b in zip(_params(m), _params(m2)))
    for p, p2 in zip(m.parameters(), m2.parameters()):
        assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[p2]["exp_avg_sq"])
    # a wrong restore (different generator state) is detectable by the same check
    assert not torch.equal(torch.randn(5, generator=torch.Generator().manual_seed(5)), expect[0])


def test_atomic_write_text(tmp_path):
    p = str(tmp_path / "m.json")
    ck.atomic_write_text(p, '{"a": 1}')
    ck.atomic_write_text(p, '{"a": 2}')
    assert open(p).read() == '{"a": 2}' and os.listdir(tmp_path) == ["m.json"]


# ----------------------------------------------------------------------------- unreadable files (issue 10, item 1)
def _garbage(mgr, step, kind="ckpt"):
    path = mgr.path(step, kind)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 not a whole checkpoint")
    return path


def test_pruning_counts_only_readable_checkpoints(tmp_path):
    """Unreadable files at higher steps neither count towards ``keep`` nor get a new checkpoint pruned;
    they are left where they are (never deleted)."""
    mgr = CheckpointManager(str(tmp_path), keep=2)
    bad = [_garbage(mgr, 100), _garbage(mgr, 200)]
    for step in (10, 20, 30):
        mgr.save(_state(step)[0], "ckpt")
    names = [(s, k) for s, k, _ in mgr.list()]
    assert names == [(200, "ckpt"), (100, "ckpt"), (30, "ckpt"), (20, "ckpt")]   # 10 pruned, 20 and 30 kept
    assert all(os.path.isfile(p) for p in bad)
    # a fresh manager (a resumed run) finds the same: the newest readable file is step 30
    mgr2 = CheckpointManager(str(tmp_path), keep=2)
    state, path = mgr2.load_latest()
    assert state["step"] == 30 and path.endswith("ckpt_000000030.pth")
    mgr2.save(_state(35)[0], "resume")
    mgr2.save(_state(40)[0], "ckpt")
    assert [(s, k) for s, k, _ in mgr2.list()] == [(200, "ckpt"), (100, "ckpt"), (40, "ckpt"), (30, "ckpt")]
    # readable files older than the loaded one are checked before they are counted
    mgr3 = CheckpointManager(str(tmp_path / "b"), keep=2)
    for step in (10, 20):
        mgr3.save(_state(step)[0], "ckpt")
    _garbage(mgr3, 30)
    with open(mgr3.path(20), "r+b") as f:             # 20 damaged too: only 10 is readable
        f.truncate(100)
    mgr4 = CheckpointManager(str(tmp_path / "b"), keep=2)
    assert mgr4.load_latest()[0]["step"] == 10
    mgr4.save(_state(11)[0], "ckpt")
    assert [s for s, _, _ in mgr4.list()] == [30, 20, 11, 10]   # 10 is one of the two readable ones: kept
    assert mgr4.readable_steps() == [11, 10]


def test_stale_temporary_files_are_removed(tmp_path):
    """A process killed inside ``_atomic_write`` leaves ``.<name>.<random>.tmp``; the next manager that
    takes over the directory removes them (and nothing else)."""
    mgr = CheckpointManager(str(tmp_path), keep=2)
    mgr.save(_state(10)[0], "ckpt")
    stale = tmp_path / ".ckpt_000000020.pth.abc123.tmp"
    stale.write_bytes(b"partial")
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert mgr.remove_temporary_files() == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == ["ckpt_000000010.pth", "notes.txt"]
