"""``main.py --mode import`` on a checkpoint of the original code, then the other modes on the workdir;
the recorded config refuses a mismatched one with one ``error:`` line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fixture_paths import shared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = shared("score_sde_pytorch", "ddpmpp")

CONFIG = '''
import json
from configs.from_score_sde import from_score_sde
from workflows.options import CONTROLLABLE_DEFAULTS
import ml_collections


def get_config():
    config = from_score_sde(json.load(open({config_json!r})))
    config.data.path = {data!r}
    config.sampling.method = "ode"
    config.sampling.rtol = config.sampling.atol = 1e-3
    config.sampling.num_samples = config.sampling.batch_size = 4
    config.eval.batch_size, config.eval.rtol, config.eval.atol = 2, 1e-3, 1e-3
    config.training.num_threads = 1
    config.controllable = ml_collections.ConfigDict(dict(CONTROLLABLE_DEFAULTS, num=2))
    config.training.sde = {sde!r}
    return config
'''


def write_config(tmp_path, sde="vpsde") -> str:
    data = tmp_path / "images.npz"
    if not data.exists():
        rng = np.random.default_rng(0)
        np.savez(data, x_train=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
                 x_test=rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    path = tmp_path / f"config_{sde}.py"
    path.write_text(CONFIG.format(config_json=os.path.join(FIXTURE, "config.json"), data=str(data), sde=sde))
    return str(path)


def run(config: str, workdir, mode: str, *extra):
    cmd = [sys.executable, "main.py", "--config", config, "--workdir", str(workdir), "--mode", mode,
           "--noprogress", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_import_then_sample_likelihood_inpaint(tmp_path):
    if not os.path.isdir(FIXTURE):
        pytest.skip(f"fixture folder {FIXTURE} is not there")
    config, wd = write_config(tmp_path), tmp_path / "run"
    p = run(config, wd, "import", f"--checkpoint={FIXTURE}/checkpoint.pth")
    assert p.returncode == 0, p.stderr
    ckpt = wd / "checkpoints" / "ckpt_000000002.pth"
    state = torch.load(ckpt, weights_only=True)
    assert state["config"]["training"]["sde"] == "vpsde" and state["extra"]["source"] == "score_sde_pytorch"

    # the imported EMA weights reproduce the original's EMA output
    import importlib.util
    from training.run import open_run
    spec = importlib.util.spec_from_file_location("cfg", config)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    trained = open_run(mod.get_config(), str(wd), device="cpu")
    io = torch.load(os.path.join(FIXTURE, "io.pt"), weights_only=True)
    with torch.no_grad():
        out = trained.model(io["x"], io["labels"])
    assert float((out - io["out_ema"]).norm() / io["out_ema"].norm()) < 1e-5

    assert run(config, wd, "import", f"--checkpoint={FIXTURE}/checkpoint.pth").returncode == 2  # not twice
    for mode, extra in (("sample", ["--num=4"]), ("likelihood", ["--num=2"]), ("inpaint", [])):
        p = run(config, wd, mode, *extra)
        assert p.returncode == 0, (mode, p.stderr[-2000:])
    stats = json.load(open(next((wd / "samples").glob("stats_ode_*_n4_2.json"))))   # named by the settings
    assert stats["nfe"] > 0
    assert any(name.endswith(".png") for name in os.listdir(wd / "inpaint"))

    wrong = write_config(tmp_path, sde="vesde")
    p = run(wrong, wd, "sample", "--num=4")
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: config.training.sde is 'vesde'") and "vpsde" in lines[-1], p.stderr


def test_import_needs_a_checkpoint_and_a_matching_config(tmp_path):
    if not os.path.isdir(FIXTURE):
        pytest.skip(f"fixture folder {FIXTURE} is not there")
    config = write_config(tmp_path)
    p = run(config, tmp_path / "a", "import")
    assert p.returncode == 2 and "--checkpoint" in p.stderr
    p = run("configs/ve/cifar10_ncsnpp_continuous.py", tmp_path / "b", "import",
            f"--checkpoint={FIXTURE}/checkpoint.pth")
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: config does not match")
    assert not (tmp_path / "b" / "checkpoints").exists()           # nothing half-written


def test_recorded_config_refuses_what_changes_the_model_and_allows_the_rest():
    from configs.vp.digits import get_config
    from models import get_model
    from training.checkpoint import capture_state
    from training.run_config import check_recorded, differences
    config = get_config()
    state = capture_state(3, get_model(config), config=config)
    check_recorded(state, config, "ckpt.pth")
    other = get_config()
    other.training.n_iters, other.model.ema_rate, other.sampling.snr, other.optim.lr = 9, 0.5, 0.3, 1.
    check_recorded(state, other, "ckpt.pth")                     # training / sampling settings may change
    for section, key, value in (("training", "sde", "vesde"), ("model", "nf", 32), ("data", "shape", (1, 16, 16)),
                                ("model", "beta_max", 10.), ("training", "continuous", False),
                                ("data", "centered", False)):
        bad = get_config()
        setattr(getattr(bad, section), key, value)
        with pytest.raises(ValueError, match=rf"config\.{section}\.{key} is"):
            check_recorded(state, bad, "ckpt.pth")
    assert differences(state["config"], config) == []
    check_recorded({"step": 1}, bad, "old.pth")                  # an old checkpoint without a record
