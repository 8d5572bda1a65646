"""sde_lib against its closed forms: marginals vs simulation, ladders, discretizations, reversal."""
import math

import pytest
import torch
from ml_collections import ConfigDict

from sde_lib import SDE, VESDE, VPSDE, subVPSDE, get_sde, ReverseSDE
from tests.analytic import GaussianMixture, make_sdes, two_mode_mixture

SDES = make_sdes(N=1000)
D64 = torch.float64


def _t(v, n=1):
    return torch.full((n,), float(v), dtype=D64)


@pytest.mark.parametrize("name", list(SDES))
def test_marginal_prob_matches_euler_maruyama_simulation(name):
    """Simulate dx = f dt + g dw from two starting points; mean and std at t match marginal_prob."""
    sde = SDES[name]
    g = torch.Generator().manual_seed(0)
    n_paths, n_steps, t_end = 4000, 1000, 0.6
    x0 = torch.cat([torch.full((n_paths, 1), 1.5, dtype=D64), torch.full((n_paths, 1), -0.5, dtype=D64)], 1)
    x = x0.clone()
    dt = t_end / n_steps
    for k in range(n_steps):
        t = _t(k * dt, n_paths)
        drift, diffusion = sde.sde(x, t)
        x = x + drift * dt + diffusion[:, None] * math.sqrt(dt) * torch.randn(x.shape, generator=g, dtype=D64)
    mean, std = sde.marginal_prob(x0, _t(t_end, n_paths))
    se_mean = std[0] / math.sqrt(n_paths)
    assert torch.allclose(x.mean(0), mean[0], atol=5 * se_mean + 2e-3 * std[0])
    emp_std = x.std(0)
    # relative std error of a sample std ~ 1/sqrt(2n); plus O(dt) discretization bias
    assert torch.allclose(emp_std, std[0].expand(2), rtol=5 / math.sqrt(2 * n_paths) + 5e-3)


def test_closed_forms_from_spec():
    t = torch.tensor([0., 0.25, 0.5, 1.], dtype=D64)
    x0 = torch.ones(4, 3, dtype=D64)
    ve, vp, svp = VESDE(0.01, 50.), VPSDE(0.1, 20.), subVPSDE(0.1, 20.)
    lmc = -t ** 2 * (20. - 0.1) / 4 - t * 0.1 / 2
    m, s = ve.marginal_prob(x0, t)
    assert torch.allclose(m, x0) and torch.allclose(s, 0.01 * (50. / 0.01) ** t)
    m, s = vp.marginal_prob(x0, t)
    assert torch.allclose(m, torch.exp(lmc)[:, None] * x0) and torch.allclose(s, torch.sqrt(1 - torch.exp(2 * lmc)))
    m, s = svp.marginal_prob(x0, t)
    assert torch.allclose(m, torch.exp(lmc)[:, None] * x0) and torch.allclose(s, 1 - torch.exp(2 * lmc))
    # SDE coefficients
    beta = 0.1 + t * (20. - 0.1)
    assert torch.allclose(vp.sde(x0, t)[1], torch.sqrt(beta))
    assert torch.allclose(vp.sde(x0, t)[0], -0.5 * beta[:, None] * x0)
    assert torch.allclose(svp.sde(x0, t)[1], torch.sqrt(beta * (1 - torch.exp(-2 * 0.1 * t - (20. - 0.1) * t ** 2))))
    sig = 0.01 * (50. / 0.01) ** t
    assert torch.allclose(ve.sde(x0, t)[1], sig * math.sqrt(2 * math.log(50. / 0.01)))
    assert torch.equal(ve.sde(x0, t)[0], torch.zeros_like(x0))


@pytest.mark.parametrize("name", list(SDES))
def test_variance_ode_consistency(name):
    """d/dt Var = 2 (df/dx) Var + g^2 for linear drift: checks sde() against marginal_coeffs()."""
    sde = SDES[name]
    t = torch.linspace(0.05, 0.95, 19, dtype=D64)
    h = 1e-6
    _, s_p = sde.marginal_coeffs(t + h)
    _, s_m = sde.marginal_coeffs(t - h)
    m_p, _ = sde.marginal_coeffs(t + h)
    m_m, _ = sde.marginal_coeffs(t - h)
    _, s = sde.marginal_coeffs(t)
    x = torch.ones(t.shape[0], 1, dtype=D64)
    drift, g = sde.sde(x, t)
    a = drift[:, 0]  # df/dx for x = 1 (drift is linear in x)
    dvar = (s_p ** 2 - s_m ** 2) / (2 * h)
    assert torch.allclose(dvar, 2 * a * s ** 2 + g ** 2, rtol=1e-5)
    dlogm = (torch.log(m_p) - torch.log(m_m)) / (2 * h)
    assert torch.allclose(dlogm, a, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", list(SDES))
def test_prior_sampling_and_logp(name):
    sde = SDES[name]
    g = torch.Generator().manual_seed(1)
    z = sde.prior_sampling((20000, 3), generator=g, dtype=D64)
    assert abs(float(z.std()) - sde.prior_std) < 0.02 * sde.prior_std
    ref = torch.distributions.Normal(0., sde.prior_std).log_prob(z).sum(-1)
    assert torch.allclose(sde.prior_logp(z), ref)
    z2 = sde.prior_sampling((20000, 3), generator=torch.Generator().manual_seed(1), dtype=D64)
    assert torch.equal(z, z2)
    img = sde.prior_sampling((4, 1, 2, 2), generator=g)
    assert img.shape == (4, 1, 2, 2) and sde.prior_logp(img).shape == (4,)


def test_discrete_ladders():
    ve = VESDE(0.01, 50., N=10)
    i = torch.arange(10, dtype=D64)
    assert torch.allclose(ve.discrete_sigmas, 0.01 * (50. / 0.01) ** (i / 9))
    assert bool((ve.discrete_sigmas[1:] > ve.discrete_sigmas[:-1]).all())
    vp = VPSDE(0.1, 20., N=100)
    assert torch.allclose(vp.discrete_betas, torch.linspace(0.1 / 100, 20. / 100, 100, dtype=D64))
    assert torch.allclose(vp.alphas_cumprod, torch.cumprod(1 - vp.discrete_betas, 0))


def test_discretize_matches_smld_and_ddpm_chains():
    N = 40
    ve, vp, svp = VESDE(0.01, 50., N=N), VPSDE(0.1, 20., N=N), subVPSDE(0.1, 20., N=N)
    x = torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=D64)
    t = torch.arange(N, dtype=D64) / (N - 1)
    f, G = ve.discretize(x, t)
    sig = ve.discrete_sigmas
    prev = torch.cat([torch.zeros(1, dtype=D64), sig[:-1]])
    assert torch.equal(f, torch.zeros_like(x)) and torch.allclose(G, torch.sqrt(sig ** 2 - prev ** 2))
    # the SMLD chain accumulates exactly sigma_{N-1}^2 of variance
    assert torch.allclose((G ** 2).sum(), sig[-1] ** 2)
    f, G = vp.discretize(x, t)
    b = vp.discrete_betas
    assert torch.allclose(f, torch.sqrt(1 - b)[:, None] * x - x) and torch.allclose(G, torch.sqrt(b))
    # DDPM chain: Var_i = (1 - beta_i) Var_{i-1} + beta_i from Var = 0 gives 1 - alphabar_i
    var = torch.zeros((), dtype=D64)
    for k in range(N):
        var = (1 - b[k]) * var + b[k]
        assert torch.allclose(var, 1 - vp.alphas_cumprod[k])
    f, G = svp.discretize(x, t)
    drift, g = svp.sde(x, t)
    assert torch.allclose(f, drift / N) and torch.allclose(G, g * math.sqrt(1 / N))


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("pf", [False, True])
def test_reverse_sde_and_probability_flow(name, pf):
    sde = SDES[name]
    gm = two_mode_mixture()
    score_fn = gm.score_fn(sde)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(3), dtype=D64)
    t = torch.linspace(0.01, 1., 6, dtype=D64)
    rev = sde.reverse(score_fn, probability_flow=pf)
    assert isinstance(rev, ReverseSDE) and rev.T == sde.T and rev.N == sde.N
    drift, g = sde.sde(x, t)
    s = score_fn(x, t)
    w = 0.5 if pf else 1.
    rd, rg = rev.sde(x, t)
    assert torch.allclose(rd, drift - (g ** 2)[:, None] * s * w)
    assert torch.allclose(rg, torch.zeros_like(g) if pf else g)
    f, G = sde.discretize(x, t)
    rf, rG = rev.discretize(x, t)
    assert torch.allclose(rf, f - (G ** 2)[:, None] * s * w)
    assert torch.allclose(rG, torch.zeros_like(G) if pf else G)


@pytest.mark.parametrize("name", list(SDES))
def test_probability_flow_transports_gaussian_marginals(name):
    """For Gaussian data the PF velocity equals d/dt of the marginal's quantile map x_t = m mu + (v_t/v_0)^(1/2) ..."""
    sde = SDES[name]
    a = 0.7
    gm = GaussianMixture([1.], [[0.3]], [a])
    t = torch.linspace(0.05, 0.95, 7, dtype=D64)
    x = torch.linspace(-2., 2., 7, dtype=D64)[:, None]
    rev = sde.reverse(gm.score_fn(sde), probability_flow=True)
    v, _ = rev.sde(x, t)
    # exact transport: x_t = m(t) mu + sd(t) u with u fixed; dx/dt = m' mu + sd' u
    h = 1e-6

    def msd(tt):
        m, s = sde.marginal_coeffs(tt)
        return m, torch.sqrt(m ** 2 * a ** 2 + s ** 2)
    m, sd = msd(t)
    mp, sdp = msd(t + h)
    mm, sdm = msd(t - h)
    u = (x[:, 0] - m * 0.3) / sd
    exact = (mp - mm) / (2 * h) * 0.3 + (sdp - sdm) / (2 * h) * u
    assert torch.allclose(v[:, 0], exact, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(SDES))
def test_ancestral_step_preserves_gaussian_marginals(name):
    """With the exact score of point data x0, one ancestral step maps p_t to p_{t'} (mean and variance).

    Uses the generic posterior form (base class) with t' = t - T/N; VE/VP override it with the
    SMLD/DDPM ladders, which are checked against their formulas below.
    """
    sde = SDES[name]
    x0 = 0.8
    t = torch.tensor([0.3, 0.6, 0.9], dtype=D64)
    m, s = sde.marginal_coeffs(t)
    mp, sp = sde.marginal_coeffs(t - sde.T / sde.N)
    # E over x_t ~ N(m x0, s^2): the step is affine in x_t, so propagate mean and variance exactly
    xs = torch.stack([m * x0, m * x0 + s])[..., None].reshape(2 * 3, 1)  # two points to read off the affine map
    tt = t.repeat(2)
    mm, ss = sde.marginal_coeffs(tt)
    score = -(xs[:, 0] - mm * x0) / ss ** 2
    mean, std = SDE.ancestral_step(sde, xs, tt, score[:, None])
    slope = (mean[3:, 0] - mean[:3, 0]) / s
    out_mean = mean[:3, 0]
    out_var = slope ** 2 * s ** 2 + std[:3] ** 2
    assert torch.allclose(out_mean, mp * x0, rtol=1e-6)
    assert torch.allclose(out_var, sp ** 2, rtol=1e-6)


def test_ancestral_formulas_smld_and_ddpm():
    N = 50
    ve, vp = VESDE(0.01, 50., N=N), VPSDE(0.1, 20., N=N)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=D64)
    sc = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=D64)
    idx = torch.tensor([0, 1, 10, 30, 49])
    t = idx.to(D64) / (N - 1)
    sig = ve.discrete_sigmas[idx]
    prev = torch.where(idx == 0, torch.zeros_like(sig), ve.discrete_sigmas[(idx - 1).clamp(min=0)])
    mean, std = ve.ancestral_step(x, t, sc)
    assert torch.allclose(mean, x + (sig ** 2 - prev ** 2)[:, None] * sc)
    assert torch.allclose(std, torch.sqrt(prev ** 2 * (sig ** 2 - prev ** 2) / sig ** 2))
    b = vp.discrete_betas[idx]
    mean, std = vp.ancestral_step(x, t, sc)
    assert torch.allclose(mean, (x + b[:, None] * sc) / torch.sqrt(1 - b)[:, None])
    assert torch.allclose(std, torch.sqrt(b))


def test_timestep_index_on_the_pc_grid():
    """linspace(T, eps, N) visits every ladder index N-1, ..., 0 exactly once."""
    for sde in SDES.values():
        grid = torch.linspace(sde.T, 1e-3, sde.N)
        idx = sde.timestep_index(grid)
        assert torch.equal(idx, torch.arange(sde.N - 1, -1, -1))


@pytest.mark.parametrize("name", list(SDES))
def test_log_snr_and_noise_level_inverses(name):
    sde = SDES[name]
    t = torch.linspace(1e-3, 1., 50, dtype=D64)
    assert torch.allclose(sde.t_from_log_snr(sde.log_snr(t)), t, rtol=1e-7, atol=1e-9)
    assert torch.allclose(sde.t_from_noise_level(sde.noise_level(t)), t, rtol=1e-7, atol=1e-9)
    m, s = sde.marginal_coeffs(t)
    assert torch.allclose(sde.log_snr(t), torch.log(m / s))
    assert bool((sde.log_snr(t)[1:] < sde.log_snr(t)[:-1]).all())  # SNR decreases in time


def test_model_conventions():
    t = torch.tensor([0.0, 0.5, 1.0])
    ve, vp = VESDE(0.01, 50., N=11), VPSDE(beta_max=5., N=11)
    out = torch.randn(3, 2)
    assert torch.equal(ve.model_output_to_score(out, t), out)
    assert torch.allclose(ve.model_label(t), ve.sigma(t))
    # discrete VE networks get the ladder index with 0 = sigma_max (score_sde / NCSNv2 order, SPEC)
    assert torch.equal(ve.model_label(t, continuous=False), torch.tensor([10., 5., 0.]))
    _, s = vp.marginal_coeffs(t + 1e-3)
    assert torch.allclose(vp.model_output_to_score(out, t + 1e-3), -out / s[:, None])
    abar = vp.alphas_cumprod[[0, 5, 10]].float()
    assert torch.allclose(vp.model_output_to_score(out, t, continuous=False), -out / torch.sqrt(1 - abar)[:, None])
    assert torch.allclose(vp.model_label(t), t * 999)          # continuous: 999 t whatever N (SPEC)
    assert torch.equal(vp.model_label(t, continuous=False), torch.tensor([0., 5., 10.]))


def test_mixture_score_is_gradient_of_log_prob():
    gm = two_mode_mixture()
    for sde in SDES.values():
        x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=D64).requires_grad_(True)
        t = torch.rand(16, generator=torch.Generator().manual_seed(1), dtype=D64)
        lp = gm.log_prob(x, t, sde)
        (grad,) = torch.autograd.grad(lp.sum(), x)
        assert torch.allclose(gm.score(x.detach(), t, sde), grad, rtol=1e-8, atol=1e-10)


def test_mixture_marginal_matches_perturbed_samples():
    """Samples x0 ~ p_0 pushed through the kernel N(m x0, s^2) have the closed-form mixture's moments."""
    gm = two_mode_mixture()
    g = torch.Generator().manual_seed(5)
    for sde in SDES.values():
        x0 = gm.sample(50000, generator=g, dtype=D64)
        t = torch.full((50000,), 0.3, dtype=D64)
        mean, std = sde.marginal_prob(x0, t)
        xt = mean + std[:, None] * torch.randn(x0.shape, generator=g, dtype=D64)
        m, s = sde.marginal_coeffs(t[:1])
        comp_var = m ** 2 * gm.stds ** 2 + s ** 2
        exact_mean = m * (gm.weights[:, None] * gm.means).sum(0)
        exact_second = (gm.weights[:, None] * (m ** 2 * gm.means ** 2 + comp_var[:, None])).sum(0)
        assert torch.allclose(xt.mean(0), exact_mean, atol=4 * float(xt.std()) / math.sqrt(50000))
        assert torch.allclose((xt ** 2).mean(0), exact_second, rtol=0.03)


def test_validation_errors_name_the_argument():
    sde = VPSDE()
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="t"):
        sde.sde(x, torch.tensor([0.1, 0.2, 1.5]))
    with pytest.raises(ValueError, match="t"):
        sde.marginal_prob(x, torch.tensor([-0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"t must have shape \[3\]"):
        sde.sde(x, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="x"):
        sde.sde(torch.tensor([[float("nan"), 0.]] * 3), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="x0"):
        sde.marginal_prob(torch.tensor([[float("inf"), 0.]] * 3), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="z"):
        sde.prior_logp(torch.tensor([[float("nan"), 0.]]))
    with pytest.raises(ValueError, match="shape"):
        sde.prior_sampling((0, 2))
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=1., sigma_max=0.5)
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=-1.)
    with pytest.raises(ValueError, match="N"):
        subVPSDE(N=0)
    # N <= beta_max: a valid continuous SDE (issue 10, item 10); only the DDPM chain's steps are refused
    with pytest.raises(ValueError, match="N=10 is too small"):
        VPSDE(beta_max=20., N=10).discretize(x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="score_fn"):
        sde.reverse(None)


def test_get_sde_from_config():
    cfg = ConfigDict({"training": {"sde": "vesde"}, "model": {"sigma_min": 0.02, "sigma_max": 10., "num_scales": 100}})
    sde = get_sde(cfg)
    assert isinstance(sde, VESDE) and sde.sigma_max == 10. and sde.N == 100
    cfg.training.sde = "subvpsde"
    assert isinstance(get_sde(cfg), subVPSDE)
    cfg.training.sde = "nope"
    with pytest.raises(ValueError, match="config.training.sde"):
        get_sde(cfg)
