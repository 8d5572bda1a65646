"""The experiments (experiments/*.py) in their reduced settings: the printed figures point the documented way.

Each test runs the script's ``main(["--quick", "--out", tmp])``, reads the JSON line it prints and
checks the finding, plus a deliberately broken variant that must fail the same check where that is cheap.
"""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from experiments import EXPERIMENTS
from experiments import ald_digits, common, low_density, manifold, mixing


def run_main(module, tmp_path, capsys, *extra) -> dict:
    """Run ``module.main`` in the quick setting; return the JSON figures it printed (and check the PNG)."""
    returned = module.main(["--quick", "--no-progress", "--out", str(tmp_path), *extra])
    out = capsys.readouterr().out
    printed = json.loads(out.splitlines()[0])
    assert printed["experiment"] == module.NAME
    assert printed["png"] == os.path.join(str(tmp_path), f"{module.NAME}.png")
    assert os.path.getsize(printed["png"]) > 5000
    assert printed["png"] == returned["png"]
    return printed


def test_registry_lists_every_script():
    assert set(EXPERIMENTS) == {"manifold", "low_density", "mixing", "ald_digits"}
    for name in EXPERIMENTS:
        mod = __import__(f"experiments.{name}", fromlist=["run", "main"])
        assert callable(mod.run) and callable(mod.main) and mod.NAME == name


def test_settings_reject_unknown_names():
    with pytest.raises(ValueError, match="settings"):
        mixing.run(out=None, quick=True, n_sample=10)


# ---------------------------------------------------------------------------- 3. mixing
def test_mixing_langevin_misses_weights_annealed_recovers(tmp_path, capsys):
    fig = run_main(mixing, tmp_path, capsys)
    assert fig["true_weights"] == [0.2, 0.8]
    assert fig["exact_weight_error"] < 0.03
    assert fig["langevin_weight_error"] > 0.1          # measured 0.28: keeps the ~0.5/0.5 of its start
    assert fig["annealed_weight_error"] < 0.05         # measured 0.004
    assert abs(fig["langevin_weights"][0] - fig["init_weights"][0]) < 0.05


def test_mixing_without_annealing_fails_the_same_check():
    """One noise level (no annealing) at the smallest sigma: annealed Langevin's check fails."""
    fig = mixing.run(out=None, quick=True, n_levels=1, sigma_max=0.1)
    assert fig["annealed_weight_error"] > 0.1


# ---------------------------------------------------------------------------- 1. manifold
def test_manifold_noise_makes_ssm_converge(tmp_path, capsys):
    fig = run_main(manifold, tmp_path, capsys)
    # late-training spread: measured 8.8e4 without noise vs 2.9e3 with N(0, 1e-4) noise (ratio 30)
    assert fig["clean_late_std"] > 5 * fig["noisy_late_std"]
    # also relative to the loss level (measured 0.17 vs 0.068)
    assert fig["noisy_late_rel_std"] < 0.7 * fig["clean_late_rel_std"]
    # without noise the objective is unbounded below: the loss is already far below the noisy optimum
    assert fig["clean_late_mean"] < 3 * fig["noisy_optimum"]
    assert fig["noisy_optimum"] < fig["noisy_late_mean"] < 0


def test_late_spread_statistics():
    s = common.late_spread([10., 10., 1., 2., 3., 4.], 0.5)        # window [2, 3, 4]
    assert s["mean"] == pytest.approx(3.)
    assert s["std"] == pytest.approx(1.)
    assert s["drift"] == pytest.approx(3.5 - 2.)
    assert s["rel_std"] == pytest.approx(1. / 3.)


# ---------------------------------------------------------------------------- 2. low density
def test_low_density_error_is_high_where_data_are_rare(tmp_path, capsys):
    fig = run_main(low_density, tmp_path, capsys)
    mse = fig["bin_mse"]
    assert fig["bins"] == list(low_density.BIN_NAMES)
    assert all(c > 10 for c in fig["bin_counts"])
    assert mse[-1] > 20 * mse[0]                     # measured ratio 640
    assert mse[-1] > 10 * max(mse[:3])
    assert fig["fisher_divergence_on_data"] < 0.2 * fig["grid_mse"]


def test_hpd_level_matches_closed_form():
    """For N(0, I) in 2-D, P[p(y) > p(x)] = 1 - exp(-|x|^2 / 2); a wrong radius fails the same check."""
    from sde_lib.mixture import GaussianMixture
    g = GaussianMixture([1.], [[0., 0.]], [1.])
    r = torch.tensor([0., 0.5, 1., 1.5, 2., 3.], dtype=torch.float64)
    x = torch.stack([r, torch.zeros_like(r)], 1)
    level = low_density.hpd_level(g, x, 200000, torch.Generator().manual_seed(0))
    want = 1 - torch.exp(-r ** 2 / 2)
    assert float((level - want).abs().max()) < 0.005
    wrong = 1 - torch.exp(-r ** 2)                     # the formula with the wrong variance
    assert float((level - wrong).abs().max()) > 0.05


# ---------------------------------------------------------------------------- 4. annealed Langevin on digits
def test_ald_digits_strip_and_statistics(tmp_path, capsys):
    fig = run_main(ald_digits, tmp_path, capsys)
    levels = fig["per_level"]
    assert [r["level"] for r in levels][0] == "init" and levels[-1]["level"] == "denoised"
    assert len(levels) == fig["settings"]["n_levels"] + 2
    assert fig["finite"]
    init, final, data = levels[0], levels[-1], fig["test_data"]
    # NCSNv2 recipe for the digits: sigma_1 = largest pairwise distance, 21 levels down to 0.01
    assert fig["settings"]["n_levels"] == 21 and abs(fig["sigmas"][0] - 4.4578) < 1e-3
    # measured: nearest-training-image distance 34.8 -> 2.7 (test digits: 1.0), moment error 4.85 -> 0.30,
    # mean pixel std 4.42 -> 0.37 (test digits: 0.215)
    assert final["nn_dist"] < 0.15 * init["nn_dist"]
    assert final["nn_dist"] < 4 * data["nn_dist"]
    assert final["moment_error"] < 0.15 * init["moment_error"]
    assert abs(final["mean_pixel_std"] - data["mean_pixel_std"]) < data["mean_pixel_std"]
    # the noise shrinks as the levels anneal: the last level is far closer to the data than the first
    assert levels[-2]["nn_dist"] < 0.15 * levels[1]["nn_dist"]


def test_ald_digits_untrained_model_fails_the_same_check():
    fig = ald_digits.run(out=None, quick=True, n_iters=0)
    init, final = fig["per_level"][0], fig["per_level"][-1]
    assert not final["nn_dist"] < 0.15 * init["nn_dist"]          # measured 34.8 -> 80.9


def test_level_by_level_annealed_langevin_equals_one_call():
    """The per-level runner reproduces samplers.annealed_langevin (same generator, same draws)."""
    from samplers import annealed_langevin
    mix = common.ncsn_mixture()
    score = mix.sigma_score_fn()
    sigmas = torch.tensor([10., 3., 1., 0.3], dtype=torch.float64)
    states = ald_digits.annealed_langevin_states(score, sigmas, (500, 2), 20, 0.01, torch.Generator().manual_seed(4))
    ref = annealed_langevin(score, sigmas, (500, 2), n_steps_each=20, step_lr=0.01, denoise=True,
                            generator=torch.Generator().manual_seed(4))
    assert len(states) == 6
    torch.testing.assert_close(states[-1], ref, rtol=1e-4, atol=1e-4)
    # ... and a different step size does not
    other = annealed_langevin(score, sigmas, (500, 2), n_steps_each=20, step_lr=0.02, denoise=True,
                              generator=torch.Generator().manual_seed(4))
    assert float((states[-1] - other).abs().max()) > 0.1
    assert math.isclose(float(sigmas[0]), 10.)
