"""Training losses against closed forms.

Gaussian data N(0, a^2 I) under an SDE with kernel N(m x0, s^2 I) stay Gaussian: p_t = N(0, v I) with
v = m^2 a^2 + s^2 and exact score -x / v. For a model c * (exact score) the DSM residual
r = s * score + z has per-dim second moment

    E r_d^2 = (m^2 a^2 + (c - 1)^2 s^2) / v          (lambda = s^2; c = 1: m^2 a^2 / v)

and the implicit (exact / sliced) objective s^2 [tr J + 1/2 ||score||^2] has per-dim mean
s^2 (c^2 / 2 - c) / v. Likelihood weighting multiplies both by g^2 / s^2. Losses with
reduce_mean=True are these per-dim values (DSM without the 1/2, implicit objectives times 2);
their t-average is integrated by quadrature (continuous) or summed over the ladder (discrete).
"""
import math

import pytest
import torch

from tests.analytic import make_sdes, two_mode_mixture
from training.losses import get_loss_fn, sample_times

A = 1.5          # data std
N = 1000         # ladder size
SDE_NAMES = ["vesde", "vpsde", "subvpsde"]


# ------------------------------------------------------------------------------------------ helpers
def _label_to_t(sde, name, label, continuous):
    """Invert sde.model_label (test-side knowledge of each family's convention)."""
    if not continuous:  # ladder labels are exact: match them against the whole ladder
        ladder_t = torch.arange(sde.N, dtype=label.dtype) * (sde.T / (sde.N - 1))
        labels = sde.model_label(ladder_t, continuous=False)             # monotone (VE: descending)
        nearest = (labels[None, :] - label[:, None]).abs().argmin(dim=1)
        return ladder_t[nearest]
    if name == "vesde":
        return sde.t_from_noise_level(label)
    return label * (sde.T / (sde.N - 1))


class GaussianScaleModel(torch.nn.Module):
    """Network whose score is c * (exact score of N(0, a^2 I) data at the label's time); c is a parameter.

    It outputs what the SDE's parameterization expects: the score (VE) or the noise prediction -s * score."""

    def __init__(self, sde, name, continuous, c=1.0, a=A):
        super().__init__()
        self.sde, self.name, self.continuous, self.a = sde, name, continuous, a
        self.c = torch.nn.Parameter(torch.tensor(float(c), dtype=torch.float64))

    def forward(self, x, cond):
        t = _label_to_t(self.sde, self.name, cond, self.continuous)
        m, s = self.sde.marginal_coeffs(t) if self.continuous else self.sde.discrete_marginal_coeffs(t)
        shape = (-1,) + (1,) * (x.dim() - 1)
        v = (m ** 2 * self.a ** 2 + s ** 2).reshape(shape)
        score = -self.c.to(x.dtype) * x / v
        if self.sde.score_parameterization == "score":
            return score
        return -s.reshape(shape) * score


def _per_dim_terms(sde, t, continuous, c, objective, likelihood_weighting, a=A):
    """Per-dim expected loss (reduce_mean form) at times t."""
    m, s = sde.marginal_coeffs(t) if continuous else sde.discrete_marginal_coeffs(t)
    v = m ** 2 * a ** 2 + s ** 2
    if objective == "dsm":
        val = (m ** 2 * a ** 2 + (c - 1) ** 2 * s ** 2) / v
    else:
        val = s ** 2 * (c ** 2 - 2 * c) / v
    if likelihood_weighting:
        val = val * sde._sde(torch.zeros(t.shape[0], 1, dtype=t.dtype), t)[1] ** 2 / s ** 2
    return val


def expected_loss(sde, continuous, c=1.0, objective="dsm", likelihood_weighting=False, eps=1e-5):
    """E_t of the per-dim loss: geometric-grid trapezoid over [eps, T], or the ladder mean."""
    if not continuous:
        t = torch.arange(sde.N, dtype=torch.float64) * (sde.T / (sde.N - 1))
        return float(_per_dim_terms(sde, t, False, c, objective, False).mean())
    t = torch.logspace(math.log10(eps), math.log10(sde.T), 200001, dtype=torch.float64)
    f = _per_dim_terms(sde, t, True, c, objective, likelihood_weighting)
    return float(torch.trapezoid(f, t) / (sde.T - eps))


def mc_loss(loss_fn, model, shape, n_batches, batch_size, seed, a=A):
    """Mean and standard error of the loss over independent batches of N(0, a^2 I) data."""
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_batches):
        x0 = a * torch.randn((batch_size, *shape), generator=g, dtype=torch.float64)
        with torch.no_grad():
            vals.append(float(loss_fn(model, x0, generator=g)))
    v = torch.tensor(vals, dtype=torch.float64)
    return float(v.mean()), float(v.std() / math.sqrt(n_batches))


class TinyNet(torch.nn.Module):
    """A small conditional MLP for any data shape: forward(x, cond)."""

    def __init__(self, dim, seed=0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, 32), torch.nn.SiLU(),
                                           torch.nn.Linear(32, dim))

    def forward(self, x, cond):
        h = torch.cat([x.reshape(x.shape[0], -1), torch.log1p(cond.abs())[:, None].to(x.dtype)], dim=1)
        return self.net(h).reshape(x.shape)


class SigmaScaledNet(torch.nn.Module):
    """VE-style wrapper: net(x / sqrt(1 + sigma^2), sigma) / sigma (input scaling and scale_by_sigma)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, sigma):
        shape = (-1,) + (1,) * (x.dim() - 1)
        return self.net(x / torch.sqrt(1 + sigma ** 2).reshape(shape), sigma) / sigma.reshape(shape)


@pytest.fixture(scope="module")
def sdes():
    return make_sdes(N)


# ------------------------------------------------------------------------------ exact expectations
CASES = [(name, True, False) for name in SDE_NAMES] + [(name, True, True) for name in SDE_NAMES] \
    + [(name, False, False) for name in ("vesde", "vpsde")]   # sub-VP has no discrete chain


@pytest.mark.parametrize("name,continuous,lw", CASES)
def test_dsm_matches_gaussian_closed_form(sdes, name, continuous, lw):
    """Exact model: MC loss = quadrature within 4 standard errors; a half-scaled score is off by many,
    and matches its own closed form (m^2 a^2 + s^2 / 4) / v."""
    sde = sdes[name]
    eps = 1e-2 if lw else 1e-5   # g^2/s^2 ~ 1/t for VP: a larger eps keeps the MC variance moderate
    loss_fn = get_loss_fn(sde, reduce_mean=True, continuous=continuous, likelihood_weighting=lw, eps=eps)
    shape = (1, 2, 2) if name == "subvpsde" else (2,)
    for c in (1.0, 0.5):
        model = GaussianScaleModel(sde, name, continuous, c=c)
        mean, se = mc_loss(loss_fn, model, shape, n_batches=40, batch_size=2000, seed=1)
        exact = expected_loss(sde, continuous, c=c, likelihood_weighting=lw, eps=eps)
        assert abs(mean - exact) < 4 * se, (c, mean, exact, se)
        if c == 1.0:
            best, best_se = mean, se
    wrong = expected_loss(sde, continuous, c=0.5, likelihood_weighting=lw, eps=eps)
    assert wrong - expected_loss(sde, continuous, c=1.0, likelihood_weighting=lw, eps=eps) > 10 * best_se
    assert mean > best  # the half-scaled model's MC loss (last loop iteration) is larger


@pytest.mark.parametrize("name", SDE_NAMES)
def test_sum_form_is_half_sum_over_dims(sdes, name):
    """reduce_mean=False is the score-SDE 1/2 * sum over dims = D/2 * the reduce_mean loss (same draws)."""
    sde = sdes[name]
    model = TinyNet(12).double()
    x = torch.randn(64, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for continuous in (True, False) if name != "subvpsde" else (True,):
        l_mean = get_loss_fn(sde, reduce_mean=True, continuous=continuous)(
            model, x, generator=torch.Generator().manual_seed(5))
        l_sum = get_loss_fn(sde, reduce_mean=False, continuous=continuous)(
            model, x, generator=torch.Generator().manual_seed(5))
        assert torch.allclose(l_sum, 6. * l_mean, rtol=1e-12)


@pytest.mark.parametrize("name,continuous", [(n, True) for n in SDE_NAMES] + [("vesde", False), ("vpsde", False)])
def test_gradient_vanishes_at_exact_score(sdes, name, continuous):
    """d loss / d c = 2 (c - 1) E[s^2 / v]: ~0 at c = 1 (within 4 se), the closed form at c = 0.5."""
    sde = sdes[name]
    loss_fn = get_loss_fn(sde, reduce_mean=True, continuous=continuous)
    g = torch.Generator().manual_seed(3)
    slope = expected_loss(sde, continuous, c=0.0) - expected_loss(sde, continuous, c=1.0)  # = E[s^2 / v]
    for c, target in ((1.0, 0.0), (0.5, -slope)):
        model = GaussianScaleModel(sde, name, continuous, c=c)
        grads = []
        for _ in range(20):
            model.zero_grad()
            loss_fn(model, A * torch.randn(2000, 2, generator=g, dtype=torch.float64), generator=g).backward()
            grads.append(float(model.c.grad))
        gr = torch.tensor(grads, dtype=torch.float64)
        mean, se = float(gr.mean()), float(gr.std() / math.sqrt(len(grads)))
        assert abs(mean - target) < 4 * se + 1e-12, (c, mean, target, se)
        if c == 0.5:
            assert abs(mean) > 10 * se


# ------------------------------------------------------------------------------ discrete losses, literally
class RecordingNet(torch.nn.Module):
    """Deterministic network out = 0.3 x + 0.1 log(1 + cond) that records its inputs."""

    def forward(self, x, cond):
        self.x, self.cond = x.detach().clone(), cond.detach().clone()
        return 0.3 * x + 0.1 * torch.log1p(cond).reshape(-1, *([1] * (x.dim() - 1)))


def test_ddpm_loss_is_noise_prediction_error(sdes):
    """VPSDE discrete: labels are ladder indices, x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) z and the loss
    is mean ||eps_theta(x_i, i) - z||^2 (per-dim mean)."""
    sde = sdes["vpsde"]
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = RecordingNet()
    loss = get_loss_fn(sde, continuous=False, reduce_mean=True)(net, x0, generator=torch.Generator().manual_seed(1))
    i = net.cond                      # (N - 1) t at ladder times: the index up to float rounding
    assert torch.allclose(i, i.round(), atol=1e-3) and i.min() >= 0 and i.max() <= N - 1
    i = i.round()
    assert len(i.unique()) > 0.9 * N  # 4000 uniform draws over 1000 levels cover ~98% of them
    abar = sde.alphas_cumprod[i.long()]
    z = (net.x - abar.sqrt()[:, None] * x0) / (1 - abar).sqrt()[:, None]
    assert abs(float(z.mean())) < 0.06 and abs(float(z.std()) - 1) < 0.04  # recovered noise is N(0, 1)
    eps_pred = 0.3 * net.x + 0.1 * torch.log1p(i)[:, None]
    assert torch.allclose(loss, ((eps_pred - z) ** 2).mean(), rtol=1e-10)


def test_ncsn_loss_is_sigma2_weighted_dsm(sdes):
    """VESDE discrete: labels are ladder indices j (0 = sigma_max: sigma = discrete_sigmas[N-1-j]) and the
    sum-form loss is NCSN's 1/2 sigma^2 ||s_theta(x~, j) + (x~ - x) / sigma^2||^2 averaged over samples."""
    sde = sdes["vesde"]
    x0 = torch.randn(3000, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = RecordingNet()
    loss = get_loss_fn(sde, continuous=False, reduce_mean=False)(net, x0, generator=torch.Generator().manual_seed(2))
    j = net.cond
    assert torch.equal(j, j.round()) and j.min() >= 0 and j.max() <= N - 1
    idx = (N - 1) - j.long()
    sig = sde.discrete_sigmas[idx]
    score = 0.3 * net.x + 0.1 * torch.log1p(j).reshape(-1, 1, 1, 1)
    s2 = sig.reshape(-1, 1, 1, 1) ** 2
    ncsn = 0.5 * (s2 * (score + (net.x - x0) / s2) ** 2).sum((1, 2, 3))
    assert torch.allclose(loss, ncsn.mean(), rtol=1e-10)
    # sigma_i are drawn uniformly over the ladder: the mean index is ~ (N - 1) / 2
    assert abs(float(idx.double().mean()) - (N - 1) / 2) < 4 * 289 / math.sqrt(3000)


def test_discrete_times_hit_ladder_indices(sdes):
    sde = sdes["vpsde"]
    t = sample_times(sde, 20000, continuous=False, eps=1e-5, generator=torch.Generator().manual_seed(0))
    i = sde.timestep_index(t)
    assert torch.allclose(t, i.float() * sde.T / (N - 1), atol=1e-6)
    counts = torch.bincount(i, minlength=N).double()
    assert counts.sum() == 20000 and counts.min() >= 3          # expected 20 per level
    tc = sample_times(sde, 20000, continuous=True, eps=0.25, generator=torch.Generator().manual_seed(0))
    assert float(tc.min()) >= 0.25 and float(tc.max()) <= 1.0 and abs(float(tc.mean()) - 0.625) < 0.01


# ------------------------------------------------------------------------------ SSM and exact SM
@pytest.mark.parametrize("objective,kwargs", [("exact_sm", {}), ("ssm", {"n_projections": 1}),
                                              ("ssm", {"projection": "gaussian", "variance_reduced": False})])
@pytest.mark.parametrize("name", ["vesde", "vpsde"])
def test_implicit_objectives_closed_form(sdes, name, objective, kwargs):
    """Per-dim implicit objective s^2 (c^2 - 2c) / v, t-averaged: MC matches for c = 1 and c = 0.5."""
    pytest.importorskip("training.objectives")
    sde = sdes[name]
    loss_fn = get_loss_fn(sde, reduce_mean=True, objective=objective, **kwargs)
    for c in (1.0, 0.5):
        model = GaussianScaleModel(sde, name, True, c=c)
        mean, se = mc_loss(loss_fn, model, (2,), n_batches=20, batch_size=2000, seed=4)
        exact = expected_loss(sde, True, c=c, objective=objective)
        assert abs(mean - exact) < 4 * se + 1e-9, (c, mean, exact, se)
    assert expected_loss(sde, True, c=0.5, objective=objective) - expected_loss(sde, True, objective=objective) \
        > 10 * se


@pytest.mark.parametrize("name,lw", [("vesde", False), ("vpsde", False), ("vesde", True)])
def test_dsm_minus_exact_sm_is_model_independent(sdes, name, lw):
    """For any model and data: E[dsm] - E[exact_sm] = lambda D / (2 s^2) (sum form) = D/2 (lambda = s^2),
    or D log(sigma_max / sigma_min) for VE with likelihood weighting (g^2 / s^2 = 2 log ratio)."""
    pytest.importorskip("training.objectives")
    sde = sdes[name]
    data = two_mode_mixture()
    net = TinyNet(2, seed=1).double()
    if sde.score_parameterization == "score":   # a VE network sized like a real one: s(x, sigma) ~ 1/sigma
        net = SigmaScaledNet(net)
    diffs = []
    for k in range(20):
        x0 = data.sample(2000, generator=torch.Generator().manual_seed(100 + k), dtype=torch.float64)
        vals = [float(get_loss_fn(sde, reduce_mean=False, likelihood_weighting=lw, objective=obj)(
            net, x0, generator=torch.Generator().manual_seed(k)).detach()) for obj in ("dsm", "exact_sm")]
        diffs.append(vals[0] - vals[1])
    d = torch.tensor(diffs, dtype=torch.float64)
    target = 2 * math.log(sde.sigma_max / sde.sigma_min) if lw else 1.0   # D = 2
    mean, se = float(d.mean()), float(d.std() / math.sqrt(len(diffs)))
    assert abs(mean - target) < 4 * se + 1e-9, (mean, target, se)
    # a factor-2 slip in either objective's 1/2 would move the difference by >> 4 se
    assert 4 * se < 0.25 * target


# ------------------------------------------------------------------------------ training behaviour
def test_reproducible_with_generator_and_leaves_global_rng_alone(sdes):
    sde = sdes["vpsde"]
    model = TinyNet(4)
    x = torch.randn(32, 1, 2, 2)
    for objective in ("dsm", "ssm"):
        if objective == "ssm":
            pytest.importorskip("training.objectives")
        loss_fn = get_loss_fn(sde, objective=objective)
        state = torch.get_rng_state()
        l1 = loss_fn(model, x, generator=torch.Generator().manual_seed(7))
        assert torch.equal(torch.get_rng_state(), state)
        l2 = loss_fn(model, x, generator=torch.Generator().manual_seed(7))
        l3 = loss_fn(model, x, generator=torch.Generator().manual_seed(8))
        assert torch.equal(l1, l2) and not torch.equal(l1, l3)
        assert l1.dim() == 0 and l1.dtype == torch.float32


def test_train_flag_sets_model_mode(sdes):
    sde = sdes["vesde"]
    model = TinyNet(2)
    x = torch.randn(8, 2)
    get_loss_fn(sde, train=False)(model, x)
    assert not model.training
    get_loss_fn(sde, train=True)(model, x)
    assert model.training


def test_gradient_descent_on_the_loss_finds_the_exact_score(sdes):
    """Stochastic gradient descent on the scale c from 0.2 converges to the exact-score optimum c = 1."""
    sde = sdes["vpsde"]
    model = GaussianScaleModel(sde, "vpsde", True, c=0.2)
    loss_fn = get_loss_fn(sde)
    g = torch.Generator().manual_seed(0)
    path = []
    for _ in range(40):
        model.zero_grad()
        loss_fn(model, A * torch.randn(256, 2, generator=g, dtype=torch.float64), generator=g).backward()
        with torch.no_grad():
            model.c -= 1.0 * model.c.grad      # d loss / dc = 2 (c - 1) E[s^2 / v] ~ 0.7 (c - 1)
        path.append(float(model.c.detach()))
    assert abs(path[0] - 0.2) > 0.3                                # it moved
    assert abs(sum(path[-10:]) / 10 - 1.0) < 0.05, path[-10:]


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs,name", [
    ({"eps": 0.0}, "eps"), ({"eps": 1.0}, "eps"), ({"eps": -1e-3}, "eps"), ({"eps": "1e-5"}, "eps"),
    ({"objective": "nce"}, "objective"),
    ({"continuous": False, "likelihood_weighting": True}, "likelihood_weighting"),
    ({"n_projections": 2}, "objective_kwargs"),
    ({"objective": "ssm", "n_projection": 2}, "objective_kwargs"),
])
def test_bad_arguments(sdes, kwargs, name):
    if kwargs.get("objective") == "ssm":
        pytest.importorskip("training.objectives")
    with pytest.raises(ValueError, match=name):
        get_loss_fn(sdes["vpsde"], **kwargs)


def test_subvp_has_no_discrete_loss(sdes):
    with pytest.raises(ValueError, match="continuous"):
        get_loss_fn(sdes["subvpsde"], continuous=False)


def test_bad_sde():
    with pytest.raises(ValueError, match="sde"):
        get_loss_fn("vpsde")


@pytest.mark.parametrize("batch", [torch.zeros(8), torch.zeros(8, 2, dtype=torch.long),
                                   torch.full((8, 2), float("nan")), [[0., 1.]], torch.zeros(0, 2)])
def test_bad_batch(sdes, batch):
    with pytest.raises(ValueError, match="batch"):
        get_loss_fn(sdes["vesde"])(TinyNet(2), batch)


def test_bad_generator(sdes):
    with pytest.raises(ValueError, match="generator"):
        get_loss_fn(sdes["vesde"])(TinyNet(2), torch.zeros(4, 2), generator=0)


# ------------------------------------------------------------------------------ with the real networks
@pytest.mark.parametrize("sde_name,model_name,objective,continuous", [
    ("vesde", "mlp", "dsm", True), ("vpsde", "mlp", "dsm", False), ("subvpsde", "mlp", "exact_sm", True),
    ("vesde", "ncsnpp", "dsm", False), ("vpsde", "ddpmpp", "ssm", True)])
def test_with_config_models(sde_name, model_name, objective, continuous):
    """get_loss_fn drives models.get_model networks: finite loss, finite gradients for every parameter."""
    if objective != "dsm":
        pytest.importorskip("training.objectives")
    from configs.default import get_default_configs
    from models import get_model
    from sde_lib import get_sde
    c = get_default_configs()
    c.training.sde, c.model.name = sde_name, model_name
    c.model.nf, c.model.ch_mult, c.model.num_res_blocks, c.model.attn_resolutions = 16, (1, 2), 1, (4,)
    c.model.num_scales = 100
    c.data.shape = (2,) if model_name == "mlp" else (1, 8, 8)
    c.training.continuous = continuous          # the network is built for the labels it will be fed
    if not continuous:
        c.model.embedding_type = "positional"   # ladder indices (Fourier features need continuous labels)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = get_model(c)
    x = torch.rand(16, *c.data.shape, generator=torch.Generator().manual_seed(0))
    loss = get_loss_fn(get_sde(c), continuous=continuous, objective=objective)(
        model, x, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
