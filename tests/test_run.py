"""Opening a trained run (training/run.py) and the modes that use one (workflows/): the EMA weights of the
newest readable checkpoint, one-line errors, and no training loss built on the way."""
import json
import os

import pytest
import torch

from configs.vp.toy2d import get_config as vp_toy2d
from training.checkpoint import CheckpointManager, checkpoint_dir, read_latest_checkpoint
from training.run import open_run
from training.train import train


def tiny_config(n_iters=6):
    c = vp_toy2d()
    c.model.nf, c.model.n_layers, c.model.num_scales = 32, 2, 100
    c.model.ema_rate = 0.5                       # the EMA moves visibly away from the weights in 6 steps
    c.data.n_train, c.data.n_test = 500, 200
    c.training.update(dict(batch_size=32, n_iters=n_iters, log_freq=3, eval_freq=0, snapshot_freq=0,
                           snapshot_freq_for_preemption=0, snapshot_sampling=False, num_threads=1))
    c.optim.lr = 1e-2
    c.sampling.method = "ode"
    c.sampling.rtol = c.sampling.atol = 1e-3
    c.eval.num_samples, c.eval.bpd_num_batches, c.eval.batch_size = 64, 1, 16
    c.eval.rtol = c.eval.atol = 1e-3
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    wd = str(tmp_path_factory.mktemp("run"))
    train(tiny_config(), wd, progress=False)
    return wd


def test_open_run_loads_the_ema_weights_of_the_newest_checkpoint(trained):
    cfg = tiny_config()
    ckpt = read_latest_checkpoint(trained)
    run = open_run(cfg, trained, device="cpu")
    assert run.step == ckpt.step == 6 and run.checkpoint == ckpt.path and run.weights == "ema"
    assert not run.model.training and run.data.shape == (2,) and run.data.n_bins is None
    params = [p.detach() for p in run.model.parameters()]
    assert all(torch.equal(p, e) for p, e in zip(params, ckpt.state["ema"]["shadow_params"]))
    raw = open_run(cfg, trained, device="cpu", which="raw")
    assert all(torch.equal(v, ckpt.state["model"][k]) for k, v in raw.model.state_dict().items())
    assert not all(torch.equal(p, q) for p, q in zip(params, raw.model.parameters()))   # EMA != raw
    x = torch.zeros(3, 2)
    t = torch.full((3,), 0.5)
    assert run.score_fn(x, t).shape == (3, 2)
    assert torch.equal(run.test_data(), run.test_data()) and run.test_data().shape == (200, 2)


def test_open_run_errors(trained, tmp_path):
    cfg = tiny_config()
    with pytest.raises(FileNotFoundError, match="^no checkpoint in"):
        open_run(cfg, str(tmp_path / "empty"))
    cfg.model.nf = 16                            # another architecture than the checkpoint's
    with pytest.raises(ValueError, match="_000000006.pth.*config.model"):
        open_run(cfg, trained)
    cfg = tiny_config()
    cfg.sampling.predictor = "rk4"
    with pytest.raises(ValueError, match="config.sampling.predictor"):
        open_run(cfg, trained)
    broken = tmp_path / "broken"
    os.makedirs(checkpoint_dir(str(broken)))
    with open(CheckpointManager(checkpoint_dir(str(broken))).path(3), "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(FileNotFoundError, match="^no readable checkpoint in"):
        open_run(tiny_config(), str(broken))


def test_modes_on_a_trained_run_build_no_loss(trained, monkeypatch, capsys):
    """sample / likelihood / encode / eval through the workflows main.py dispatches to, with every way of
    building a loss replaced by one that fails; the same replacement does stop --mode train."""
    import training.losses
    from workflows import WORKFLOWS

    def no_loss(*args, **kwargs):
        raise AssertionError("a loss function was built")

    monkeypatch.setattr(training.losses, "get_loss_fn", no_loss)
    cfg = tiny_config()
    assert WORKFLOWS["sample"].run(cfg, trained, progress=False, num=32) == 0
    with open(os.path.join(trained, "samples", "stats_ode_6.json")) as f:
        stats = json.load(f)
    assert stats["num_samples"] == 32 and stats["nfe"] > 0
    assert WORKFLOWS["likelihood"].run(cfg, trained, progress=False, num=8) == 0
    assert WORKFLOWS["encode"].run(cfg, trained, progress=False, num=8, decode=False) == 0
    assert WORKFLOWS["eval"].run(cfg, trained, progress=False, eval_folder="eval") == 0
    out = capsys.readouterr()
    assert "32 samples (ode)" in out.out and "NLL on 8 test points" in out.out and out.err == ""
    with pytest.raises(AssertionError, match="a loss function was built"):   # the replacement bites
        WORKFLOWS["train"].run(tiny_config(n_iters=8), trained, progress=False)


def test_workflow_registry_options_match_the_functions():
    import inspect

    from workflows import WORKFLOWS
    for name, w in WORKFLOWS.items():
        params = inspect.signature(w.run).parameters
        assert "progress" in params, name
        assert all(o in params for o in w.options), (name, w.options)
    assert {n for n, w in WORKFLOWS.items() if w.distributed} == {"train", "eval", "sample", "likelihood", "encode"}
