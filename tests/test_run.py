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
    with open(os.path.join(trained, "samples", "stats_ode_rk45_tol0.001_n32_6.json")) as f:
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


# ----------------------------------------------------------------------------- issue 10: outputs and --num
def test_sampler_and_likelihood_tags_tell_settings_apart():
    from training.names import likelihood_tag, sampler_tag
    base = tiny_config()
    variants = {"ode": {}, "ode_tol": {"sampling.rtol": 1e-2}, "ode_atol": {"sampling.atol": 1e-2},
                "ode_method": {"sampling.ode_method": "dopri5"}, "ode_raw": {"sampling.noise_removal": False},
                "pc": {"sampling.method": "pc"}, "pc_pred": {"sampling.method": "pc", "sampling.predictor": "euler_maruyama"},
                "pc_corr": {"sampling.method": "pc", "sampling.corrector": "langevin"},
                "pc_snr": {"sampling.method": "pc", "sampling.corrector": "langevin", "sampling.snr": 0.2},
                "pc_steps": {"sampling.method": "pc", "sampling.corrector": "langevin", "sampling.n_steps_each": 2},
                "pc_N": {"sampling.method": "pc", "model.num_scales": 50},
                "pc_pf": {"sampling.method": "pc", "sampling.probability_flow": True},
                "pc_eps": {"sampling.method": "pc", "sampling.eps": 1e-2},
                "raw_weights": {"eval.ckpt": "raw"}}
    tags = {}
    for name, over in variants.items():
        c = tiny_config()
        for dotted, v in over.items():
            sec, key = dotted.split(".")
            c[sec][key] = v
        tags[name] = sampler_tag(c)
    assert len(set(tags.values())) == len(tags), tags
    assert tags["ode"] == "ode_rk45_tol0.001" and tags["pc"] == "pc_reverse_diffusion-none_N100", tags
    assert tags["pc_corr"] == "pc_reverse_diffusion-langevin_N100_snr0.16x1"
    base.eval.hutchinson = "rademacher"
    lik = {likelihood_tag(base, 8), likelihood_tag(base, 16)}
    base.eval.hutchinson = "exact"
    lik |= {likelihood_tag(base, 8)}
    assert len(lik) == 3 and likelihood_tag(base, 8) == "exact_tol0.001_n8"


def test_outputs_with_different_settings_do_not_overwrite(trained, capsys):
    from workflows import WORKFLOWS
    wd = trained
    runs = [({}, 16), ({"rtol": 1e-2, "atol": 1e-2}, 16), ({}, 24), ({"method": "pc"}, 16)]
    for over, num in runs:
        cfg = tiny_config()
        cfg.sampling.update(over)
        assert WORKFLOWS["sample"].run(cfg, wd, progress=False, num=num) == 0
    stats = sorted(f for f in os.listdir(os.path.join(wd, "samples")) if f.startswith("stats_"))
    assert {"stats_ode_rk45_tol0.001_n16_6.json", "stats_ode_rk45_tol0.01_n16_6.json",
            "stats_ode_rk45_tol0.001_n24_6.json", "stats_pc_reverse_diffusion-none_N100_n16_6.json"} <= set(stats)
    for name in stats:                           # each file still holds its own run
        with open(os.path.join(wd, "samples", name)) as f:
            s = json.load(f)
        assert os.path.basename(s["npz"]) == name.replace("stats_", "samples_").replace(".json", ".npz")
    cfg = tiny_config()
    for num in (8, 12):
        assert WORKFLOWS["likelihood"].run(cfg, wd, progress=False, num=num) == 0
    assert {"likelihood_exact_tol0.001_n8_6.json", "likelihood_exact_tol0.001_n12_6.json"} <= \
        set(os.listdir(os.path.join(wd, "likelihood")))
    for decode in (False, True):
        assert WORKFLOWS["encode"].run(cfg, wd, progress=False, num=8, decode=decode) == 0
    assert {"latents_ode_tol0.001_n8_6.npz", "latents_ode_tol0.001_n8_decoded_6.npz"} <= \
        set(os.listdir(os.path.join(wd, "latents")))
    for tol in (1e-3, 1e-2):
        cfg = tiny_config()
        cfg.sampling.rtol = cfg.sampling.atol = tol
        assert WORKFLOWS["eval"].run(cfg, wd, progress=False, eval_folder="eval_names") == 0
    names = set(os.listdir(os.path.join(wd, "eval_names")))
    assert {"metrics_ode_rk45_tol0.001_n64_exact_tol0.001_n16_6.json",
            "metrics_ode_rk45_tol0.01_n64_exact_tol0.001_n16_6.json", "metrics.json"} <= names, names
    with open(os.path.join(wd, "eval_names", "metrics.json")) as f:
        assert "tol0.01" in json.load(f)["metrics_json"]       # metrics.json: the latest evaluation


@pytest.mark.parametrize("mode", ["sample", "likelihood", "encode"])
def test_negative_num_is_refused(trained, capsys, mode):
    from workflows import WORKFLOWS
    assert WORKFLOWS[mode].run(tiny_config(), trained, progress=False, num=-3) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --num must be >= 0"), err


def test_an_os_error_is_one_line_naming_the_path(trained, tmp_path, capsys):
    """An output folder that cannot be created (here: a file where workdir/samples should be)."""
    import shutil
    from workflows import WORKFLOWS
    wd = str(tmp_path / "copy")
    shutil.copytree(os.path.join(trained, "checkpoints"), os.path.join(wd, "checkpoints"))
    with open(os.path.join(wd, "samples"), "w") as f:
        f.write("in the way")
    assert WORKFLOWS["sample"].run(tiny_config(), wd, progress=False, num=8) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot use ") and "samples" in err[0] and \
        "FileExistsError" in err[0], err
