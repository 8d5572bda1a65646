"""The discrete chains behind the PC sampler (issue 10, items 10, 11 and 13).

* item 10: VPSDE(N=20) (beta_max = 20, so beta_19 = 1) is a valid continuous SDE; only the steps of
  the DDPM chain (reverse diffusion, ancestral sampling, the langevin corrector's alpha_i, the
  discrete marginals of DDPM training) are refused, naming N.
* item 11: pc_sample passes each step's ladder index N-1-k explicitly. From the time alone,
  floor(t (N-1)/T) is off by one once eps (N-1) >= 1 (N = 2000, eps = 1e-3: level 1000 twice,
  level 0 never).
* item 13: DDPM ancestral sampling with the posterior ("fixed_small") variance as an option, and no
  noise at the final step (ladder index 0) with either variance.
Checks are against closed forms (float64) and, where installed, diffusers' schedulers.
"""
from __future__ import annotations

import collections
import math

import pytest
import torch

from samplers import PREDICTORS, ode_sample, pc_sample
from samplers.correctors import LangevinCorrector
from sde_lib import VESDE, VPSDE, subVPSDE
from tests.analytic import sliced_wasserstein, two_mode_mixture

D64 = torch.float64
MIX = two_mode_mixture()


# ------------------------------------------------------------------------------------- item 10
def test_vpsde_with_n_at_most_beta_max_is_a_valid_continuous_sde():
    sde = VPSDE(beta_max=20., N=20)                       # raised at construction before
    t = torch.tensor([0.1, 0.5, 1.0], dtype=D64)
    x = torch.ones(3, 2, dtype=D64)
    mean, std = sde.marginal_prob(x, t)
    lmc = -t ** 2 * (20. - 0.1) / 4 - t * 0.1 / 2
    assert torch.allclose(mean, torch.exp(lmc)[:, None] * x) and torch.allclose(std, torch.sqrt(1 - torch.exp(2 * lmc)))
    # Euler-Maruyama and the probability-flow ODE with 20 steps: normal use, sensible samples
    ref = MIX.sample(2048, generator=torch.Generator().manual_seed(123))
    em, nfe = pc_sample(sde, MIX.score_fn(sde), (2048, 2), "euler_maruyama", "none",
                        generator=torch.Generator().manual_seed(0))
    ode, nfe_ode = ode_sample(sde, MIX.score_fn(sde), (2048, 2), method="heun", steps=20,
                              generator=torch.Generator().manual_seed(0))
    assert nfe == 20 and nfe_ode == 40
    for s in (em, ode):
        assert bool(torch.isfinite(s).all())
        assert sliced_wasserstein(s, ref, generator=torch.Generator().manual_seed(7)) < 0.6
    # the DDPM chain's steps are refused, naming N
    score = MIX.score_fn(sde)
    refused = {
        "discretize": lambda: sde.discretize(x, t),
        "ancestral_step": lambda: sde.ancestral_step(x, t, -x),
        "discrete_marginal_coeffs": lambda: sde.discrete_marginal_coeffs(t),
        "corrector_alpha": lambda: sde.corrector_alpha(t),
        "reverse_diffusion": lambda: pc_sample(sde, score, (4, 2), "reverse_diffusion", "none"),
        "ancestral_sampling": lambda: pc_sample(sde, score, (4, 2), "ancestral_sampling", "none"),
        "langevin": lambda: pc_sample(sde, score, (4, 2), "euler_maruyama", "langevin"),
        "ode_denoise": lambda: ode_sample(sde, score, (4, 2), method="euler", steps=4, denoise=True),
    }
    for name, call in refused.items():
        with pytest.raises(ValueError, match=r"N=20") as err:
            call()
        assert "beta" in str(err.value), name
    # DDPM training (continuous=False) and discrete score conversion are refused too
    from training.losses import get_loss_fn
    with pytest.raises(ValueError, match=r"N=20"):
        get_loss_fn(sde, continuous=False)
    with pytest.raises(ValueError, match=r"N=20"):
        sde.model_output_to_score(x, t, continuous=False)
    # N = 21 (every beta_i < 1): the DDPM chain works; sub-VP has no discrete ladder: all steps work
    ok = VPSDE(beta_max=20., N=21)
    assert bool(torch.isfinite(pc_sample(ok, MIX.score_fn(ok), (64, 2), "ancestral_sampling", "none")[0]).all())
    svp = subVPSDE(beta_max=20., N=20)
    for pred in ["reverse_diffusion", "ancestral_sampling"]:
        assert bool(torch.isfinite(pc_sample(svp, MIX.score_fn(svp), (64, 2), pred, "langevin")[0]).all())
    with pytest.raises(ValueError, match="beta_max"):
        VPSDE(beta_min=5., beta_max=1.)


# ------------------------------------------------------------------------------------- item 11
def test_pc_sample_visits_every_ladder_level_once_with_n_2000():
    """Deterministic closed forms (float64, probability-flow reverse diffusion, no corrector):

    VP, zero score: x_mean = x - f_i = (2 - sqrt(1 - beta_i)) x, so x_final = prod_i (2 - sqrt(1 - beta_i)) z.
    VE, unit score: x_mean = x + G_i^2 / 2, so x_final = z + sigma_{N-1}^2 / 2 (telescoping sum).
    Before: level 1000 was used twice and level 0 never (relative errors 2.5e-3 and 1.7e-6)."""
    N, eps = 2000, 1e-3
    z = torch.ones(2, 2, dtype=D64)
    vp = VPSDE(N=N)
    out, _ = pc_sample(vp, lambda x, t: torch.zeros_like(x), (2, 2), "reverse_diffusion", "none",
                       probability_flow=True, eps=eps, z=z)
    expected = torch.prod(2 - torch.sqrt(1 - vp.discrete_betas))
    assert torch.allclose(out, expected * z, rtol=1e-12), float(out[0, 0] / expected - 1)
    ve = VESDE(0.01, 50., N=N)
    out, _ = pc_sample(ve, lambda x, t: torch.ones_like(x), (2, 2), "reverse_diffusion", "none",
                       probability_flow=True, eps=eps, z=z)
    assert torch.allclose(out, z + ve.discrete_sigmas[-1] ** 2 / 2, rtol=0, atol=1e-9), float(out[0, 0] - 1 - 1250)
    # the ODE sampler's denoising step is the chain's last level (index 0): + sigma_0^2 score
    zz = ve.prior_sampling((2, 2), generator=torch.Generator().manual_seed(0), dtype=D64)
    a, _ = ode_sample(ve, lambda x, t: torch.ones_like(x), (2, 2), method="euler", steps=3, eps=eps, z=zz)
    b, _ = ode_sample(ve, lambda x, t: torch.ones_like(x), (2, 2), method="euler", steps=3, eps=eps, z=zz,
                      denoise=True)
    assert torch.allclose(b - a, torch.full_like(a, 0.01 ** 2), rtol=1e-9)


class _LevelSpy(VPSDE):
    """A VPSDE that records the ladder level each discrete method is asked for."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.used = collections.defaultdict(collections.Counter)

    def _record(self, what, t, index):
        for i in self.ladder_index(t, index).tolist():
            self.used[what][i] += 1

    def _discretize(self, x, t, index=None):
        self._record("discretize", t, index)
        return super()._discretize(x, t, index=index)

    def ancestral_step(self, x, t, score, index=None, variance=None):
        self._record("ancestral", t, index)
        return super().ancestral_step(x, t, score, index=index, variance=variance)

    def corrector_alpha(self, t, index=None):
        self._record("corrector", t, index)
        return super().corrector_alpha(t, index=index)


def test_every_predictor_and_corrector_gets_the_step_index():
    N = 2000
    sde = _LevelSpy(N=N)
    score = lambda x, t: -x  # noqa: E731
    pc_sample(sde, score, (1, 2), "reverse_diffusion", "langevin", eps=1e-3)
    pc_sample(sde, score, (1, 2), "ancestral_sampling", "none", eps=1e-3)
    for what in ["discretize", "ancestral", "corrector"]:
        assert sorted(sde.used[what]) == list(range(N)) and set(sde.used[what].values()) == {1}, what
    # without an index (direct calls, training times t_i = i T / (N - 1)) the time decides: i
    t = torch.arange(N, dtype=D64) / (N - 1)
    assert torch.equal(sde.ladder_index(t), torch.arange(N))
    assert torch.equal(sde.ladder_index(t[:3], 7), torch.full((3,), 7))
    with pytest.raises(ValueError, match="index"):
        sde.discretize(torch.zeros(3, 2), t[:3], index=N)


# ------------------------------------------------------------------------------------- item 13
def _abar_prev(sde, idx):
    return torch.where(idx == 0, torch.ones((), dtype=D64), sde.alphas_cumprod[(idx - 1).clamp(min=0)])


def test_ddpm_fixed_small_variance_is_the_posterior_and_keeps_the_chain_marginals():
    N = 50
    sde = VPSDE(0.1, 20., N=N)
    idx = torch.tensor([0, 1, 10, 30, 49])
    t = idx.to(D64) / (N - 1)
    b, abar, abar_p = sde.discrete_betas[idx], sde.alphas_cumprod[idx], _abar_prev(sde, idx)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=D64)
    sc = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=D64)
    m_large, s_large = sde.ancestral_step(x, t, sc)                     # the default stays fixed_large
    m_small, s_small = sde.ancestral_step(x, t, sc, variance="fixed_small")
    assert torch.equal(m_large, m_small) and torch.allclose(s_large, torch.sqrt(b))
    assert torch.allclose(s_small, torch.sqrt(b * (1 - abar_p) / (1 - abar)), rtol=1e-12)
    assert float(s_small[0]) == 0.
    # point data x0: x_i ~ N(sqrt(abar_i) x0, 1 - abar_i) with the chain's exact score; one fixed_small
    # step gives exactly N(sqrt(abar_{i-1}) x0, 1 - abar_{i-1}); fixed_large overshoots the variance
    x0, sd = 0.8, torch.sqrt(1 - abar)
    pts = torch.stack([torch.sqrt(abar) * x0, torch.sqrt(abar) * x0 + sd])       # two points: the affine map
    tt = t.repeat(2)
    score = (-(pts - torch.sqrt(abar) * x0) / (1 - abar)).reshape(-1, 1)
    for variance, exact in [("fixed_small", True), ("fixed_large", False)]:
        mean, std = sde.ancestral_step(pts.reshape(-1, 1), tt, score, variance=variance)
        mean = mean.reshape(2, 5)
        slope = (mean[1] - mean[0]) / sd
        var = slope ** 2 * sd ** 2 + std[:5] ** 2
        assert torch.allclose(mean[0], torch.sqrt(abar_p) * x0, rtol=1e-10)
        assert torch.allclose(var, 1 - abar_p, rtol=1e-10, atol=1e-14) == exact, variance
    with pytest.raises(ValueError, match="variance"):
        sde.ancestral_step(x, t, sc, variance="learned")


@pytest.mark.parametrize("sde", [VPSDE(N=40), VESDE(0.01, 20., N=40), subVPSDE(N=40)], ids=repr)
@pytest.mark.parametrize("variance", [None, "fixed_small", "fixed_large"])
def test_ancestral_sampling_adds_no_noise_at_the_final_step(sde, variance):
    """denoise=False returns the last state x; at ladder index 0 it must be the noise-free mean (DDPM
    Algorithm 2: z = 0 at the last step). Before: the VP chain added sqrt(beta_0) z there."""
    kw = {} if variance is None else {"predictor_kwargs": {"variance": variance}}
    runs = [pc_sample(sde, MIX.score_fn(sde), (64, 2), "ancestral_sampling", "none", denoise=d,
                      generator=torch.Generator().manual_seed(0), **kw)[0] for d in (False, True)]
    assert torch.equal(runs[0], runs[1])


def test_fixed_small_ddpm_sampling_recovers_the_mixture_and_fails_with_a_wrong_score():
    sde = VPSDE(N=200)
    ref = MIX.sample(2048, generator=torch.Generator().manual_seed(123))
    kw = dict(predictor="ancestral_sampling", corrector="none", predictor_kwargs={"variance": "fixed_small"})
    x, nfe = pc_sample(sde, MIX.score_fn(sde), (2048, 2), generator=torch.Generator().manual_seed(0), **kw)
    w, d = float(MIX.mode_weights(x)[0]), sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(7))
    assert nfe == 200 and abs(w - 0.2) < 0.05 and d < 0.4, (w, d)
    bad, _ = pc_sample(sde, MIX.score_fn(sde, 0.5), (2048, 2), generator=torch.Generator().manual_seed(0), **kw)
    assert sliced_wasserstein(bad, ref, generator=torch.Generator().manual_seed(7)) > 0.4
    with pytest.raises(ValueError, match="variance"):
        pc_sample(sde, MIX.score_fn(sde), (4, 2), predictor_kwargs={"variance": "fixed_small"})  # reverse_diffusion
    with pytest.raises(ValueError, match="variance"):
        pc_sample(sde, MIX.score_fn(sde), (4, 2), **{**kw, "predictor_kwargs": {"variance": "small"}})


def test_ddpm_ancestral_step_matches_diffusers_scheduler_in_float64():
    """diffusers' DDPMScheduler (epsilon prediction, no clipping) on the same betas in float64: the
    same mean and noise at every ladder index, both variances, none at t = 0."""
    diffusers = pytest.importorskip("diffusers")
    N = 50
    sde = VPSDE(0.1, 20., N=N)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=D64)
    eps_pred = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=D64)
    for variance in ["fixed_small", "fixed_large"]:
        sched = diffusers.DDPMScheduler(num_train_timesteps=N, beta_start=0.1 / N, beta_end=20. / N,
                                        variance_type=variance, clip_sample=False)
        sched.betas = sde.discrete_betas.clone()
        sched.alphas = sde.alphas.clone()
        sched.alphas_cumprod = sde.alphas_cumprod.clone()
        sched.one = torch.tensor(1., dtype=D64)
        for i in [N - 1, 30, 1, 0]:
            t = torch.full((4,), i / (N - 1), dtype=D64)
            index = torch.full((4,), i)
            s = torch.sqrt(1 - sde.alphas_cumprod[i])
            score = -eps_pred / s                       # the noise prediction as a score
            pred = PREDICTORS["ancestral_sampling"](sde, lambda y, tt: score, variance=variance)
            ours, _ = pred.update(x, t, torch.Generator().manual_seed(5), index=index)
            theirs = sched.step(eps_pred, i, x, generator=torch.Generator().manual_seed(5)).prev_sample
            assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (variance, i, float((ours - theirs).abs().max()))


def test_langevin_default_matches_diffusers_step_correct_in_float64():
    """The default langevin corrector is the published batch-mean rule: diffusers' ScoreSdeVeScheduler
    .step_correct (and the score SDE code) to float64 rounding."""
    diffusers = pytest.importorskip("diffusers")
    sde = VESDE(0.01, 50., N=10)
    x = torch.randn(8, 3, 2, generator=torch.Generator().manual_seed(0), dtype=D64) * 3
    score = lambda y, t: -y / (1 + y.pow(2))  # noqa: E731  any score: varying norms across the batch
    t = torch.full((8,), 0.5, dtype=D64)
    sched = diffusers.ScoreSdeVeScheduler(snr=0.16)
    sched.set_timesteps(10)
    ours, _ = LangevinCorrector(sde, score, snr=0.16, n_steps=1).update(x, t, torch.Generator().manual_seed(3))
    default = torch.get_default_dtype()
    torch.set_default_dtype(D64)                      # diffusers draws its noise in the default dtype
    try:
        theirs = sched.step_correct(score(x, t), x, generator=torch.Generator().manual_seed(3)).prev_sample
    finally:
        torch.set_default_dtype(default)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-13), float((ours - theirs).abs().max())
