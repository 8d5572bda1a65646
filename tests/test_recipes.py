"""NCSNv2 recipe (training/recipes.py) against its formulas, and the NCSN configs end to end."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.stats import norm

from training import recipes as R

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def phi_equation(gamma, D):
    a = math.sqrt(2 * D)
    return norm.cdf(a * (gamma - 1) + 3 * gamma) - norm.cdf(a * (gamma - 1) - 3 * gamma)


def technique4(eps, sigma_L, gamma, T):
    """Technique 4's left side written exactly as in THEORY.md."""
    s2 = sigma_L ** 2
    c = 2 * eps / (s2 - s2 * (1 - eps / s2) ** 2)
    return (1 - eps / s2) ** (2 * T) * (gamma ** 2 - c) + c


# ------------------------------------------------------------------ Technique 1
def test_max_pairwise_distance_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 3, 2, 2, generator=g)
    flat = x.reshape(37, -1).double()
    brute = max(float((flat[i] - flat[j]).norm()) for i in range(37) for j in range(i + 1, 37))
    assert R.max_pairwise_distance(x) == pytest.approx(brute, rel=1e-12)
    assert R.max_pairwise_distance(x, chunk=5) == pytest.approx(brute, rel=1e-12)
    # a wrong candidate (largest distance to the mean, x2) is not what is returned
    assert abs(2 * float((flat - flat.mean(0)).norm(dim=1).max()) - brute) > 1e-3
    with pytest.raises(ValueError, match="x"):
        R.max_pairwise_distance(x[:1])


# ------------------------------------------------------------------ Technique 2
@pytest.mark.parametrize("D", [8, 64, 192, 3072])
def test_noise_ratio_solves_phi_equation(D):
    gamma = R.noise_ratio(D)
    assert gamma > 1
    assert abs(phi_equation(gamma, D) - 0.5) < 1e-6
    # the smallest root: the criterion is above 0.5 on (1, gamma)
    grid = np.linspace(1 + 1e-9, gamma - 1e-9, 2000)
    assert (phi_equation(grid, D) > 0.5).all()
    # a 1% wrong ratio fails the same check
    assert abs(phi_equation(gamma * 1.01, D) - 0.5) > 1e-3


def test_noise_ratio_cifar_and_small_dims():
    # D = 3072 (CIFAR-10): gamma ~ 1.04, i.e. a few hundred levels from 50 to 0.01 (the paper uses 232)
    gamma = R.noise_ratio(3072)
    assert 1.035 < gamma < 1.045
    assert 200 < R.num_noise_scales(50., 0.01, gamma) < 240
    with pytest.raises(ValueError, match="dim"):
        R.noise_ratio(2)            # the criterion never falls to 0.5 for D <= 7
    with pytest.raises(ValueError, match="dim"):
        R.noise_ratio(0)


def test_num_noise_scales_formula():
    for smax, smin, gamma in [(4.4578, 0.01, 1.36085), (50., 0.01, 1.0376), (1., 0.5, 1.5)]:
        L = R.num_noise_scales(smax, smin, gamma)
        assert L == math.ceil(math.log(smax / smin) / math.log(gamma)) + 1
        # the ladder with L levels is at least as dense as gamma asks
        assert (smax / smin) ** (1 / (L - 1)) <= gamma + 1e-12
    with pytest.raises(ValueError, match="gamma"):
        R.num_noise_scales(1., 0.1, 1.0)


# ------------------------------------------------------------------ Technique 4
@pytest.mark.parametrize("gamma,T", [(1.36085, 5), (1.0376, 5), (2.08, 100), (1.1, 1)])
def test_step_size_minimises_technique4(gamma, T):
    sigma_L = 0.01
    eps = R.langevin_step_size(sigma_L, gamma, T)
    s2 = sigma_L ** 2
    assert 0 < eps < s2
    h = technique4(eps, sigma_L, gamma, T)
    assert h == pytest.approx(float(R.step_size_criterion(eps, sigma_L, gamma, T)), rel=1e-12)
    # stationary point: the closed-form derivative vanishes, and it matches a finite difference
    d = float(R.step_size_criterion_grad(eps, sigma_L, gamma, T))
    assert abs(d) * s2 < 1e-8
    e = 1e-6 * eps
    fd = (technique4(eps + e, sigma_L, gamma, T) - technique4(eps - e, sigma_L, gamma, T)) / (2 * e)
    assert abs(fd) * s2 < 1e-5
    # closest to 1 on a fine grid over (0, sigma_L^2); the equation has no exact root (h > 1)
    grid = np.linspace(1e-6, 1 - 1e-6, 200001) * s2
    vals = technique4(grid, sigma_L, gamma, T)
    assert (vals > 1).all()
    assert h <= vals.min() + 1e-12
    # a wrong step (x2 or /2) is measurably farther from 1
    assert technique4(2 * eps, sigma_L, gamma, T) > h + 1e-4 * (h - 1)
    assert technique4(eps / 2, sigma_L, gamma, T) > h + 1e-4 * (h - 1)


def test_step_size_reproduces_ncsnv2_cifar():
    # NCSNv2 on CIFAR-10: L = 232 levels from 50 to 0.01, T = 5 -> eps = 6.2e-6 (the paper's value)
    gamma = (50. / 0.01) ** (1. / 231)
    eps = R.langevin_step_size(0.01, gamma, 5)
    assert eps == pytest.approx(6.2e-6, rel=0.01)


# ------------------------------------------------------------------ the proposal on the digits
def test_propose_on_digits_and_written_config(tmp_path):
    from configs.ve.digits_ncsn import get_config
    from scoredata import get_dataset

    config = get_config()
    x = get_dataset(config, "train")
    rec = R.propose(x, sigma_min=0.01, n_steps_each=5)
    assert rec.sigma_max == pytest.approx(float(torch.pdist(x.reshape(x.shape[0], -1).double()).max()), rel=1e-10)
    assert rec.dim == 64
    assert abs(phi_equation(rec.gamma, 64) - 0.5) < 1e-6
    assert rec.num_scales == math.ceil(math.log(rec.sigma_max / 0.01) / math.log(rec.gamma)) + 1
    ladder = (rec.sigma_max / 0.01) ** (1 / (rec.num_scales - 1))
    assert rec.step_lr == pytest.approx(R.langevin_step_size(0.01, ladder, 5), rel=1e-12)
    # the shipped NCSN config carries these numbers
    assert config.model.sigma_max == pytest.approx(rec.sigma_max, abs=0.005)
    assert config.model.num_scales == rec.num_scales
    assert 2 * config.sampling.snr ** 2 * 0.01 ** 2 == pytest.approx(rec.step_lr, rel=1e-3)

    path = R.write_recipe_config(rec, str(tmp_path / "recipe_cfg.py"), base=config)
    spec = importlib.util.spec_from_file_location("recipe_cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.get_config()
    assert cfg.model.num_scales == rec.num_scales and cfg.model.sigma_max == rec.sigma_max
    assert cfg.training.continuous is False and cfg.sampling.corrector == "ald"
    assert 2 * cfg.sampling.snr ** 2 * cfg.model.sigma_min ** 2 == pytest.approx(rec.step_lr, rel=1e-12)
    assert tuple(cfg.data.shape) == (1, 8, 8) and cfg.model.name == config.model.name


def test_propose_small_dim_falls_back():
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    rec = R.propose(x, n_steps_each=100)
    assert rec.gamma is None and rec.num_scales == 10 and "Technique 2" in rec.note


# ------------------------------------------------------------------ end to end through main.py
def _main(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--progress=false", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _sample_stats(workdir, n_iters):
    stats = [f for f in os.listdir(os.path.join(workdir, "samples")) if f.startswith("stats_pc_")
             and f.endswith(f"_{n_iters}.json")]
    with open(os.path.join(workdir, "samples", stats[0])) as fh:
        return json.load(fh)


@pytest.mark.slow
def test_toy2d_ncsn_end_to_end(tmp_path):
    """Discrete SMLD training + annealed Langevin sampling through main.py on the 0.2/0.8 mixture."""
    from configs.ve.toy2d_ncsn import get_config
    from models import get_model
    from sde_lib import get_sde
    from scoredata import get_dataset
    from training.evaluate import draw_samples, sample_stats

    cfg = os.path.join(ROOT, "configs", "ve", "toy2d_ncsn.py")
    wd = str(tmp_path / "toy")
    common = [f"--config={cfg}", f"--workdir={wd}", "--config.training.n_iters=1000",
              "--config.training.snapshot_sampling=False", "--config.training.eval_freq=0",
              "--config.sampling.n_steps_each=50"]
    _main(*common, "--mode=train")
    _main(*common, "--mode=sample", "--num=1000")
    trained = _sample_stats(wd, 1000)
    assert trained["nfe"] == 10 * 50 + 1                  # annealed Langevin: L levels x T steps + denoising
    assert trained["mode_weights_error"] < 0.06
    assert trained["sliced_wasserstein"] < 0.35
    # the same sampler with the untrained network fails the limit
    config = get_config()
    config.sampling.n_steps_each = 50
    torch.manual_seed(int(config.seed))
    x, nfe = draw_samples(config, get_sde(config), get_model(config).eval(), 1000,
                          generator=torch.Generator().manual_seed(0))
    untrained = sample_stats(config, x, get_dataset(config, "test"), generator=torch.Generator().manual_seed(1))
    assert nfe == 500 + 1 and untrained["sliced_wasserstein"] > 0.35


@pytest.mark.slow
def test_recipe_mode_writes_a_config_that_trains_and_samples(tmp_path):
    """--mode recipe on the digits -> config file -> train (discrete SMLD) -> sample (ald) via main.py."""
    wd = str(tmp_path / "digits")
    out = _main(f"--config={os.path.join(ROOT, 'configs', 've', 'digits.py')}", f"--workdir={wd}",
                "--mode=recipe")
    assert "L = 21 noise scales" in out and "gamma = 1.3608" in out
    with open(os.path.join(wd, "recipe", "recipe.json")) as fh:
        rec = json.load(fh)
    assert rec["num_scales"] == 21 and abs(rec["sigma_max"] - 4.4578) < 1e-3
    written = os.path.join(wd, "recipe", "config.py")
    common = [f"--config={written}", f"--workdir={wd}", "--config.training.n_iters=20",
              "--config.training.snapshot_sampling=False", "--config.training.eval_freq=0",
              "--config.sampling.n_steps_each=2"]
    _main(*common, "--mode=train")
    _main(*common, "--mode=sample", "--num=8")
    stats = _sample_stats(wd, 20)
    assert stats["nfe"] == 21 * 2 + 1 and stats["frac_finite"] == 1.0   # + the final denoising step
