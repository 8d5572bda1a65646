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
    assert set(EXPERIMENTS) == {"manifold", "low_density", "mixing", "ald_digits", "pc_table", "identifiable"}
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


# ---------------------------------------------------------------------------- 5. score SDE Table 1 (pc_table)
def test_pc_grid_cells_have_equal_compute():
    from experiments.pc_grid import CELLS, PREDICTOR_ROWS, cell_plan
    N = 50
    for row in PREDICTOR_ROWS:
        plans = {c: cell_plan(c, row, N, 0.16, 0.32) for c in CELLS}
        assert plans["P_N"][0] == N and plans["P_N"][2] == N
        assert plans["P_2N"][0] == 2 * N and plans["P_2N"][2] == 2 * N
        assert plans["PC_N"][0] == N and plans["PC_N"][2] == 2 * N
        assert plans["C_2N"][0] == 2 * N and plans["C_2N"][2] == 2 * N + 1       # + the final denoising step
        assert plans["PC_N"][1]["snr"] == 0.16 and plans["C_2N"][1]["snr"] == 0.32
        assert plans["P_N"][1]["probability_flow"] == (row == "probability_flow")
    with pytest.raises(ValueError, match="cell"):
        cell_plan("PC_2N", "reverse_diffusion", N, 0.16, 0.16)
    with pytest.raises(ValueError, match="row"):
        cell_plan("P_N", "euler", N, 0.16, 0.16)


def test_sample_quality_statistics_against_closed_forms():
    from experiments.sample_quality import Judge, classifier_probs, kid, last_layer_features, mean_entropy
    from models.classifier import ClassifierMLP
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    shifted = torch.randn(400, 8, generator=g) + 0.5
    assert abs(kid(a, b)) < 0.05 and kid(a, shifted) > 0.2           # unbiased: ~0 for equal laws
    assert mean_entropy(torch.eye(5)) == pytest.approx(0.)
    assert mean_entropy(torch.full((3, 5), 0.2)) == pytest.approx(math.log(5))
    # the feature hook returns the input of the output layer, computed by hand
    clf = ClassifierMLP((1, 8, 8), 10, None, nf=32, n_layers=1).eval()
    x = torch.rand(6, 1, 8, 8, generator=g)
    with torch.no_grad():
        h = clf.blocks[0](clf.fc_in(x.reshape(6, -1)), None)
        want = torch.nn.functional.silu(clf.norm(h))
    torch.testing.assert_close(last_layer_features(clf, clf.fc_out)(x), want)
    torch.testing.assert_close(classifier_probs(clf)(x).sum(1), torch.ones(6, dtype=torch.float64))
    # the judge: real data sit at its floor, shifted data far above it (both floor kinds)
    ref, pool = torch.randn(600, 8, generator=g), torch.randn(1000, 8, generator=g)
    for judge in (Judge(ref, pool=pool), Judge(ref, features=lambda v: v.double())):
        floor = judge.floor(300, 8, torch.Generator().manual_seed(1))
        m, s = torch.tensor(floor["mmd"]).mean(), torch.tensor(floor["mmd"]).std()
        assert abs(float(m)) < 3 * float(s)
        assert judge(pool[:300] + 0.5)["mmd"] > float(m) + 20 * float(s)
    assert Judge(ref, features=lambda v: v.double()).names == ("mmd", "kid")


def test_claim_verdicts():
    from experiments.pc_grid import verdict
    assert verdict(torch.tensor([-1., -1.2, -0.9])) == ("holds", 3)
    assert verdict(torch.tensor([1., 1.2, 0.9])) == ("opposite", 0)
    assert verdict(torch.tensor([-1., 1.2, -0.9]))[0] == "within noise"
    assert verdict(torch.tensor([-1., -0.01, -3.]))[0] == "within noise"      # agree, but |mean| < 2 s.e.


def test_pc_table_quick_exact_score(tmp_path, capsys):
    """The grid on a 16-D mixture with its exact score (N = 25, 512 samples, 3 seeds; RBF MMD^2 against
    exact samples): the claims that hold on the digits hold here too, with margins from the measured spread."""
    from experiments import pc_table
    fig = run_main(pc_table, tmp_path, capsys)
    N = fig["settings"]["N"]
    for name in ("ve", "vp"):
        res = fig["sdes"][name]
        cells = res["cells"]
        assert cells["C_2N"]["nfe"] == 2 * N + 1
        assert all(cells[f"{row}/P_2N"]["nfe"] == cells[f"{row}/PC_N"]["nfe"] == 2 * N for row in
                   ("ancestral_sampling", "reverse_diffusion", "probability_flow"))
        fm, fs = res["floor"]["mmd"]
        assert abs(fm) < 3 * fs                                        # exact samples: at the floor
        claims = {c["claim"]: c for c in res["claims"]["mmd"]}
        # corrector-only is far worse than both SDE predictors (measured x 1e3: VE 459 vs < 1, VP 6.5 vs < 0.5)
        for row in ("ancestral_sampling", "reverse_diffusion"):
            for cell in ("P_2N", "PC_N"):
                c = claims[f"{cell} < C_2N ({row})"]
                assert c["verdict"] == "holds" and c["excess_ratio"] > 5
        # the probability-flow predictor gains more from a corrector than the SDE predictors under VE
        # (measured gain differences -2.2 +- 0.3 and -1.8 +- 0.9 x 1e-3)
        if name == "ve":
            assert claims["gain P_2N - PC_N: reverse_diffusion < probability_flow"]["verdict"] == "holds"
            assert claims["PC_N < P_2N (probability_flow)"]["verdict"] == "holds"
        # a coarse probability flow is far from the data; doubling its steps helps (VE 4.1 -> 0.9, VP 161 -> 10)
        pf_n, pf_2n = (torch.tensor(cells[f"probability_flow/{c}"]["mmd"]).mean() for c in ("P_N", "P_2N"))
        assert pf_n > 3 * pf_2n and pf_n > fm + 5 * fs


def test_pc_table_wrong_score_fails_the_floor_check():
    """With the exact score PC_N's samples sit at the real-data floor; a deliberately wrong score (half the
    exact one) is caught by the same statistic."""
    from experiments.pc_grid import mixture_tasks, sample_cell, starting_points
    task = mixture_tasks(("ve",))["ve"]
    floor = torch.tensor(task.judge.floor(512, 5, torch.Generator().manual_seed(0))["mmd"])
    z = starting_points(task, 25, 512, 0)
    good, _ = sample_cell(task, "PC_N", "reverse_diffusion", 25, z, 0, 0.16, 0.16)
    assert task.judge(good)["mmd"] < float(floor.mean() + 4 * floor.std())
    exact = task.score_fn
    task.score_fn = lambda x, t: 0.5 * exact(x, t)
    bad, _ = sample_cell(task, "PC_N", "reverse_diffusion", 25, z, 0, 0.16, 0.16)
    assert task.judge(bad)["mmd"] > float(floor.mean() + 20 * floor.std())


# ---------------------------------------------------------------------------- 6. identifiable encoding
def test_identifiable_measures():
    from experiments.identifiable import compare, derangement, iters_list, latent_distance
    assert iters_list(3000) == (3000,) and iters_list((10000, 3000)) == (3000, 10000)
    with pytest.raises(ValueError, match="iters"):
        iters_list((3000, 0))
    g = torch.Generator().manual_seed(0)
    p = derangement(50, g)
    assert sorted(p.tolist()) == list(range(50)) and not bool((p == torch.arange(50)).any())
    z = torch.randn(50, 4, generator=g)
    r = compare(z, z.clone(), 2., p)
    assert r["d"] == 0. and r["corr"] == pytest.approx(1.) and r["d_shuffled"] > 0.5
    assert latent_distance(z, torch.zeros_like(z), 1.) == pytest.approx(float(z.pow(2).sum(1).mean().sqrt()))
    other = torch.randn(50, 4, generator=g)
    assert compare(z, other, 2., p)["ratio"] > 0.7                   # unrelated latents: like a shuffle


def test_trained_runs_name_every_varied_field():
    from experiments.trained_runs import digits_config, run_name, toy_config
    names = {run_name(digits_config("vp", nf=16, seed=0, n_iters=3000)),
             run_name(digits_config("vp", nf=16, seed=1, n_iters=3000)),
             run_name(digits_config("vp", nf=32, seed=0, n_iters=3000)),
             run_name(digits_config("vp", nf=16, seed=0, n_iters=0)),
             run_name(digits_config("ve", nf=16, seed=0, n_iters=3000)),
             run_name(toy_config("vp", toy="moons")), run_name(toy_config("vp"))}
    assert len(names) == 7
    with pytest.raises(ValueError, match="sde"):
        digits_config("subvp")


def test_identifiable_quick_toy(tmp_path, capsys):
    """Three MLPs trained separately on the 2-D two-mode set (widths 64, 64, 128; seeds 0-2; 500 steps)
    encode the same 200 test points to nearly the same latents, far closer than the shuffled pairing, an
    untrained network or the same network trained on other data (moons)."""
    from experiments import identifiable
    fig = run_main(identifiable, tmp_path, capsys)
    toy = fig["parts"]["toy"]
    s = toy["summary"]
    assert s["holds"]
    # measured: d = 0.077-0.088 (latent units), shuffled 1.29, untrained 0.90, other data 2.24
    assert all(p["d"] < 0.2 for p in toy["pairs"].values())
    assert all(p["corr"] > 0.98 for p in toy["pairs"].values())
    assert s["factor_vs_shuffled"] > 6 and s["factor_vs_untrained"] > 4 and s["factor_vs_other_data"] > 8
    # ... and close to the true encoding of the exact mixture score (measured d = 0.08-0.11)
    assert all(e["d"] < 0.2 for e in toy["exact"].values())
    # the latents have the prior's scale (measured RMS / scale 0.90-0.96), the untrained network's do not
    trained = [k for k in toy["models"] if k not in ("untrained", "other_data")]
    assert all(0.8 < toy["latent_rms_over_scale"][k] < 1.15 for k in trained + ["exact"])
    assert toy["latent_rms_over_scale"]["untrained"] < 0.1


def test_judge_scores_a_diverged_sample_set_as_inf():
    """One NaN sample makes every statistic inf (never a finite number from a diverged sampler)."""
    from experiments.sample_quality import Judge
    g = torch.Generator().manual_seed(0)
    judge = Judge(torch.randn(200, 4, generator=g), features=lambda v: v.double())
    x = torch.randn(100, 4, generator=g)
    assert all(math.isfinite(v) for v in judge(x).values())
    x[3, 1] = float("nan")
    out = judge(x)
    assert out["mmd"] == out["kid"] == math.inf and out["finite"] == pytest.approx(0.99)
