"""iPNDM, UniPC, DEIS, the time grids, solver="auto" and the sigma-variable likelihood, against exact answers.

For Gaussian data N(mu, s^2 I) the probability-flow ODE is solved in closed form: in the VE-equivalent
variable y = x / m, sigma = s(t) / m(t), y(sigma) = mu + (y_T - mu) sqrt((s^2 + sigma^2) / (s^2 + sigma_T^2)).
Convergence orders are measured as log2(error(n) / error(2n)) (figures measured with these seeds,
torch 2.13 CPU).
"""
from __future__ import annotations

import math

import pytest
import torch

from samplers.fast import AUTO, SOLVERS, auto_solver, fast_sample
from samplers.fast_common import VEView
from samplers.grids import GRIDS, sigma_grid
from sde_lib import VESDE, VPSDE
from sde_lib.mixture import GaussianMixture

GAUSS = GaussianMixture([1.], [[0.5, -0.3]], [0.6])
SDES = {"vpsde": VPSDE(), "vesde": VESDE(sigma_min=0.01, sigma_max=20.)}


def exact_flow(sde, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """x(eps) = m(eps) y(sigma(eps)) of the probability-flow ODE from z at T, Gaussian data."""
    m, s = sde.marginal_coeffs(torch.tensor([sde.T, eps], dtype=torch.float64))
    (sig_T, sig_e), (m_T, m_e) = (s / m).tolist(), m.tolist()
    mu, s2 = GAUSS.means[0], float(GAUSS.stds[0]) ** 2
    return m_e * (mu + (z / m_T - mu) * math.sqrt((s2 + sig_e ** 2) / (s2 + sig_T ** 2)))


def errors(sde_name, solver, steps, scale=1., **kw):
    sde = SDES[sde_name]
    z = sde.prior_sampling((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ex = exact_flow(sde, z)
    out = []
    for n in steps:
        x, nfe = fast_sample(sde, GAUSS.score_fn(sde, scale=scale), (64, 2), solver=solver, steps=n, z=z, **kw)
        assert nfe == n
        out.append(float((x - ex).abs().max()))
    return out


#: (solver, options, minimum observed order over 32 -> 64 steps); measured VP / VE in the comments
ORDER_CASES = [
    ("ddim", {}, 0.8),                                                        # 0.97 / 0.98
    ("ipndm", {}, 1.8),               # published fixed coefficients on a non-uniform grid: second order, 1.96 / 1.88
    ("ipndm", {"coefficients": "variable", "grid": "edm"}, 3.2),              # 3.40 / 3.59 (-> 4)
    ("ipndm", {"coefficients": "variable"}, 3.0),            # default vp_time grid: 3.21 / 3.15 (3.51 / 3.23 at 64 -> 128)
    ("unipc", {"denoise": False, "grid": "logsnr", "lower_order_final": False, "order": 2}, 2.7),  # UniP-2 + UniC: 3.11 / 3.10
    ("unipc", {"grid": "logsnr", "lower_order_final": False, "variant": "bh1", "order": 3}, 2.8),  # UniP-3 + UniC: 2.93 / 3.33
    ("unipc", {"denoise": False, "grid": "logsnr", "lower_order_final": False, "order": 3}, 2.8),  # low_noise
    ("unipc", {"denoise": False, "grid": "logsnr", "lower_order_final": False, "variant": "bh2", "order": 3}, 2.8),  # 2.93 / 3.33
    ("deis", {"lower_order_final": False}, 2.6),                              # tAB-3: 2.80 / 3.40 (-> 3)
    ("dpm_solver_3", {"lower_order_final": False}, 3.0),                      # 4.02 / 5.43
    ("ipndm", {"coefficients": "variable", "corrector": True}, 3.8),         # AB4 + AM5 (PEC): 4.08 / 3.95
    ("deis", {"lower_order_final": False, "corrector": True}, 3.5),          # 4.05 / 4.07
    ("unipc", {"denoise": False, "grid": "logsnr", "lower_order_final": False, "order": 4}, 4.5),   # UniP-4 + UniC: 4.98 / 5.11
    ("unipc", {"grid": "logsnr", "lower_order_final": False, "variant": "exact", "order": 4}, 4.5),  # 4.98 / 5.22
]


@pytest.mark.parametrize("sde_name", sorted(SDES))
@pytest.mark.parametrize("solver,kw,min_order", ORDER_CASES)
def test_convergence_order_on_a_gaussian(sde_name, solver, kw, min_order):
    e32, e64 = errors(sde_name, solver, (32, 64), **kw)
    order = math.log2(e32 / e64)
    assert order >= min_order, (solver, kw, e32, e64, order)


@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_unipc_defaults_converge_past_second_order(sde_name):
    """With lower_order_final the last steps of bh1 / bh2 / exact are first order, which caps the global
    order at 2; the default low_noise variant keeps order 2 there (the sigma^2 weight): order > 3."""
    e64, e128 = errors(sde_name, "unipc", (64, 128))
    b64, b128 = errors(sde_name, "unipc", (64, 128), variant="bh1")
    assert math.log2(e64 / e128) > 3.2, (e64, e128)                     # 3.40 / 3.50 (3.68 / 3.73 at 256)
    assert math.log2(b64 / b128) < 2.4, (b64, b128)                     # 2.12 / 2.18


def test_wrong_score_does_not_converge():
    for solver in ("ipndm", "unipc", "deis"):
        (e,) = errors("vpsde", solver, (64,), scale=0.5)
        assert e > 0.1, (solver, e)
        (e,) = errors("vpsde", solver, (64,))
        assert e < 1e-2, (solver, e)              # measured 4.2e-3 (unipc), 6.7e-4 (ipndm), 4.0e-4 (deis); wrong: 28


def test_denoise_false_returns_x_not_y():
    """Issue 10 item 12: with denoise=False the solvers end at sigma(eps) and must return x = m(eps) y,
    not y = x / m(eps) (VP: 1 / m(eps) - 1 = 5.5e-5 relative)."""
    sde = SDES["vpsde"]
    z = sde.prior_sampling((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ex = exact_flow(sde, z)
    for solver in ("dpm_solver_3", "unipc", "ipndm", "deis"):
        kw = {"coefficients": "variable"} if solver == "ipndm" else {"grid": "logsnr"}
        x, _ = fast_sample(sde, GAUSS.score_fn(sde), (64, 2), solver=solver, steps=400, z=z, denoise=False, **kw)
        rel = float((x - ex).norm() / ex.norm())
        assert rel < 1e-5, (solver, rel)                       # measured ~1e-8; y instead of x: 5.5e-5


def test_free_denoise_converges_to_the_denoised_ode():
    """denoise="free" returns the solver's own estimate of D(y(sigma_min), sigma_min) (no evaluation):
    it converges to the converged ODE followed by the denoising step; for this Gaussian that target
    differs from x(eps) by 5e-4."""
    for sde in SDES.values():
        z = sde.prior_sampling((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x_e = exact_flow(sde, z)
        m, s = sde.marginal_coeffs(torch.tensor([1e-3], dtype=torch.float64))
        m, sig = float(m[0]), float(s[0] / m[0])
        mu, s2 = GAUSS.means[0], float(GAUSS.stds[0]) ** 2
        target = (s2 * x_e / m + sig ** 2 * mu) / (s2 + sig ** 2)
        assert float((x_e - target).abs().max()) > 4e-4
        for solver, kw, tol in [("unipc", {"grid": "logsnr", "lower_order_final": False, "order": 4}, 1e-5),  # 4e-6 / 1e-6
                                ("ipndm", {"coefficients": "variable"}, 1e-3),                    # 3e-4
                                ("deis", {"grid": "logsnr", "lower_order_final": False}, 2e-3)]:  # 1.2e-3 / 3e-5
            errs = []
            for n in (32, 64):
                x, nfe = fast_sample(sde, GAUSS.score_fn(sde), (64, 2), solver=solver, steps=n, z=z,
                                     denoise="free", **kw)
                assert nfe == n
                errs.append(float((x - target).abs().max()))
            assert errs[1] < tol and errs[1] < errs[0], (solver, errs)


def test_default_grids_follow_the_sde():
    """grid=None: each solver's measured default for drift-free (VE) and other (VP) SDEs."""
    for sde_name, expected in [("vesde", {"ipndm": "vp_time", "unipc": "vp_time", "deis": "logsnr"}),
                               ("vpsde", {"ipndm": "vp_time", "unipc": "vp_time", "deis": "vp_time"})]:
        sde = SDES[sde_name]
        z = sde.prior_sampling((32, 2), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        for solver, grid in expected.items():
            a, _ = fast_sample(sde, GAUSS.score_fn(sde), (32, 2), solver=solver, steps=7, z=z)
            b, _ = fast_sample(sde, GAUSS.score_fn(sde), (32, 2), solver=solver, steps=7, z=z, grid=grid)
            assert torch.equal(a, b), (sde_name, solver)


@pytest.mark.parametrize("solver", ["ipndm", "unipc", "deis"])
def test_nfe_is_steps_and_options(solver):
    sde = SDES["vesde"]
    z = sde.prior_sampling((16, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls = []

    def score(x, t):
        calls.append(float(t[0]))
        return GAUSS.score(x, t, sde)
    for steps in (1, 2, 5, 12):
        for denoise in (False, True, "free"):
            for grid in GRIDS:
                calls.clear()
                x, nfe = fast_sample(sde, score, (16, 2), solver=solver, steps=steps, z=z, denoise=denoise,
                                     grid=grid)
                assert nfe == steps == len(calls) and bool(torch.isfinite(x).all())
                assert calls[0] == pytest.approx(sde.T)          # the first evaluation is where z lives
    with pytest.raises(ValueError, match="order"):
        fast_sample(sde, score, (16, 2), solver=solver, order=7)
    with pytest.raises(ValueError, match="denoise"):
        fast_sample(sde, score, (16, 2), solver=solver, denoise="yes")
    with pytest.raises(ValueError, match="grid"):
        fast_sample(sde, score, (16, 2), solver=solver, grid="cosine")


def test_option_validation():
    sde = SDES["vpsde"]
    fn = GAUSS.score_fn(sde)
    for solver, kw, name in [("unipc", {"variant": "bh3"}, "variant"), ("ipndm", {"corrector": "on"}, "corrector"), ("ipndm", {"coefficients": "exact"}, "coefficients"),
                             ("deis", {"variable": "lambda"}, "variable"), ("unipc", {"corrector": 1}, "corrector"),
                             ("ipndm", {"lower_order_final": "yes"}, "lower_order_final"),
                             ("deis", {"sigma_max": 1e4}, "sigma_max"), ("unipc", {"rho": -1.}, "rho")]:
        with pytest.raises(ValueError, match=name):
            fast_sample(sde, fn, (8, 2), solver=solver, **kw)


def test_grids_span_and_order():
    sde = SDES["vpsde"]
    view = VEView(sde, None, torch.zeros(1, 2))
    s_T, s_e = view.sigma_of_t(1.), view.sigma_of_t(1e-3)
    for kind in GRIDS:
        g = sigma_grid(view, 9, kind, 1e-3)
        assert len(g) == 9 and g[0] == pytest.approx(s_T) and g[-1] == pytest.approx(s_e)
        assert all(a > b for a, b in zip(g, g[1:])), kind
    lam = [-math.log(s) for s in sigma_grid(view, 6, "logsnr", 1e-3)]
    assert max(abs((a - b) - (lam[0] - lam[1])) for a, b in zip(lam, lam[1:])) < 1e-12
    ts = [view.time_of_sigma(s) for s in sigma_grid(view, 5, "time_quadratic", 1e-3)]
    r = [math.sqrt(t) for t in ts]
    assert max(abs((a - b) - (r[0] - r[1])) for a, b in zip(r, r[1:])) < 1e-9
    capped = sigma_grid(view, 6, "edm", 1e-3, sigma_max=80.)
    assert capped[0] == pytest.approx(s_T) and capped[1] == pytest.approx(80.)


def test_long_final_step_rule():
    """deis's lower_order_final=None: lower the final orders only after a long last log-sigma step."""
    from samplers.fast_multistep import long_final_step

    for sde_name, expected in [("vpsde", {"logsnr": False, "edm": True, "time": True, "vp_time": True}),
                               ("vesde", {"logsnr": False, "edm": True, "time": False, "vp_time": True})]:
        view = VEView(SDES[sde_name], None, torch.zeros(1, 2))
        for grid, long in expected.items():
            assert long_final_step(sigma_grid(view, 11, grid, 1e-3)) is long, (sde_name, grid)


def test_auto_solver():
    assert {"ipndm", "unipc", "deis", "heun", "ddim", "dpm_solver_2", "dpm_solver_3"} <= set(SOLVERS)
    for sde in SDES.values():
        assert all(auto_solver(n, sde) in SOLVERS for n in range(1, 40))
        for n in (5, 7, 8, 20):
            x, nfe = fast_sample(sde, GAUSS.score_fn(sde), (8, 2), solver="auto", steps=n,
                                 generator=torch.Generator().manual_seed(0))
            assert nfe == n and x.shape == (8, 2)
    assert auto_solver(20, SDES["vesde"]) == AUTO["drift_free"][-1][1] and auto_solver(5, SDES["vpsde"]) == "unipc"


def test_unipc_matches_diffusers_uniPC():
    """The same algorithm on the same grid: diffusers' UniPCMultistepScheduler (bh1, order 3,
    time-uniform timesteps, final sigma_min) and unipc(grid="time", variant="bh1")."""
    pytest.importorskip("diffusers")
    from benchmarks.fewstep_peers import _diffusers_runner
    from sde_lib.mixture import two_mode_mixture

    mix = two_mode_mixture()
    sde = SDES["vpsde"]
    z = sde.prior_sampling((256, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = _diffusers_runner("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1",
                                                        "final_sigmas_type": "sigma_min"})
    for n in (5, 8):
        xd, nfe_d, _ = run(sde, mix.score_fn(sde), z, n, 1e-3)
        x, nfe = fast_sample(sde, mix.score_fn(sde), (256, 2), solver="unipc", steps=n, z=z, grid="time",
                             variant="bh1")
        assert nfe == nfe_d == n
        # diffusers rounds the timesteps to integers of a 1000-level table (float32): small differences
        assert float((x - xd).norm() / xd.norm()) < 2e-2


def test_likelihood_in_sigma_is_exact():
    from likelihood import log_likelihood
    from sde_lib.mixture import two_mode_mixture

    mix = two_mode_mixture()
    x = mix.sample(128, generator=torch.Generator().manual_seed(3))
    for sde in SDES.values():
        ref = mix.log_prob(x, torch.full((128,), 1e-5, dtype=torch.float64), sde)
        lp_t, _, nfe_t = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact")
        lp_s, _, nfe_s = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", variable="sigma")
        # the two integrations agree far below the prior-mismatch error of the VE case (3.8e-3 nats)
        assert float((lp_s - lp_t).abs().max()) < 2e-3 and float((lp_s - ref).abs().mean()) < 5e-3
        assert nfe_s > 0 and nfe_t > 0
    with pytest.raises(ValueError, match="variable"):
        log_likelihood(SDES["vpsde"], mix.score_fn(SDES["vpsde"]), x, variable="lambda")


def test_low_noise_weight_is_exact_for_sigma_squared():
    """UniPC's variant="low_noise": below sigma_data the one-difference update integrates
    D(lambda) = a + b sigma^2 = a + b e^{-2 lambda} (the denoiser's low-noise expansion) exactly, in the
    predictor (an older point, r < 0) and the corrector (r = 1: weight tanh(h / 2)); above sigma_data
    it is UniPC's bh1."""
    from samplers.fast_multistep import _unipc_step, low_noise_k1

    def exact(lam_s, h, a, b, y_s=0.4):     # e^{-h} y_s + int_0^h e^{-(h-u)} (a + b e^{-2(lam_s + u)}) du
        return math.exp(-h) * y_s + a * -math.expm1(-h) + b * math.exp(-2 * lam_s - h) * -math.expm1(-h)

    a, b = 0.3, -1.7
    D = lambda lam: torch.tensor([a + b * math.exp(-2. * lam)], dtype=torch.float64)   # noqa: E731
    y_s = torch.tensor([0.4], dtype=torch.float64)
    for lam_s, h, r in [(0.2, 1.1, 1.), (0.5, 3., -0.8), (2., 0.4, -1.3), (4.5, 4.2, -0.35)]:
        older, D_t = ([], D(lam_s + h)) if r == 1. else ([(lam_s + r * h, D(lam_s + r * h))], None)
        y = _unipc_step(y_s, lam_s, lam_s + h, D(lam_s), older, D_t, "low_noise", 1.)
        assert float(y[0]) == pytest.approx(exact(lam_s, h, a, b), rel=1e-12), (lam_s, h, r)
        bh1 = _unipc_step(y_s, lam_s, lam_s + h, D(lam_s), older, D_t, "bh1", 1.)
        assert abs(float(bh1[0]) - exact(lam_s, h, a, b)) > 1e-3                 # the polynomial model is not
    for h in (0.5, 2.):
        assert low_noise_k1(h, 1.) == pytest.approx(math.tanh(h / 2), rel=1e-12)
        assert abs(low_noise_k1(8., -1.)) < 1e-6                                   # damped over long steps
    older = [(-3.5, D(-3.5))]                                                      # sigma_s = e^3 > sigma_data
    assert torch.equal(_unipc_step(y_s, -3., -1., D(-3.), older, None, "low_noise", 1.),
                       _unipc_step(y_s, -3., -1., D(-3.), older, None, "bh1", 1.))
    with pytest.raises(ValueError, match="sigma_data"):
        fast_sample(SDES["vpsde"], GAUSS.score_fn(SDES["vpsde"]), (8, 2), solver="unipc", sigma_data=0.)


def test_vp_time_grid_is_schedule_free():
    """grid="vp_time": uniform in log(1 + sigma^2)^(1 / (2 power)), the same levels for every SDE over
    the same range, and the time-uniform / time-quadratic grid of a linear VP SDE with beta_min -> 0."""
    from sde_lib import subVPSDE
    from samplers.grids import vp_time_sigmas

    vp0 = VPSDE(beta_min=1e-9, beta_max=20.)
    view = VEView(vp0, None, torch.zeros(1, 2))
    for power, kind in ((1., "time"), (2., "time_quadratic")):
        ours = sigma_grid(view, 7, "vp_time", 1e-3, power=power)
        theirs = sigma_grid(view, 7, kind, 1e-3)
        assert max(abs(math.log(a / b)) for a, b in zip(ours, theirs)) < 1e-6, kind
    g = vp_time_sigmas(150., 1e-4, 9, 2.)
    u = [math.log1p(s * s) ** 0.25 for s in g]
    assert g[0] == 150. and g[-1] == 1e-4 and max(abs((a - b) - (u[0] - u[1])) for a, b in zip(u, u[1:])) < 1e-12
    vp, sub = VEView(VPSDE(), None, torch.zeros(1, 2)), VEView(subVPSDE(), None, torch.zeros(1, 2))
    lo = vp.sigma_of_t(1e-3)
    a = sigma_grid(vp, 6, "vp_time", 1e-3)
    b = sigma_grid(sub, 6, "vp_time", 1e-3, sigma_min=lo, sigma_max=None)
    assert max(abs(math.log(x / y)) for x, y in zip(a, b)) < 1e-3       # sigma(T) of the two differ by 3e-4
    with pytest.raises(ValueError, match="power"):
        sigma_grid(vp, 6, "vp_time", 1e-3, power=0.)
