"""diffusers NCSN++ folders (ScoreSdeVePipeline / UNet2DModel converted by diffusers' own code from the
original score_sde checkpoints): the import computes what diffusers and the original compute."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

import configs
import models
from models.importers import import_checkpoint
from models.importers.diffusers import read_configs
from fixture_paths import shared
from sde_lib import get_sde

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = shared("diffusers")
NAMES = ["ncsnpp_skip_noattn", "ncsnpp_skip_attn128"]


def folder(name: str) -> str:
    path = os.path.join(ROOT, name)
    if not os.path.isdir(path):
        pytest.skip(f"fixture folder {path} is not there")
    return path


def rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("name", NAMES)
def test_pipeline_folder_matches_diffusers_and_the_original(name):
    path = folder(name)
    config = configs.from_diffusers(*read_configs(path))
    out = import_checkpoint(path, config)                      # source told apart automatically
    assert out["source"] == "diffusers"
    io = torch.load(os.path.join(path, "io.pt"), weights_only=True)
    model = models.get_model(config).eval()
    model.load_state_dict(out["ema"])
    with torch.no_grad():
        y = model(io["x"], io["sigma"])
        score = models.get_score_fn(get_sde(config), model)(io["x"], io["t"])
    assert rel(y, io["unet_out"]) < 1e-5                       # diffusers' UNet2DModel output
    assert rel(y, io["peer_out_ema"]) < 1e-5                   # the original network, EMA weights
    assert rel(score, io["peer_score_ema"]) < 1e-5             # the original score function
    assert config.model.sigma_max == 50. and config.model.num_scales == 1000 and config.sampling.snr == 0.16


def test_unet_subfolder_and_original_checkpoint_give_the_same_weights(tmp_path):
    path = folder("ncsnpp_skip_noattn")
    unet_only = tmp_path / "unet"
    shutil.copytree(os.path.join(path, "unet"), unet_only)
    config = configs.from_diffusers(*read_configs(path))
    a = import_checkpoint(str(unet_only), config, source="diffusers")
    peer = os.path.join(path, "peer")
    with open(os.path.join(peer, "config.json")) as f:
        peer_config = configs.from_score_sde(json.load(f))
    b = import_checkpoint(os.path.join(peer, "checkpoint.pth"), peer_config)
    assert list(a["ema"]) == list(b["ema"])
    assert all(torch.allclose(a["ema"][k], b["ema"][k], rtol=0, atol=1e-6) for k in a["ema"])


def test_mismatched_config_and_damaged_folder(tmp_path):
    path = folder("ncsnpp_skip_attn128")
    config = configs.from_diffusers(*read_configs(path))
    config.model.num_res_blocks = 2
    with pytest.raises(ValueError, match=r"config\.model\.num_res_blocks"):
        import_checkpoint(path, config)
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    with pytest.raises(ValueError, match="damaged|truncated"):
        import_checkpoint(str(broken), configs.from_diffusers(*read_configs(path)))
    os.remove(weights)
    (broken / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="pickle"):
        import_checkpoint(str(broken), configs.from_diffusers(*read_configs(path)))


def test_from_diffusers_refuses_what_it_cannot_reproduce():
    path = folder("ncsnpp_skip_attn128")
    unet, sched = read_configs(path)
    with pytest.raises(ValueError, match="block type"):
        configs.from_diffusers(dict(unet, down_block_types=["DownBlock2D"] * 3), sched)
    with pytest.raises(ValueError, match="attention at 32 channels"):
        configs.from_diffusers(dict(unet, block_out_channels=[32, 32, 64]), sched)
    with pytest.raises(ValueError, match="time_embedding_type"):
        configs.from_diffusers(dict(unet, time_embedding_type="positional"), sched)
    with pytest.raises(ValueError, match="attention_head_dim"):
        configs.from_diffusers(dict(unet, attention_head_dim=8), sched)
    with pytest.raises(ValueError, match="ScoreSdeVeScheduler"):
        configs.from_diffusers(unet, dict(sched, _class_name="DDPMScheduler"))


HUB = {  # Hub model -> the toolkit config of the score_sde checkpoint it was converted from
    "google/ncsnpp-ffhq-1024": "ve.ffhq_1024_ncsnpp_continuous",
    "google/ncsnpp-ffhq-256": "ve.ffhq_256_ncsnpp_continuous",
    "google/ncsnpp-celebahq-256": "ve.celebahq_256_ncsnpp_continuous",
    "google/ncsnpp-church-256": "ve.church_ncsnpp_continuous",
}


@pytest.mark.parametrize("hub,name", sorted(HUB.items()))
def test_hub_layouts_are_the_released_networks(hub, name):
    """The Hub UNets (diffusers' conversion of the score_sde configs: block_out_channels = nf * ch_mult,
    Attn blocks at the attention resolution) build the same network as the released config."""
    released = __import__(f"configs.{name}", fromlist=["get_config"]).get_config()
    m, size = released.model, released.data.shape[-1]
    levels = range(len(m.ch_mult))
    attn = [size // 2 ** i in m.attn_resolutions for i in levels]
    unet = {"sample_size": size, "in_channels": 3, "out_channels": 3, "center_input_sample": True,
            "time_embedding_type": "fourier", "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu",
            "block_out_channels": [m.nf * c for c in m.ch_mult], "layers_per_block": m.num_res_blocks,
            "down_block_types": ["AttnSkipDownBlock2D" if a else "SkipDownBlock2D" for a in attn],
            "up_block_types": ["AttnSkipUpBlock2D" if a else "SkipUpBlock2D" for a in reversed(attn)]}
    from_hub = configs.from_diffusers(unet, {"_class_name": "ScoreSdeVeScheduler", "sigma_min": 0.01,
                                             "sigma_max": m.sigma_max, "num_train_timesteps": 2000})
    with torch.device("meta"):
        a, b = models.get_model(from_hub), models.get_model(released)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


def test_legacy_attention_names_load(tmp_path):
    """Older Hub folders name the attention projections query / key / value / proj_attn."""
    from safetensors.torch import load_file, save_file
    path = folder("ncsnpp_skip_attn128")
    legacy = tmp_path / "legacy"
    shutil.copytree(path, legacy)
    file = legacy / "unet" / "diffusion_pytorch_model.safetensors"
    names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    sd = load_file(str(file))
    renamed = {}
    for k, v in sd.items():
        for new, old in names.items():
            k = k.replace(f".{new}.", f".{old}.")
        renamed[k] = v
    assert any(".query." in k for k in renamed)
    save_file(renamed, str(file))
    config = configs.from_diffusers(*read_configs(path))
    a, b = import_checkpoint(str(legacy), config), import_checkpoint(path, config)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in b["ema"])
