"""Fast samplers (samplers.fast_sample / SOLVERS) against the exact score of the 2-D 0.2/0.8 mixture.

Every ODE solver starts from the same points z as the converged probability-flow ODE (dopri5,
rtol = atol = 1e-7, float64; ``samplers.fast_reference``) and is judged by the sliced Wasserstein
distance to exact data samples (relative to the converged solution's), the weight of the narrow
mode and the narrow mode's spread (``quality.mode_spread`` on ``mixture.component_index`` labels).
Figures quoted in comments were measured with these seeds (torch 2.13, CPU, one thread).
"""
from __future__ import annotations

import os

import pytest
import torch

from quality import mode_spread, sliced_wasserstein
from samplers.fast import SOLVERS, fast_sample
from samplers.fast_brownian import BrownianStack
from samplers.fast_reference import pf_ode_reference
from sde_lib.mixture import GaussianMixture
from tests.analytic import make_sdes, two_mode_mixture

MIX = two_mode_mixture()
N = 8192
#: the angle form of Heun (``sigma_data``) on the log-SNR grid: the configuration that meets the
#: acceptance criteria at 21 NFE (c in [2, 3] works; the mixture's per-coordinate std is 1.28)
HEUN_FAST = {"sigma_data": 2.5, "grid": "logsnr"}


def metrics(x, data):
    x = x.double()
    return {"sw": sliced_wasserstein(x, data), "w": float(MIX.mode_weights(x)[0]),
            "spread": mode_spread(x, MIX.component_index(x), 0)}


def relative(m, ref):
    """(SW ratio - 1, |narrow-mode weight difference|, spread ratio - 1) against the reference."""
    return m["sw"] / ref["sw"] - 1, abs(m["w"] - ref["w"]), m["spread"] / ref["spread"] - 1


def setup(name: str, n: int, seed: int = 2):
    sde = make_sdes()[name]
    data = MIX.sample(n, generator=torch.Generator().manual_seed(100 + seed))
    z = sde.prior_sampling((n, 2), generator=torch.Generator().manual_seed(seed))
    ref, _ = pf_ode_reference(sde, MIX.score_fn(sde), z.double())
    return sde, data, z, ref, metrics(ref, data)


@pytest.fixture(scope="module")
def vp():
    return setup("vpsde", N)


def run(sde, z, solver, steps, scale=1., **kw):
    return fast_sample(sde, MIX.score_fn(sde, scale=scale), tuple(z.shape), solver=solver, steps=steps, z=z, **kw)


# ----------------------------------------------------------------------------- acceptance (VP)
def test_reference_is_converged(vp):
    sde, data, z, ref, m_ref = vp
    assert abs(m_ref["w"] - 0.2) < 0.015 and abs(m_ref["spread"] / 0.25 - 1) < 0.03
    # the sliced Wasserstein distance of the converged ODE is at the sampling-noise floor
    floor = sliced_wasserstein(MIX.sample(N, generator=torch.Generator().manual_seed(7)).double(), data)
    assert m_ref["sw"] < 1.3 * floor


def test_heun_21_nfe_meets_acceptance(vp):
    sde, data, z, ref, m_ref = vp
    x, nfe = run(sde, z, "heun", 11, **HEUN_FAST)
    assert nfe == 21
    dsw, dw, dspread = relative(metrics(x, data), m_ref)   # measured -0.005 / 0.0006 / -0.026
    assert dsw <= 0.10 and dw <= 0.03 and abs(dspread) <= 0.05


def test_dpm_solver_3_15_nfe(vp):
    sde, data, z, ref, m_ref = vp
    x, nfe = run(sde, z, "dpm_solver_3", 15)
    assert nfe == 15
    dsw, dw, dspread = relative(metrics(x, data), m_ref)   # measured -0.039 / 0.0000 / +0.067
    assert dsw <= 0.10 and dw <= 0.03
    # the narrow mode is over-spread by 6-7 % at 15 NFE (seeds 2-4: +6.7, +5.8, +6.0 %); the 5 % target
    # is reached at 18-20 NFE (20 NFE: +4.6, +4.1, +3.9 %)
    assert abs(dspread) <= 0.10
    # spending every NFE on the integration (default) beats ending with a denoising evaluation
    rms = float((x.double() - ref).pow(2).sum(1).mean().sqrt())          # measured 0.043
    x_dn, nfe_dn = run(sde, z, "dpm_solver_3", 15, denoise=True)
    rms_dn = float((x_dn.double() - ref).pow(2).sum(1).mean().sqrt())   # measured 0.048
    assert nfe_dn == 15 and rms < 0.95 * rms_dn
    x, nfe = run(sde, z, "dpm_solver_3", 25)
    dsw, dw, dspread = relative(metrics(x, data), m_ref)   # measured -0.040 / 0.0001 / +0.032
    assert nfe == 25 and dsw <= 0.10 and dw <= 0.03 and abs(dspread) <= 0.05


def test_heun_edm_form_converges(vp):
    """Plain EDM Heun (sigma form, rho = 7) meets every criterion at 81 NFE (at 21 NFE it over-spreads
    the narrow mode by 18 %, at 11 NFE by 83 %)."""
    sde, data, z, ref, m_ref = vp
    x, nfe = run(sde, z, "heun", 41)
    assert nfe == 81
    dsw, dw, dspread = relative(metrics(x, data), m_ref)
    assert dsw <= 0.10 and dw <= 0.03 and abs(dspread) <= 0.05
    assert float((x.double() - ref).pow(2).sum(1).mean().sqrt()) < 0.03   # paired distance, measured 0.018


def test_about_10_nfe(vp):
    """How far each solver is at ~10 NFE (figures in the report); loose bounds from measurements."""
    sde, data, z, ref, m_ref = vp
    out = {}
    for name, steps, kw in [("heun", 5, HEUN_FAST), ("heun", 6, HEUN_FAST), ("heun", 6, {}),
                            ("dpm_solver_3", 10, {}), ("dpm_solver_2", 10, {})]:
        x, nfe = run(sde, z, name, steps, **kw)
        out[(name, nfe, bool(kw))] = relative(metrics(x, data), m_ref)
    print({k: tuple(round(v, 3) for v in val) for k, val in out.items()})
    # dpm_solver_3 at 10 NFE: SW +18 %, weight 0.002, spread +6.0 % (seeds 3, 4: +26 / +22 % SW)
    dsw, dw, dspread = out[("dpm_solver_3", 10, False)]
    assert dsw < 0.4 and dw < 0.01 and abs(dspread) < 0.10
    # EDM Heun at 11 NFE over-spreads the narrow mode by ~80 %; the angle form by ~6 %
    assert out[("heun", 11, False)][2] > 0.5
    assert abs(out[("heun", 11, True)][2]) < 0.15


def test_wrong_score_fails_the_criterion(vp):
    sde, data, z, ref, m_ref = vp
    for name, steps, kw in [("heun", 11, HEUN_FAST), ("dpm_solver_3", 15, {})]:
        x, _ = run(sde, z, name, steps, scale=0.5, **kw)
        dsw, dw, dspread = relative(metrics(x, data), m_ref)
        assert dsw > 0.5 and dspread > 0.5


# ----------------------------------------------------------------------------- VE and sub-VP
@pytest.mark.parametrize("name", ["vesde", "subvpsde"])
def test_other_sdes(name):
    """Same solvers on VE and sub-VP, on the noise range [0.01, sigma(T)] (sub-VP's sigma(eps = 1e-3)
    is 1e-4, which spends grid points where nothing happens: pass sigma_min)."""
    sde, data, z, ref, m_ref = setup(name, 4096, seed=3)
    for solver, steps, kw, nfe_expected in [("heun", 11, HEUN_FAST, 21), ("dpm_solver_3", 15, {}, 15)]:
        x, nfe = run(sde, z, solver, steps, sigma_min=0.01, **kw)
        assert nfe == nfe_expected
        _, dw, dspread = relative(metrics(x, data), m_ref)
        rms = float((x.double() - ref).pow(2).sum(1).mean().sqrt())
        # measured: heun 0.000 / +0.9 % / 0.019 (VE), 0.001 / -4.1 % / 0.042 (sub-VP);
        # dpm_solver_3 0.000 / +4.7 % / 0.025 (VE), 0.000 / +5.5 % / 0.042 (sub-VP)
        assert dw <= 0.03 and abs(dspread) <= 0.10 and rms < 0.1, (solver, dw, dspread, rms)


# ----------------------------------------------------------------------------- reverse-SDE solvers
def test_adaptive_sde_mode_weights_and_nfe():
    sde = make_sdes()["vpsde"]
    x, nfe = fast_sample(sde, MIX.score_fn(sde), (4096, 2), solver="adaptive_sde",
                         generator=torch.Generator().manual_seed(11))
    w = float(MIX.mode_weights(x)[0])
    print("adaptive_sde VP: NFE", nfe, "narrow-mode weight", w)
    assert abs(w - 0.2) <= 0.05 and nfe < 2000          # measured NFE ~300 (pc_sample at N=1000: 2000)
    assert abs(mode_spread(x, MIX.component_index(x), 0) / 0.25 - 1) < 0.1


def test_adaptive_sde_redrawn_noise_is_biased():
    """Redrawing the noise after a rejection (the paper's scheme) biases the mode weights; the
    Brownian-bridge memory removes the bias."""
    sde = make_sdes()["vesde"]
    out = {}
    for mode in ("bridge", "redraw"):
        x, nfe = fast_sample(sde, MIX.score_fn(sde), (4096, 2), solver="adaptive_sde",
                             generator=torch.Generator().manual_seed(12), noise_on_reject=mode)
        out[mode] = float(MIX.mode_weights(x)[0])
    print("adaptive_sde VE narrow-mode weight", out)
    assert abs(out["bridge"] - 0.2) < 0.02
    assert out["redraw"] - 0.2 > 0.04


def test_brownian_stack_is_unbiased_under_rejection():
    """Reject every increment larger than its standard deviation and retry with half the step: the
    accepted path must still end at W(1) ~ N(0, 1)."""
    B = 20000
    g = torch.Generator().manual_seed(0)
    like = torch.zeros(B, 1, dtype=torch.float64)
    path = BrownianStack(like)
    t = torch.zeros(B, dtype=torch.float64)
    w_end = torch.zeros(B, 1, dtype=torch.float64)
    h = torch.full((B,), 0.25, dtype=torch.float64)
    for _ in range(400):
        active = t < 1 - 1e-12
        if not bool(active.any()):
            break
        idx = active.nonzero().squeeze(1)
        hs = torch.minimum(h[idx], 1 - t[idx])
        W, pending = path.step(idx, hs, torch.randn(len(idx), 1, generator=g, dtype=torch.float64),
                               torch.randn(len(idx), 1, generator=g, dtype=torch.float64))
        accept = (W.abs().squeeze(1) <= hs.sqrt()) | (hs < 1 / 64)
        path.commit(idx, accept, pending)
        w_end[idx[accept]] += W[accept]
        t[idx[accept]] += hs[accept]
        h[idx] = torch.where(accept, torch.full_like(hs, 0.25), hs / 2)
    assert bool((t >= 1 - 1e-12).all())
    var = float(w_end.var())
    assert abs(var - 1) < 0.04, var                        # redrawing instead gives ~0.6


METHOD_COST = {"euler": 1, "milstein": 1, "euler_heun": 1, "srk": 2, "heun": 2, "midpoint": 2, "log_ode": 2}


@pytest.mark.parametrize("method", sorted(METHOD_COST))
def test_torchsde_solvers(method):
    sde = make_sdes()["vpsde"]
    times = []

    def score(x, t):
        times.append((float(t.min()), float(t.max())))
        return MIX.score(x, t, sde)

    steps = 100
    x, nfe = fast_sample(sde, score, (2048, 2), solver=f"torchsde_{method}", steps=steps,
                         generator=torch.Generator().manual_seed(5))
    assert nfe == METHOD_COST[method] * steps + 1 == len(times)   # + 1: the denoising step
    assert abs(float(MIX.mode_weights(x)[0]) - 0.2) <= 0.05
    lo, hi = min(a for a, _ in times), max(b for _, b in times)
    assert 1e-3 * (1 - 1e-5) <= lo and hi <= 1 + 1e-6       # no evaluation outside [eps, T] to speak of


def test_torchsde_reversible_heun_runs():
    """Reversible Heun is only marginally stable for this dissipative drift: it runs and counts its
    NFE (one extra initial evaluation), but is not accurate at moderate steps (narrow weight ~0.02)."""
    sde = make_sdes()["vpsde"]
    x, nfe = fast_sample(sde, MIX.score_fn(sde), (512, 2), solver="torchsde_reversible_heun", steps=50,
                         generator=torch.Generator().manual_seed(5))
    assert nfe == 52 and bool(torch.isfinite(x).all())


# ----------------------------------------------------------------------------- other solvers and shapes
def test_noise_prediction_form_and_ddim_converge(vp):
    sde, data, z, ref, m_ref = vp
    zs, refs = z[:2048], ref[:2048]
    errs = {}
    for name, kw in [("dpm_solver_2", {"prediction": "noise"}), ("dpm_solver_2", {}), ("ddim", {})]:
        for steps in (20, 80):
            x, nfe = run(sde, zs, name, steps, **kw)
            assert nfe == steps
            errs[(name, bool(kw), steps)] = float((x.double() - refs).pow(2).sum(1).mean().sqrt())
    print(errs)
    # measured paired RMS at 20 -> 80 NFE: noise form 0.222 -> 0.049, data form 0.117 -> 0.029,
    # DDIM (first order) 0.360 -> 0.190
    for name, kw in [("dpm_solver_2", True), ("dpm_solver_2", False)]:
        assert errs[(name, kw, 80)] < 0.35 * errs[(name, kw, 20)]
    assert errs[("ddim", False, 80)] < 0.6 * errs[("ddim", False, 20)]
    assert errs[("dpm_solver_2", False, 80)] < 0.05 and errs[("dpm_solver_2", False, 20)] < errs[("ddim", False, 20)]


def test_image_shaped_data():
    """[B, C, H, W] data: same code path, shapes kept, ODE solvers agree with the reference."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64)
    mix = GaussianMixture([0.3, 0.7], torch.cat([-0.7 * mu, 0.3 * mu]), [0.3, 0.5])
    sde = make_sdes()["vpsde"]
    z = sde.prior_sampling((256, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    ref, _ = pf_ode_reference(sde, mix.score_fn(sde), z.double())
    for solver, steps in [("heun", 21), ("dpm_solver_3", 20), ("adaptive_sde", 18), ("torchsde_euler", 50)]:
        x, nfe = fast_sample(sde, mix.score_fn(sde), (256, 1, 4, 4), solver=solver, steps=steps, z=z,
                             generator=torch.Generator().manual_seed(5))
        assert x.shape == (256, 1, 4, 4) and bool(torch.isfinite(x).all())
        if solver in ("heun", "dpm_solver_3"):
            rel = float((x.double() - ref).norm() / ref.norm())
            print(solver, nfe, rel)
            assert rel < 0.1, (solver, rel)


# ----------------------------------------------------------------------------- API contract
def test_registry_and_nfe_counts():
    assert {"heun", "dpm_solver_2", "dpm_solver_3", "adaptive_sde", "torchsde_srk", "torchsde_euler",
            "torchsde_reversible_heun"} <= set(SOLVERS)
    sde = make_sdes()["vesde"]
    z = sde.prior_sampling((64, 2), generator=torch.Generator().manual_seed(0))
    for solver, steps, expected in [("heun", 1, 1), ("heun", 2, 3), ("heun", 18, 35), ("dpm_solver_2", 1, 1),
                                    ("dpm_solver_3", 7, 7), ("ddim", 3, 3)]:
        assert run(sde, z, solver, steps)[1] == expected


def test_reproducible_with_generator():
    sde = make_sdes()["vpsde"]
    for solver in ("heun", "adaptive_sde", "torchsde_srk"):
        a, na = fast_sample(sde, MIX.score_fn(sde), (256, 2), solver=solver, steps=20,
                            generator=torch.Generator().manual_seed(9))
        b, nb = fast_sample(sde, MIX.score_fn(sde), (256, 2), solver=solver, steps=20,
                            generator=torch.Generator().manual_seed(9))
        c, _ = fast_sample(sde, MIX.score_fn(sde), (256, 2), solver=solver, steps=20,
                           generator=torch.Generator().manual_seed(10))
        assert torch.equal(a, b) and na == nb
        assert not torch.equal(a, c)


def test_validation_errors():
    sde = make_sdes()["vpsde"]
    fn = MIX.score_fn(sde)
    with pytest.raises(ValueError, match="solver"):
        fast_sample(sde, fn, (8, 2), solver="rk4")
    for bad in (0, 2.5, True, -3):
        with pytest.raises(ValueError, match="steps"):
            fast_sample(sde, fn, (8, 2), steps=bad)
    with pytest.raises(ValueError, match="z"):
        fast_sample(sde, fn, (8, 2), z=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="z"):
        fast_sample(sde, fn, (8, 2), z=torch.full((8, 2), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        fast_sample(sde, fn, (8,))
    with pytest.raises(ValueError, match="eps"):
        fast_sample(sde, fn, (8, 2), solver="dpm_solver_3", eps=2.)
    with pytest.raises(ValueError, match="rtol"):
        fast_sample(sde, fn, (8, 2), solver="adaptive_sde", rtol=-1.)
    with pytest.raises(ValueError, match="noise_on_reject"):
        fast_sample(sde, fn, (8, 2), solver="adaptive_sde", noise_on_reject="resample")
    with pytest.raises(ValueError, match="grid"):
        fast_sample(sde, fn, (8, 2), solver="heun", grid="cosine")
    with pytest.raises(ValueError, match="denoise"):
        fast_sample(sde, fn, (8, 2), solver="dpm_solver_3", denoise="yes")
    with pytest.raises(ValueError, match="prediction"):
        fast_sample(sde, fn, (8, 2), solver="dpm_solver_2", prediction="velocity")
    with pytest.raises(ValueError, match="sigma_data"):
        fast_sample(sde, fn, (8, 2), solver="heun", sigma_data=0.)
    with pytest.raises(ValueError, match="sigma_min"):
        fast_sample(sde, fn, (8, 2), solver="heun", sigma_min=1e3)
    with pytest.raises(ValueError, match="rtoll"):
        fast_sample(sde, fn, (8, 2), solver="adaptive_sde", rtoll=0.1)
    with pytest.raises(ValueError, match="rho"):
        fast_sample(sde, fn, (8, 2), solver="torchsde_srk", rho=7.)


# ----------------------------------------------------------------------------- the comparison benchmark
def test_compare_benchmark_smoke(tmp_path):
    from benchmarks.compare_samplers import compare, write_report

    sde = make_sdes()["vpsde"]
    reference = MIX.sample(512, generator=torch.Generator().manual_seed(1))
    grid = {"pc": (30,), "ode": (1e-3,), "ald": (2,),
            "fast": {"heun": (6,), "dpm_solver_3": (10,), "adaptive_sde": ((0.1, 0.02),), "torchsde": (10,)}}
    rows = compare(sde, MIX.score_fn(sde), reference, (512, 2), mixture=MIX, grid=grid, quick=True, log=None)
    by_name = {(r["family"], r["sampler"], r["setting"]): r for r in rows}
    assert not [r for r in rows if r.get("error")]
    assert by_name[("fast", "heun", "steps=6")]["nfe"] == 11
    assert by_name[("fast", "dpm_solver_3", "steps=10")]["nfe"] == 10
    assert by_name[("pc", "reverse_diffusion+langevin", "N=30")]["nfe"] == 60
    conv = by_name[("ode", "pf_ode_dopri5 (converged reference)", "tol=1e-07")]
    assert conv["sw_rel"] == 0 and conv["mode_weight_err"] < 0.05
    assert all({"sw", "mode_weight_err", "spread_rel", "wall_s"} <= set(r) for r in rows)
    paths = write_report(rows, str(tmp_path), "smoke")
    assert all(os.path.getsize(p) > 0 for p in paths.values())
