"""log_likelihood and bits_per_dim against closed-form densities.

Reference: for a Gaussian mixture (tests.analytic) log p_eps(x) is closed-form under every SDE. The
ODE returns log p_T(z) + int div, with p_T replaced by the prior; where we want the solver error
alone we swap the prior for the exact p_T (``_exact_pT``), which differs by < 0.03 nats for VE.
Tolerances used: rtol = atol = 1e-6 in float64 for the exact-trace checks (measured max error
~5e-4 nats), rtol = atol = 1e-5 elsewhere.
"""
from __future__ import annotations

import math

import pytest
import torch

from likelihood import DIVERGENCES, FlowWithDivergence, bits_per_dim, dormand_prince, log_likelihood
from sde_lib import VPSDE
from sde_lib.checks import rand
from tests.analytic import GaussianMixture, make_sdes, mixture_nd, two_mode_mixture

EPS = 1e-5
SDES = make_sdes()


def _times(x, t):
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _exact_pT(lp, z, mix, sde):
    """Replace the prior's log-density at z by the exact log p_T(z) (isolates the ODE error)."""
    return lp - sde.prior_logp(z) + mix.log_prob(z, _times(z, sde.T), sde)


def _counting(fn):
    calls = [0]

    def wrapped(x, t):
        calls[0] += 1
        return fn(x, t)
    return wrapped, calls


# ---------------------------------------------------------------------------- 1. exact trace, D = 2
@pytest.mark.parametrize("name", list(SDES))
def test_exact_trace_matches_closed_form(name):
    sde, mix = SDES[name], two_mode_mixture()
    x = mix.sample(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = mix.log_prob(x, _times(x, EPS), sde)
    lp, z, nfe = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", rtol=1e-6, atol=1e-6, eps=EPS)
    assert lp.dtype == torch.float64 and z.shape == x.shape and nfe > 0
    ode_err = (_exact_pT(lp, z, mix, sde) - ref).abs()
    assert float(ode_err.max()) < 0.01, float(ode_err.max())
    assert float((lp - ref).abs().mean()) < 0.01           # including the prior-for-p_T swap
    # the latent looks like the prior: per-coordinate std close to prior_std
    assert abs(float(z.std()) / sde.prior_std - 1) < 0.25
    # a wrong score (half the exact one) is far off
    lp_bad, _, _ = log_likelihood(sde, mix.score_fn(sde, scale=0.5), x, hutchinson="exact", rtol=1e-6,
                                  atol=1e-6, eps=EPS)
    assert float((lp_bad - ref).abs().mean()) > 1.0


def test_rk45_matches_torchdiffeq_dopri5_and_fixed_grid():
    sde, mix = SDES["vpsde"], two_mode_mixture()
    x = mix.sample(32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    lp_a, _, _ = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", rtol=1e-6, atol=1e-6)
    lp_b, _, _ = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", rtol=1e-6, atol=1e-6,
                                method="dopri5")
    assert float((lp_a - lp_b).abs().max()) < 2e-3
    lp_c, _, nfe = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", method="rk4", steps=100)
    assert nfe == 400 and float((lp_a - lp_c).abs().max()) < 0.02
    lp_d, _, _ = log_likelihood(sde, mix.score_fn(sde), x, hutchinson="exact", method="euler", steps=20)
    assert float((lp_a - lp_d).abs().max()) > 0.05                  # a coarse Euler grid is visibly off


def test_dormand_prince_solver_accuracy_and_cost():
    """y' = cos(t) y on [0, 10]: y(10) = y0 exp(sin 10); error shrinks with rtol; NFE like torchdiffeq's."""
    from torchdiffeq import odeint
    y0 = torch.linspace(0.5, 2., 7, dtype=torch.float64)
    exact = y0 * math.exp(math.sin(10.))
    calls = [0]

    def f(t, y, out=None):
        calls[0] += 1
        r = math.cos(t) * y if isinstance(t, float) else torch.cos(t) * y
        return r if out is None else out.copy_(r)
    errs = []
    for tol in (1e-4, 1e-8):
        calls[0] = 0
        y1 = dormand_prince(f, y0, 0., 10., rtol=tol, atol=tol)
        errs.append(float((y1 - exact).abs().max()))
        ours = calls[0]
        calls[0] = 0
        odeint(f, y0, torch.tensor([0., 10.], dtype=torch.float64), rtol=tol, atol=tol, method="dopri5")
        assert 0.6 * calls[0] <= ours <= 1.4 * calls[0]
    assert errs[0] < 1e-2 and errs[1] < 1e-6 and errs[1] < 1e-3 * errs[0]
    with pytest.raises(RuntimeError, match="max_steps"):
        dormand_prince(f, y0, 0., 10., rtol=1e-8, atol=1e-8, max_steps=5)


# ---------------------------------------------------------------------------- 2. Hutchinson, D = 48
@pytest.fixture(scope="module")
def hutch_setup():
    sde, mix = SDES["vpsde"], mixture_nd(48)
    x = mix.sample(96, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = mix.log_prob(x, _times(x, EPS), sde)
    return sde, mix, x, ref


def _hutch_errors(sde, mix, x, ref, kind, n_probes, seed, scale=1.):
    lp, z, _ = log_likelihood(sde, mix.score_fn(sde, scale), x, hutchinson=kind, n_probes=n_probes,
                              generator=torch.Generator().manual_seed(seed))
    return _exact_pT(lp, z, mix, sde) - ref


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_and_probes_reduce_spread(hutch_setup, kind):
    sde, mix, x, ref = hutch_setup
    n = x.shape[0]
    e1 = _hutch_errors(sde, mix, x, ref, kind, 1, seed=10)
    se1 = float(e1.std() / math.sqrt(n))
    print(f"\n{kind} D=48 n_probes=1: mean error {float(e1.mean()):+.4f} nats, std {float(e1.std()):.4f}, "
          f"std error {se1:.4f}")
    assert abs(float(e1.mean())) < 3 * se1
    assert float(e1.std()) > 1e-3                         # the estimate really is stochastic
    e4 = _hutch_errors(sde, mix, x, ref, kind, 4, seed=11)
    se4 = float(e4.std() / math.sqrt(n))
    print(f"{kind} D=48 n_probes=4: mean error {float(e4.mean()):+.4f} nats, std {float(e4.std()):.4f}, "
          f"std error {se4:.4f}")
    assert abs(float(e4.mean())) < 3 * se4
    assert float(e4.std()) < 0.7 * float(e1.std())          # ideal ratio 1/2
    # a slightly wrong score (0.9x) is a bias many standard errors away
    e_bad = _hutch_errors(sde, mix, x, ref, kind, 1, seed=10, scale=0.9)
    assert abs(float(e_bad.mean())) > 3 * se1


# ---------------------------------------------------------------------------- 3. bits per dim
def test_bits_per_dim_formula_and_dequantization_generator():
    sde, mix = SDES["subvpsde"], two_mode_mixture()
    g = torch.Generator().manual_seed(4)
    x = ((mix.sample(16, generator=g) + 4.) / 8.).clamp(0., 1.)          # in [0, 1]
    x = torch.floor(x * 255) / 255                                       # discrete levels
    D, delta = 2, 1. / 256
    bpd = bits_per_dim(sde, mix.score_fn(sde), x, dequantize=False, generator=torch.Generator().manual_seed(5))
    lp, _, _ = log_likelihood(sde, mix.score_fn(sde), x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(bpd, -(lp + D * math.log(delta)) / (D * math.log(2)))
    # dequantization: U[0,1) drawn first from the generator passed through, then the probes
    b1 = bits_per_dim(sde, mix.score_fn(sde), x, generator=torch.Generator().manual_seed(6))
    b2 = bits_per_dim(sde, mix.score_fn(sde), x, generator=torch.Generator().manual_seed(6))
    b3 = bits_per_dim(sde, mix.score_fn(sde), x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(b1, b2) and not torch.equal(b1, b3)
    g6 = torch.Generator().manual_seed(6)
    xt = x + rand(x.shape, generator=g6) * delta
    lp6, _, _ = log_likelihood(sde, mix.score_fn(sde), xt, generator=g6)
    assert torch.equal(b1, -(lp6 + D * math.log(delta)) / (D * math.log(2)))
    # a wrong formula (no log-bin-width term) is nowhere near
    assert float((b1 - (-lp6 / (D * math.log(2)))).abs().min()) > 7.


def _uniform_logp_and_score(a, b):
    """log p_t and score of U[a, b]^D pushed through the kernel N(m x0, s^2 I) (per dim:
    (Phi(beta) - Phi(alpha)) / (m (b - a)), alpha = (m a - x)/s, beta = (m b - x)/s)."""
    def parts(x, t, sde):
        m, s = sde.marginal_coeffs(t.to(x.dtype))
        m, s = m.reshape(-1, 1), s.reshape(-1, 1)
        al, be = (m * a - x) / s, (m * b - x) / s
        flip = al > 0                                   # use the upper tail where it is more accurate
        lo, hi = torch.where(flip, -be, al), torch.where(flip, -al, be)
        l_hi, l_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
        logmass = l_hi + torch.log1p(-torch.exp(l_lo - l_hi))
        logp = (logmass - torch.log(m * (b - a))).sum(1)
        logphi = lambda u: -0.5 * u * u - 0.5 * math.log(2 * math.pi)
        score = (torch.exp(logphi(al) - logmass) - torch.exp(logphi(be) - logmass)) / s
        return logp, score
    return (lambda x, t, sde: parts(x, t, sde)[0]), (lambda sde: (lambda x, t: parts(x, t, sde)[1]))


def test_bits_per_dim_uniform_grid_is_log2_bins():
    """Data uniform on the n_bins^2 grid of [-1, 1]^2, model = the uniform density: bpd = log2(n_bins);
    a moment-matched Gaussian model costs clearly more bits (cross-entropy > entropy)."""
    sde, n_bins, (a, b) = VPSDE(), 8, (-1., 1.)
    logp_fn, score_of = _uniform_logp_and_score(a, b)
    levels = a + (b - a) * torch.arange(n_bins, dtype=torch.float64) / n_bins
    x = torch.cartesian_prod(levels, levels)                             # [64, 2], every cell once
    kw = dict(data_range=(a, b), n_bins=n_bins, hutchinson="exact", rtol=1e-6, atol=1e-6)
    bpd = bits_per_dim(sde, score_of(sde), x, generator=torch.Generator().manual_seed(8), **kw)
    assert abs(float(bpd.mean()) - math.log2(n_bins)) < 0.02, float(bpd.mean())
    # per sample against the closed-form log p_eps at the same dequantized points
    g = torch.Generator().manual_seed(8)
    xt = x + rand(x.shape, generator=g, dtype=x.dtype) * (b - a) / n_bins
    ref = -(logp_fn(xt, _times(xt, EPS), sde) + 2 * math.log((b - a) / n_bins)) / (2 * math.log(2))
    assert float((bpd - ref).abs().max()) < 0.01
    gauss = GaussianMixture([1.], torch.zeros(1, 2, dtype=torch.float64), [math.sqrt(1. / 3.)])
    bpd_g = bits_per_dim(sde, gauss.score_fn(sde), x, generator=torch.Generator().manual_seed(8), **kw)
    assert float(bpd_g.mean()) > math.log2(n_bins) + 0.15


def test_bits_per_dim_bad_inputs():
    sde, mix = SDES["vpsde"], two_mode_mixture()
    x = torch.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="x"):
        bits_per_dim(sde, mix.score_fn(sde), x + 1.)                    # outside data_range
    with pytest.raises(ValueError, match="n_bins"):
        bits_per_dim(sde, mix.score_fn(sde), x, n_bins=1)
    with pytest.raises(ValueError, match="n_bins"):
        bits_per_dim(sde, mix.score_fn(sde), x, n_bins=2.5)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(sde, mix.score_fn(sde), x, data_range=(1., 0.))
    with pytest.raises(ValueError, match="generator"):
        bits_per_dim(sde, mix.score_fn(sde), x, generator=1)


# ---------------------------------------------------------------------------- 4. engineering
def test_chunking_shapes_reproducibility_and_nfe():
    sde = SDES["vesde"]
    mix48 = mixture_nd(48)
    mix_img = GaussianMixture(mix48.weights, mix48.means.reshape(2, 3, 4, 4), mix48.stds)
    x = mix48.sample(24, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    kw = dict(rtol=1e-6, atol=1e-6)
    score_fn, calls = _counting(mix48.score_fn(sde))
    lp, z, nfe = log_likelihood(sde, score_fn, x, generator=torch.Generator().manual_seed(13), **kw)
    assert nfe == calls[0] and z.shape == x.shape and lp.shape == (24,)
    # same result in chunks (same probes: drawn for the whole batch first)
    score_fn, calls = _counting(mix48.score_fn(sde))
    lp_c, z_c, nfe_c = log_likelihood(sde, score_fn, x, generator=torch.Generator().manual_seed(13),
                                      max_batch=10, **kw)
    assert nfe_c == calls[0] and nfe_c > nfe
    assert float((lp_c - lp).abs().max()) < 1e-3 and float((z_c - z).abs().max()) < 1e-3
    # the same data as an image batch [B, 3, 4, 4]: identical numbers
    lp_i, z_i, _ = log_likelihood(sde, mix_img.score_fn(sde), x.reshape(24, 3, 4, 4),
                                  generator=torch.Generator().manual_seed(13), **kw)
    assert z_i.shape == (24, 3, 4, 4)
    assert float((lp_i - lp).abs().max()) < 1e-9
    # bitwise reproducible with the same seed; float32 in -> float32 out
    lp2, _, _ = log_likelihood(sde, mix48.score_fn(sde), x, generator=torch.Generator().manual_seed(13), **kw)
    assert torch.equal(lp, lp2)
    mix2 = two_mode_mixture()
    x2 = mix2.sample(16, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    ex64, _, _ = log_likelihood(sde, mix2.score_fn(sde), x2, hutchinson="exact")
    ex32, z32, _ = log_likelihood(sde, mix2.score_fn(sde), x2.float(), hutchinson="exact")
    assert ex32.dtype == torch.float32 and z32.dtype == torch.float32
    assert float((ex32.double() - ex64).abs().max()) < 0.01


@pytest.mark.parametrize("method,steps,per_step", [("euler", 7, 1), ("heun", 7, 2), ("rk4", 5, 4),
                                                   ("rk45", None, None), ("dopri5", None, None),
                                                   ("bosh3", None, None), ("adaptive_heun", None, None)])
def test_nfe_counts_score_calls(method, steps, per_step):
    sde, mix = SDES["subvpsde"], two_mode_mixture()
    x = mix.sample(8, generator=torch.Generator().manual_seed(14))
    score_fn, calls = _counting(mix.score_fn(sde))
    lp, _, nfe = log_likelihood(sde, score_fn, x, method=method, steps=steps, hutchinson="gaussian",
                                n_probes=2, generator=torch.Generator().manual_seed(15), rtol=1e-3, atol=1e-3)
    assert nfe == calls[0] > 0 and bool(torch.isfinite(lp).all())
    if per_step is not None:
        assert nfe == steps * per_step


def test_ode_function_makes_no_host_sync():
    """The right-hand side runs on the meta device, where any .item()/.cpu()/bool() would fail."""
    sde, mix = SDES["vpsde"], two_mode_mixture()
    y = torch.empty(4 * 2 + 4, device="meta")
    for kind in DIVERGENCES:
        probes = None if kind == "exact" else torch.empty(2, 4, 2, device="meta")
        f = FlowWithDivergence(sde, mix.score_fn(sde), (4, 2), DIVERGENCES[kind], probes)
        with torch.no_grad():
            assert f(1.0 + 1e-3, y).shape == (12,)                       # slightly past T is fine
            assert f(torch.tensor(0.5, device="meta"), y).shape == (12,)
        assert f.nfe == 2


def test_log_likelihood_bad_inputs():
    sde, mix = SDES["vpsde"], two_mode_mixture()
    s = mix.score_fn(sde)
    x = torch.zeros(4, 2)
    bad = [({"x": torch.tensor([[float("nan"), 0.]])}, "x"), ({"x": torch.zeros(4)}, "x"),
           ({"x": [[0., 0.]]}, "x"), ({"hutchinson": "bernoulli"}, "hutchinson"), ({"method": "rk23"}, "method"),
           ({"rtol": 0.}, "rtol"), ({"atol": -1.}, "atol"), ({"eps": 0.}, "eps"), ({"eps": 1.}, "eps"),
           ({"n_probes": 0}, "n_probes"), ({"n_probes": 1.5}, "n_probes"), ({"max_batch": 0}, "max_batch"),
           ({"steps": 10}, "steps"), ({"method": "euler", "steps": 0}, "steps"), ({"generator": 3}, "generator"),
           ({"score_fn": None}, "score_fn"), ({"score_fn": lambda x, t: x[:, :1]}, "score_fn")]
    for kwargs, name in bad:
        args = {"sde": sde, "score_fn": s, "x": x, **kwargs}
        with pytest.raises(ValueError, match=name):
            log_likelihood(**args)
