"""Sliced and exact score matching (training/objectives.py) against closed forms.

* the exact objective of a Gaussian model s(x) = -M (x - mu) is -tr(M) + 1/2 ||M (x - mu)||^2;
* the exact trace equals a brute-force Jacobian trace for a nonlinear, noise-conditioned score (any shape);
* SSM (Rademacher / Gaussian, plain / variance-reduced) is unbiased for the exact objective;
* fitting the Gaussian model by exact SM or SSM recovers the maximum-likelihood answer
  (mu = sample mean, M^-1 = sample covariance), and a wrong formula does not.
"""
from __future__ import annotations

import pytest
import torch

from training.objectives import (EXACT_SM_MAX_DIM, OBJECTIVES, exact_score_matching, get_objective,
                                 sliced_score_matching)

DT = torch.float64


# ---------------------------------------------------------------- fixtures
def gaussian_data(D: int = 4, n: int = 2000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=DT) * 0.7
    mu = torch.randn(D, generator=g, dtype=DT)
    X = torch.randn(n, D, generator=g, dtype=DT) @ A.T + mu
    mean = X.mean(0)
    cov = (X - mean).T @ (X - mean) / n                       # maximum-likelihood covariance
    return X, mean, cov


def nonlinear_score(data_shape, seed: int = 1, hidden: int = 16):
    """A fixed random tanh network s(x, t) shaped like x, conditioned on t (any data shape)."""
    g = torch.Generator().manual_seed(seed)
    D = 1
    for s in data_shape:
        D *= s
    W1 = torch.randn(hidden, D, generator=g, dtype=DT) / D ** 0.5
    b1 = torch.randn(hidden, generator=g, dtype=DT)
    c1 = torch.randn(hidden, generator=g, dtype=DT)
    W2 = torch.randn(D, hidden, generator=g, dtype=DT) / hidden ** 0.5

    def fn(x, t):
        B = x.shape[0]
        h = torch.tanh(x.reshape(B, -1) @ W1.T + b1 + t[:, None] * c1)
        return (h @ W2.T - 0.3 * x.reshape(B, -1) * (1 + t[:, None])).reshape(x.shape)
    return fn


def brute_force_objective(score_fn, x, t):
    """tr(d s / d x) + 1/2 ||s||^2 per sample via the full Jacobian of each sample."""
    out = []
    for i in range(x.shape[0]):
        xi, ti = x[i:i + 1], t[i:i + 1]
        J = torch.autograd.functional.jacobian(lambda z: score_fn(z, ti).reshape(-1), xi).reshape(xi.numel(), -1)
        s = score_fn(xi, ti).reshape(-1)
        out.append(torch.trace(J) + 0.5 * s.pow(2).sum())
    return torch.stack(out)


# ---------------------------------------------------------------- exact values
def test_exact_sm_gaussian_model_closed_form():
    X, _, _ = gaussian_data(D=5, n=64)
    g = torch.Generator().manual_seed(3)
    L = torch.randn(5, 5, generator=g, dtype=DT)
    M = L @ L.T + 0.1 * torch.eye(5, dtype=DT)
    mu = torch.randn(5, generator=g, dtype=DT)
    got = exact_score_matching(lambda x, t: -(x - mu) @ M, X, None)
    want = -torch.trace(M) + 0.5 * ((X - mu) @ M).pow(2).sum(-1)
    assert got.shape == (64,)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)
    # half the score is a different objective: the check is discriminative
    half = exact_score_matching(lambda x, t: -0.5 * (x - mu) @ M, X, None)
    assert (half - want).abs().min() > 1e-3


@pytest.mark.parametrize("shape", [(6,), (2, 3), (1, 3, 3)])
def test_exact_trace_matches_brute_force_any_shape(shape):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, *shape, generator=g, dtype=DT)
    t = torch.rand(5, generator=g, dtype=DT)
    fn = nonlinear_score(shape)
    got = exact_score_matching(fn, x, t)
    want = brute_force_objective(fn, x, t)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # the time input matters (noise conditioning is passed through)
    other = exact_score_matching(fn, x, t + 0.5)
    assert (other - want).abs().max() > 1e-2


def test_score_independent_of_x_has_zero_jacobian_term():
    x = torch.randn(4, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([1., -2., 0.5], dtype=DT)
    const = lambda x, t: c.expand_as(x)
    torch.testing.assert_close(exact_score_matching(const, x, None), torch.full((4,), 0.5 * 5.25, dtype=DT))
    torch.testing.assert_close(sliced_score_matching(const, x, None, generator=torch.Generator().manual_seed(0)),
                               torch.full((4,), 0.5 * 5.25, dtype=DT))


# ---------------------------------------------------------------- SSM unbiasedness
@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
@pytest.mark.parametrize("variance_reduced", [True, False])
def test_ssm_is_unbiased_for_exact_objective(projection, variance_reduced):
    """Mean over P independent projections -> the exact objective, within 4.5 standard errors."""
    shape, B, P = (2, 3), 6, 4000
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, *shape, generator=g, dtype=DT)
    t = torch.rand(B, generator=g, dtype=DT)
    fn = nonlinear_score(shape)
    exact = exact_score_matching(fn, x, t)
    # one projection per replicated sample = P independent draws per sample in a single call
    vals = sliced_score_matching(fn, x.repeat(P, 1, 1), t.repeat(P), n_projections=1, projection=projection,
                                 variance_reduced=variance_reduced,
                                 generator=torch.Generator().manual_seed(6)).reshape(P, B)
    mean, se = vals.mean(0), vals.std(0) / P ** 0.5
    z = (mean - exact) / se
    assert bool((z.abs() < 4.5).all()), z
    # a wrong score (half the network) has a different exact objective: the same check fails
    # (measured |z| >= 8.4 for every sample and setting)
    wrong = exact_score_matching(lambda a, b: 0.5 * fn(a, b), x, t)
    assert bool(((mean - wrong).abs() / se > 6).all())


def test_variance_reduced_and_rademacher_have_lower_variance():
    shape, B, P = (5,), 4, 2000
    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, *shape, generator=g, dtype=DT) * 2
    t = torch.rand(B, generator=g, dtype=DT)
    fn = nonlinear_score(shape)

    def var(**kw):
        v = sliced_score_matching(fn, x.repeat(P, 1), t.repeat(P), generator=torch.Generator().manual_seed(8),
                                  **kw).reshape(P, B)
        return v.var(0)
    vr, plain = var(variance_reduced=True), var(variance_reduced=False)
    rad, gauss = var(projection="rademacher"), var(projection="gaussian")
    assert bool((vr < plain).all())
    assert bool((rad < gauss).all())


def test_n_projections_averages():
    """n_projections=P in one call equals the mean of the P single-projection terms (same draws)."""
    fn = nonlinear_score((3,))
    x = torch.randn(5, 3, dtype=DT, generator=torch.Generator().manual_seed(1))
    t = torch.rand(5, dtype=DT, generator=torch.Generator().manual_seed(2))
    many = sliced_score_matching(fn, x, t, n_projections=50, generator=torch.Generator().manual_seed(3))
    exact = exact_score_matching(fn, x, t)
    one = sliced_score_matching(fn, x, t, n_projections=1, generator=torch.Generator().manual_seed(3))
    assert (many - exact).abs().mean() < (one - exact).abs().mean()


def test_reproducible_with_generator():
    fn = nonlinear_score((4,))
    x = torch.randn(8, 4, dtype=DT, generator=torch.Generator().manual_seed(0))
    t = torch.rand(8, dtype=DT, generator=torch.Generator().manual_seed(1))
    for proj in ["rademacher", "gaussian"]:
        a = sliced_score_matching(fn, x, t, 3, proj, generator=torch.Generator().manual_seed(11))
        b = sliced_score_matching(fn, x, t, 3, proj, generator=torch.Generator().manual_seed(11))
        c = sliced_score_matching(fn, x, t, 3, proj, generator=torch.Generator().manual_seed(12))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


# ---------------------------------------------------------------- closed-form fit: the ML answer
def fit_gaussian(objective, X, steps: int = 200):
    """Fit s(x) = -M (x - mu), M = L L^T + 1e-3 I, by full-batch L-BFGS; fixed projection draws."""
    D = X.shape[1]
    L = torch.eye(D, dtype=DT).requires_grad_(True)
    mu = torch.zeros(D, dtype=DT, requires_grad=True)
    eye = torch.eye(D, dtype=DT)

    def score(x, t):
        return -(x - mu) @ (L @ L.T + 1e-3 * eye)
    opt = torch.optim.LBFGS([L, mu], lr=1, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-13,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective(score, X, torch.Generator().manual_seed(1)).mean()
        loss.backward()
        return loss
    opt.step(closure)
    M = (L @ L.T + 1e-3 * eye).detach()
    return mu.detach(), torch.linalg.inv(M)


FITS = {
    # name: (objective(score_fn, X, generator), tol on |mu - mean|, relative tol on M^-1 vs covariance)
    "exact_sm": (lambda s, X, g: exact_score_matching(s, X, None), 1e-5, 1e-5),
    "ssm_vr_rademacher": (lambda s, X, g: sliced_score_matching(s, X, None, 32, "rademacher", True, g), 1e-5, 2e-2),
    "ssm_vr_gaussian": (lambda s, X, g: sliced_score_matching(s, X, None, 32, "gaussian", True, g), 1e-5, 2e-2),
    "ssm_rademacher": (lambda s, X, g: sliced_score_matching(s, X, None, 32, "rademacher", False, g), 6e-2, 6e-2),
}


@pytest.mark.parametrize("name", sorted(FITS))
def test_fit_gaussian_recovers_maximum_likelihood(name):
    objective, tol_mu, tol_cov = FITS[name]
    X, mean, cov = gaussian_data(D=4, n=2000)
    mu, cov_fit = fit_gaussian(objective, X)
    assert float((mu - mean).abs().max()) < tol_mu
    assert float((cov_fit - cov).abs().max() / cov.abs().max()) < tol_cov


def test_fit_with_wrong_formula_misses_maximum_likelihood():
    """tr(J) + ||s||^2 (the 1/2 dropped) has minimiser M^-1 = 2 cov: the same check fails."""
    X, mean, cov = gaussian_data(D=4, n=2000)

    def wrong(s, X, g):
        return exact_score_matching(s, X, None) + 0.5 * s(X, None).pow(2).sum(-1)
    _, cov_fit = fit_gaussian(wrong, X)
    rel = float((cov_fit - cov).abs().max() / cov.abs().max())
    assert rel > 0.5
    torch.testing.assert_close(cov_fit, 2 * cov, rtol=1e-4, atol=1e-5)


def test_objectives_train_a_network_with_noise_conditioning():
    """Gradients flow through the Jacobian term (create_graph): both objectives reduce the loss of an MLP."""
    g = torch.Generator().manual_seed(0)
    t = torch.rand(256, generator=g, dtype=DT)
    x = torch.randn(256, 2, generator=g, dtype=DT) * (0.3 + t[:, None]) + 1.   # spread depends on t
    for name in ["ssm", "exact_sm"]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)).double()
        score = lambda x, t: net(torch.cat([x, t[:, None]], 1))
        fn = OBJECTIVES[name]
        before = float(exact_score_matching(score, x, t).mean().detach())
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            fn(score, x, t, generator=g).mean().backward()
            opt.step()
        after = float(exact_score_matching(score, x, t).mean().detach())
        assert after < before - 0.5, (name, before, after)


# ---------------------------------------------------------------- errors
def test_bad_arguments_name_the_parameter():
    fn = nonlinear_score((3,))
    x = torch.randn(4, 3, dtype=DT)
    t = torch.rand(4, dtype=DT)
    cases = [
        (lambda: sliced_score_matching(fn, x, t, projection="uniform"), "projection"),
        (lambda: sliced_score_matching(fn, x, t, n_projections=0), "n_projections"),
        (lambda: sliced_score_matching(fn, x, t, n_projections=1.5), "n_projections"),
        (lambda: sliced_score_matching(fn, x, t, generator=3), "generator"),
        (lambda: sliced_score_matching(fn, x.numpy(), t), "x"),
        (lambda: sliced_score_matching(fn, x, t[:3]), "t"),
        (lambda: sliced_score_matching(fn, torch.full_like(x, float("nan")), t), "x"),
        (lambda: sliced_score_matching("f", x, t), "score_fn"),
        (lambda: sliced_score_matching(lambda a, b: a[:, :2], x, t), "score_fn"),
        (lambda: exact_score_matching(fn, x, t, max_dim=0), "max_dim"),
        (lambda: get_objective("dsm2"), "objective"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()


def test_exact_sm_refuses_large_dimension():
    assert EXACT_SM_MAX_DIM == 256
    x = torch.randn(2, 1, 16, 17)                               # 272 > 256 dims
    with pytest.raises(ValueError, match=r"x has D=272.*max_dim=256"):
        exact_score_matching(lambda a, b: -a, x, None)
    # the limit is the documented one: 256 dims pass, and max_dim can lower it
    ok = exact_score_matching(lambda a, b: -a, torch.zeros(2, 1, 16, 16), None)
    torch.testing.assert_close(ok, torch.full((2,), -256.))
    with pytest.raises(ValueError, match="max_dim=8"):
        exact_score_matching(lambda a, b: -a, torch.zeros(2, 9), None, max_dim=8)


def test_registry():
    assert set(OBJECTIVES) == {"ssm", "exact_sm"}
    assert get_objective("ssm") is sliced_score_matching
    assert get_objective("exact_sm") is exact_score_matching
