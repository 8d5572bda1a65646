"""Released ermongroup/ncsnv2 models: NCSNv2 / NCSNv2Deeper / NCSNv2Deepest compute the original function
and the importer reads the authors' checkpoint format (fixtures made with the original code, read as
they are; the bad files are written into tmp_path)."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os

import numpy as np
import pytest
import torch

import configs
import models
from fixture_paths import shared
from models.importers import IMPORTERS, import_checkpoint
from samplers.correctors import CORRECTORS
from samplers.pc import time_grid
from sde_lib import get_sde

torch.set_num_threads(1)
ROOT = shared("ncsnv2")
FIXTURES = ("ncsnv2_cifar10", "ncsnv2_cifar10_rescaled", "ncsnv2deeper_church", "ncsnv2deepest_ffhq")
CLASS_TO_NAME = {"NCSNv2": "ncsnv2", "NCSNv2Deeper": "ncsnv2_deeper", "NCSNv2Deepest": "ncsnv2_deepest"}


def fixture(name: str):
    folder = os.path.join(ROOT, name)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture folder {folder} is not there")
    with open(os.path.join(folder, "config.json")) as f:
        original = json.load(f)
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    io = torch.load(os.path.join(folder, "io.pt"), weights_only=True)
    return folder, original, meta, io


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def save_legacy(obj, path) -> str:
    torch.save(obj, path, _use_new_zipfile_serialization=False)   # the format the authors' files have
    return str(path)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_outputs_and_scores_match_the_original(name):
    folder, original, meta, io = fixture(name)
    config = configs.from_ncsnv2(original)
    assert config.model.name == CLASS_TO_NAME[meta["model_class"]]
    assert config.data.centered is original["data"]["rescaled"]
    out = import_checkpoint(os.path.join(folder, "checkpoint.pth"), config)          # source detected
    assert out["source"] == "ncsnv2" and out["step"] == 2
    model = models.get_model(config).eval()
    assert models.count_parameters(model) == meta["n_params"]
    sde = get_sde(config)
    labels = io["labels"]
    t = 1. - labels.double() / (sde.N - 1)               # the times whose discrete label is labels
    assert torch.equal(sde.model_label(t, False).long(), labels)
    for which in ("model", "ema"):
        model.load_state_dict(out[which])
        score_fn = models.get_score_fn(sde, model, continuous=False)
        with torch.no_grad():
            assert rel(model(io["x"], labels), io[f"out_{which}"]) < 1e-5
            assert rel(score_fn(io["x"], t.float()), io[f"out_{which}"]) < 1e-5
    # the EMA weights are really other weights (a wrong EMA mapping would not be caught otherwise)
    assert rel(io["out_ema"], io["out_model"]) > 1e-2
    assert all(not torch.equal(out["model"][k], out["ema"][k]) for k, _ in model.named_parameters())


# parameter counts of the released networks, measured by building each original config
# (ermongroup/ncsnv2@1bcea03 configs/<name>.yml) with the original code (runners/ncsn_runner.get_model)
RELEASED = {"cifar10": 29_694_083, "celeba": 29_694_083, "church": 83_445_379, "tower": 83_445_379,
            "bedroom": 83_445_379, "ffhq": 94_132_611}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_configs_have_the_original_parameter_count_and_sampler(name):
    module = importlib.import_module(f"configs.ve.ncsnv2.{name}")
    config, original = module.get_config(), module.ORIGINAL
    with torch.device("meta"):
        assert models.count_parameters(models.get_model(config)) == RELEASED[name]
    m, o = config.model, original["model"]
    assert (m.sigma_max, m.sigma_min, m.num_scales, m.nf) == (o["sigma_begin"], o["sigma_end"],
                                                              o["num_classes"], o["ngf"])
    assert config.training.sde == "vesde" and config.training.continuous is False
    # the PC grid's labels are the ladder indices 0 .. L-1, and the "ald" step at level i is the
    # original's step_lr (sigma_i / sigma_L)^2 (x <- x + e score + sqrt(2 e) z, e = alpha / 2)
    sde = get_sde(config)
    ts = time_grid(sde, config.sampling.eps, sde.N)
    assert torch.equal(sde.model_label(ts, False), torch.arange(sde.N, dtype=ts.dtype))
    s = config.sampling
    assert (s.predictor, s.corrector, s.n_steps_each) == ("none", "ald", original["sampling"]["n_steps_each"])
    corrector = CORRECTORS["ald"](sde, None, s.snr, s.n_steps_each, eps=s.eps)
    ladder = torch.exp(torch.linspace(math.log(m.sigma_max), math.log(m.sigma_min), sde.N, dtype=torch.float64))
    step = corrector.step_size(None, ts.double(), None, None) / 2
    want = original["sampling"]["step_lr"] * (ladder / ladder[-1]) ** 2
    assert float(((step - want) / want).abs().max()) < 1e-3      # sigma(t_i) = sigma_i (smax/smin)^(eps i/(L-1))


def test_cifar10_ncsnv2_is_the_released_config():
    from configs.ve.cifar10_ncsnv2 import get_config as alias
    from configs.ve.ncsnv2.cifar10 import get_config
    assert alias().to_dict() == get_config().to_dict()


# ----------------------------------------------------------------------------------- bad input
def _cifar():
    folder, original, _, _ = fixture("ncsnv2_cifar10")
    return os.path.join(folder, "checkpoint.pth"), original


def test_mismatched_config_names_the_weight():
    path, original = _cifar()
    config = configs.from_ncsnv2(dict(original, model=dict(original["model"], ngf=4)))
    with pytest.raises(ValueError, match=r"'begin_conv\.weight' has shape \(8, 3, 3, 3\)"):
        import_checkpoint(path, config)
    config = configs.from_ncsnv2(dict(original, model=dict(original["model"], num_classes=231)))
    with pytest.raises(ValueError, match=r"'module\.sigmas'.*num_scales"):
        import_checkpoint(path, config)
    config = configs.from_ncsnv2(original)
    config.model.name = "ncsnv2_deepest"
    with pytest.raises(ValueError, match=r"config.model.name='ncsnv2_deepest' builds another network than "
                                         r"the checkpoint's NCSNv2 \(its stages are res1, res2, res3, res4\)"):
        import_checkpoint(path, config)
    config.model.name = "ncsnpp"
    with pytest.raises(ValueError, match="config.model.name='ncsnpp' cannot hold"):
        import_checkpoint(path, config, source="ncsnv2")


def test_damaged_and_foreign_files_are_refused(tmp_path):
    path, original = _cifar()
    config = configs.from_ncsnv2(original)
    with open(path, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged|truncated"):
        import_checkpoint(str(truncated), config)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(ValueError, match="damaged|truncated"):
        import_checkpoint(str(garbage), config)
    state = torch.load(path, weights_only=True)
    # a score_sde_pytorch-style dict is not this format, and the authors' list is not score_sde's
    score_sde = save_legacy({"model": state[0], "ema": {}, "optimizer": {}, "step": 2}, tmp_path / "sde.pth")
    with pytest.raises(ValueError, match="not an? (ermongroup/)?ncsnv2 checkpoint"):
        import_checkpoint(score_sde, config, source="ncsnv2")
    assert not IMPORTERS["score_sde_pytorch"].detect(path, state) and IMPORTERS["ncsnv2"].detect(path, state)
    assert not IMPORTERS["ncsnv2"].detect(str(tmp_path), None)                       # a folder (diffusers)
    with pytest.raises(ValueError, match="not an? (ermongroup/)?ncsnv2 checkpoint"):
        import_checkpoint(save_legacy([state[0], 3, 0, 2], tmp_path / "odd.pth"), config, source="ncsnv2")
    # objects outside the safe-load allowlist: a numpy array, an argparse.Namespace (the original's config)
    for bad in (np.zeros(3), argparse.Namespace(ngf=8)):
        file = save_legacy(list(state[:4]) + [{"x": bad}], tmp_path / f"{type(bad).__name__}.pth")
        with pytest.raises(ValueError, match="allowlist"):
            import_checkpoint(file, config)
    assert import_checkpoint(path, config)["source"] == "ncsnv2"   # the good file still reads


def test_ema_entry_is_checked_and_optional(tmp_path):
    path, original = _cifar()
    config = configs.from_ncsnv2(original)
    state = torch.load(path, weights_only=True)
    shadow = dict(state[4])
    del shadow["res2.0.shortcut.conv.weight"]
    file = save_legacy(list(state[:4]) + [shadow], tmp_path / "ema_missing.pth")
    with pytest.raises(ValueError, match=r"EMA lacks parameter 'res2\.0\.shortcut\.conv\.weight'"):
        import_checkpoint(file, config)
    shadow = dict(state[4], **{"res1.0.conv1.weight": torch.zeros(3)})
    file = save_legacy(list(state[:4]) + [shadow], tmp_path / "ema_shape.pth")
    with pytest.raises(ValueError, match=r"EMA tensor 'res1\.0\.conv1\.weight' has shape \(3,\)"):
        import_checkpoint(file, config)
    # [model, optimizer, epoch, step] without EMA, saved without DataParallel: EMA = model weights
    plain = {k[len("module."):]: v for k, v in state[0].items()}
    out = import_checkpoint(save_legacy([plain, state[1], 0, 7], tmp_path / "no_ema.pth"), config)
    assert out["step"] == 7 and all(torch.equal(out["model"][k], out["ema"][k]) for k in out["model"])
    assert torch.equal(out["model"]["begin_conv.weight"], state[0]["module.begin_conv.weight"])


def test_from_ncsnv2_refuses_what_it_cannot_reproduce():
    _, original = _cifar()
    for section, key, value in [("data", "logit_transform", True), ("model", "spec_norm", True),
                                ("model", "sigma_dist", "uniform"), ("training", "anneal_power", 1.),
                                ("data", "dataset", "MNIST"), ("model", "normalization", "GroupNorm")]:
        bad = dict(original, **{section: dict(original[section], **{key: value})})
        with pytest.raises(ValueError, match=f"original.{section}.{key}"):
            configs.from_ncsnv2(bad)
    with pytest.raises(ValueError, match="original.model.ngf is missing"):
        configs.from_ncsnv2(dict(original, model={k: v for k, v in original["model"].items() if k != "ngf"}))
    ns = argparse.Namespace(**{k: argparse.Namespace(**v) for k, v in original.items()})   # yaml.Loader form
    assert configs.from_ncsnv2(ns).to_dict() == configs.from_ncsnv2(original).to_dict()

