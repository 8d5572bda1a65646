"""pc_sample's settings that used to be ignored (issue 10 item 7): the final denoising step of corrector-only
(annealed Langevin / NCSNv2) sampling, and a corrector asked for with zero steps."""
import pytest
import torch

from samplers import pc_sample
from sde_lib import VESDE, VPSDE
from sde_lib.mixture import GaussianMixture, two_mode_mixture

MIX = two_mode_mixture()


def _run(sde, score_fn, denoise, corrector="ald", n=256, **kw):
    return pc_sample(sde, score_fn, (n, 2), predictor="none", corrector=corrector, denoise=denoise,
                     generator=torch.Generator().manual_seed(3), **kw)


@pytest.mark.parametrize("sde", [VESDE(sigma_min=0.01, sigma_max=7.4, N=30), VPSDE(N=30)],
                         ids=["ve", "vp"])
def test_corrector_only_denoise_is_the_tweedie_step(sde):
    """predictor "none" + denoise: x + s(eps)^2 score(x, eps), divided by m(eps) (Tweedie's posterior mean;
    NCSNv2's x + sigma_L^2 s(x, sigma_L) for VE); one score evaluation more."""
    score_fn = MIX.score_fn(sde)
    raw, nfe_raw = _run(sde, score_fn, denoise=False)
    den, nfe_den = _run(sde, score_fn, denoise=True)
    eps = torch.full((raw.shape[0],), 1e-3)
    m, s = sde.marginal_coeffs(eps)
    expect = (raw + s[:, None] ** 2 * score_fn(raw, eps)) / m[:, None]
    assert nfe_den == nfe_raw + 1 == 30 + 1
    assert torch.allclose(den, expect, rtol=0, atol=1e-6)
    assert (den - raw).abs().max() > 1e-4                    # it does something


def test_denoised_spread_is_the_posterior_mean_spread():
    """Gaussian data N(0, c^2 I) on a VE ladder ending at sigma_L = 0.6: the exact score is linear, so the
    denoised samples are c^2 / (c^2 + sigma_L^2) times the chain's last state and their variance shrinks
    by that factor squared (0.54); a step with the wrong sign (x - s^2 score) would grow it (2.1)."""
    c, sl = 1.0, 0.6
    data = GaussianMixture(torch.tensor([1.]), torch.zeros(1, 2), torch.tensor([c]))
    sde = VESDE(sigma_min=sl, sigma_max=6., N=20)
    score_fn = data.score_fn(sde)
    kw = dict(n=4096, snr=0.3, n_steps=2, eps=1e-6)
    raw, _ = _run(sde, score_fn, denoise=False, **kw)
    den, _ = _run(sde, score_fn, denoise=True, **kw)
    ratio = float(den.var(0).mean() / raw.var(0).mean())
    assert abs(ratio - (c ** 2 / (c ** 2 + sl ** 2)) ** 2) < 1e-3, ratio


def test_a_corrector_with_zero_steps_is_refused():
    sde = VPSDE(N=30)
    with pytest.raises(ValueError, match=r"n_steps must be >= 1 with corrector 'langevin'"):
        pc_sample(sde, MIX.score_fn(sde), (8, 2), corrector="langevin", n_steps=0)
    with pytest.raises(ValueError, match=r"n_steps must be >= 1 with corrector 'ald'"):
        pc_sample(sde, MIX.score_fn(sde), (8, 2), predictor="none", corrector="ald", n_steps=0)
    _, nfe = pc_sample(sde, MIX.score_fn(sde), (8, 2), corrector="none", n_steps=0)
    assert nfe == 30
