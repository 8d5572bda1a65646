"""Released score_sde_pytorch models: the networks compute the original function and the importer reads
the original checkpoints (fixtures made with the original code, read as they are)."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

import configs
import models
from models.importers import ALLOWED_GLOBALS, import_checkpoint
from fixture_paths import shared
from sde_lib import get_sde

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = shared("score_sde_pytorch")
LOCAL = os.path.join(HERE, "data", "score_sde_original")
FIXTURES = [(SHARED, n) for n in ("ncsnpp_skip", "ncsnpp_residual", "ddpmpp")] + \
           [(LOCAL, n) for n in ("ddpm_vp_discrete", "ncsnpp_ve_discrete")]


def fixture(root: str, name: str):
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture folder {folder} is not there")
    with open(os.path.join(folder, "config.json")) as f:
        config = configs.from_score_sde(json.load(f))
    io = torch.load(os.path.join(folder, "io.pt"), weights_only=True)
    return folder, config, io


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("root,name", FIXTURES, ids=[n for _, n in FIXTURES])
def test_fixture_outputs_and_scores_match_the_original(root, name):
    folder, config, io = fixture(root, name)
    out = import_checkpoint(os.path.join(folder, "checkpoint.pth"), config)
    assert out["source"] == "score_sde_pytorch" and out["step"] >= 2
    model = models.get_model(config).eval()
    sde = get_sde(config)
    score_tol = 1e-5 if config.training.sde == "vesde" else 3e-4   # the original computes std in float32
    for which in ("model", "ema"):
        model.load_state_dict(out[which])
        score_fn = models.get_score_fn(sde, model, continuous=config.training.continuous)
        with torch.no_grad():
            assert rel(model(io["x"], io["labels"]), io[f"out_{which}"]) < 1e-5
            assert torch.equal(sde.model_label(io["t"], config.training.continuous).to(io["labels"].dtype),
                               io["labels"]) or torch.allclose(
                sde.model_label(io["t"], config.training.continuous).double(), io["labels"].double(), rtol=1e-6)
            assert rel(score_fn(io["x"], io["t"]), io[f"score_{which}"]) < score_tol
    # the EMA weights are really different weights (a wrong EMA mapping would not be caught otherwise)
    assert rel(io["out_ema"], io["out_model"]) > 1e-2
    differs = [k for k in out["model"] if not torch.equal(out["model"][k], out["ema"][k])]
    assert len(differs) > len(out["model"]) // 2


# trainable parameter counts of the original networks (measured by building each released config with the
# original code, models.utils.get_model(config.model.name)(config))
RELEASED = {
    "ve/cifar10_ncsnpp": 62693251, "ve/cifar10_ncsnpp_continuous": 62758787,
    "ve/cifar10_ncsnpp_deep_continuous": 107586947, "vp/cifar10_ddpm": 35218947,
    "vp/cifar10_ddpm_continuous": 35218947, "vp/cifar10_ddpmpp": 61804419,
    "vp/cifar10_ddpmpp_continuous": 61804419, "vp/cifar10_ddpmpp_deep_continuous": 106632579,
    "subvp/cifar10_ddpm_continuous": 35218947, "subvp/cifar10_ddpmpp_continuous": 61804419,
    "subvp/cifar10_ddpmpp_deep_continuous": 106632579, "ve/bedroom_ncsnpp_continuous": 65574421,
    "ve/church_ncsnpp_continuous": 65574421, "ve/ffhq_1024_ncsnpp_continuous": 105785880,
    "ve/ffhq_256_ncsnpp_continuous": 65574421, "ve/celebahq_256_ncsnpp_continuous": 65574421,
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_configs_have_the_original_parameter_count(name):
    module = __import__(f"configs.{name.replace('/', '.')}", fromlist=["get_config"])
    config = module.get_config()
    with torch.device("meta"):
        model = models.get_model(config)
    assert models.count_parameters(model) == RELEASED[name]
    sde = get_sde(config)
    assert sde.N == config.model.num_scales and config.sampling.eps == (1e-5 if "ve/" in name else 1e-3)


def test_released_sampler_settings_follow_the_original():
    from configs.ve.ffhq_1024_ncsnpp_continuous import get_config as ffhq
    from configs.vp.cifar10_ddpm import get_config as ddpm
    c = ffhq()
    assert (c.model.sigma_max, c.model.num_scales, c.sampling.snr, c.sampling.corrector) == (1348., 2000, 0.15, "langevin")
    assert c.data.shape == (3, 1024, 1024) and c.model.progressive == "output_skip"
    d = ddpm()
    assert (d.training.continuous, d.sampling.predictor, d.sampling.corrector, d.data.centered) == \
        (False, "ancestral_sampling", "none", True)


# ------------------------------------------------------------------------------------------------- errors
def shared_fixture():
    return fixture(SHARED, "ncsnpp_skip")


@pytest.mark.parametrize("key,value,needle", [
    ("nf", 32, "weight"),
    ("num_res_blocks", 2, "weight"),
    ("progressive", "none", "weight"),
    ("attn_resolutions", (), "weight"),
    ("num_scales", 500, "num_scales"),
    ("sigma_max", 80., "sigma_max"),
])
def test_mismatched_config_names_the_first_differing_weight_or_key(key, value, needle):
    folder, config, _ = shared_fixture()
    setattr(config.model, key, value)
    with pytest.raises(ValueError, match="does not match") as e:
        import_checkpoint(os.path.join(folder, "checkpoint.pth"), config)
    assert needle in str(e.value)


def test_damaged_and_foreign_files_give_clear_errors(tmp_path):
    folder, config, _ = shared_fixture()
    src = os.path.join(folder, "checkpoint.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(src, "rb").read()[:100000])
    with pytest.raises(ValueError, match="damaged|truncated"):
        import_checkpoint(str(truncated), config)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="damaged|not a torch checkpoint"):
        import_checkpoint(str(text), config)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        import_checkpoint(str(empty), config)
    alien = tmp_path / "alien.pth"
    torch.save({"weights": torch.zeros(3)}, alien)
    with pytest.raises(ValueError, match="not in a known format"):
        import_checkpoint(str(alien), config)
    with pytest.raises(ValueError, match="not a score_sde_pytorch checkpoint"):
        import_checkpoint(str(alien), config, source="score_sde_pytorch")
    with pytest.raises(ValueError, match="source must be"):
        import_checkpoint(src, config, source="jax")
    with pytest.raises(FileNotFoundError):
        import_checkpoint(str(tmp_path / "missing.pth"), config)


class _Payload:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Payload.ran = True
    return {}


def test_objects_outside_the_allowlist_are_refused_without_running_them(tmp_path):
    folder, config, _ = shared_fixture()
    with_array = tmp_path / "array.pth"
    torch.save({"model": {}, "ema": None, "step": np.array([1, 2])}, with_array)
    with pytest.raises(ValueError, match="allowlist"):
        import_checkpoint(str(with_array), config)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": _Payload()}, f)
    with pytest.raises(ValueError):
        import_checkpoint(str(evil), config)
    assert not _Payload.ran
    assert "numpy.dtype" in ALLOWED_GLOBALS and len(ALLOWED_GLOBALS) <= 6


def test_import_does_not_touch_the_file_and_returns_complete_dicts(tmp_path):
    folder, config, _ = shared_fixture()
    path = tmp_path / "checkpoint.pth"
    shutil.copy(os.path.join(folder, "checkpoint.pth"), path)
    before = path.read_bytes()
    out = import_checkpoint(str(path), config)
    assert path.read_bytes() == before
    expected = models.get_model(config).state_dict()
    assert list(out["model"]) == list(expected) == list(out["ema"])


@pytest.mark.parametrize("name", ["ddpmpp"])     # (a VE one takes 45 s with random weights)
def test_bits_per_dim_of_an_imported_model_is_finite(name):
    from likelihood import bits_per_dim
    folder, config, io = fixture(SHARED, name)
    out = import_checkpoint(os.path.join(folder, "checkpoint.pth"), config)
    model = models.get_model(config).eval()
    model.load_state_dict(out["ema"])
    score_fn = models.get_score_fn(get_sde(config), model, continuous=config.training.continuous)
    lo = -1. if config.data.centered else 0.
    x = (torch.rand(2, *config.data.shape, generator=torch.Generator().manual_seed(0)) * (1 - lo) + lo)
    bpd = bits_per_dim(get_sde(config), score_fn, x, data_range=(lo, 1.), rtol=1e-3, atol=1e-3,
                       generator=torch.Generator().manual_seed(1))
    assert bpd.shape == (2,) and bool(torch.isfinite(bpd).all())
