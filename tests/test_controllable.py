"""Controllable generation (samplers/controllable.py): inpainting, NCSN inpainting, colorization and
class guidance -- closed-form checks on Gaussian mixtures, then the acceptance on the digits with
models trained here at a small budget."""
import math

import pytest
import torch

from sde_lib import VESDE, VPSDE
from sde_lib.mixture import GaussianMixture
from samplers import pc_sample
from samplers.controllable import (annealed_langevin_inpaint, color_transform, colorize, conditional_score_fn,
                                   inpaint)

D64 = torch.float64


def separated_mixture(D=16, K=3, seed=0, std=0.3):
    """K well separated components in D dims (means at distance ~4), mean zero."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, D, generator=g, dtype=D64)
    means = 2.5 * means / means.norm(dim=1, keepdim=True)
    means = means - means.mean(0)
    return GaussianMixture(torch.full((K,), 1. / K, dtype=D64), means, torch.full((K,), std, dtype=D64))


class Recorder:
    """A score function that records its inputs."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, x, t):
        self.calls.append((x.clone(), t.clone()))
        return self.fn(x, t)


# ------------------------------------------------------------------ input validation
def test_bad_inputs_name_the_argument():
    sde = VESDE(N=10)
    score = lambda x, t: -x  # noqa: E731
    x = torch.zeros(4, 1, 4, 4)
    with pytest.raises(ValueError, match="mask"):
        inpaint(sde, score, x, torch.ones(3, 1, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        inpaint(sde, score, x, torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="mask"):
        inpaint(sde, score, x, [1, 0])
    with pytest.raises(ValueError, match="x"):
        inpaint(sde, score, torch.full((4, 2), float("nan")), torch.ones(2))
    with pytest.raises(ValueError, match="predictor"):
        inpaint(sde, score, x, torch.ones(1, 1, 4, 4), predictor="nope")
    with pytest.raises(ValueError, match="gray"):
        colorize(sde, score, torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="gray"):
        colorize(sde, score, torch.zeros(2, 16))
    with pytest.raises(ValueError, match="mask"):
        annealed_langevin_inpaint(lambda x, s: -x, [1., .1], x, torch.ones(4, 4, 4))
    with pytest.raises(ValueError, match="sigmas"):
        annealed_langevin_inpaint(lambda x, s: -x, [1., -1.], x, torch.ones(1, 1, 4, 4))
    clf = lambda x, t: torch.zeros(x.shape[0], 3, dtype=x.dtype)  # noqa: E731
    with pytest.raises(ValueError, match="y"):
        conditional_score_fn(score, clf, 5)(x, torch.ones(4))
    with pytest.raises(ValueError, match="y"):
        conditional_score_fn(score, clf, 0.5)
    with pytest.raises(ValueError, match="scale"):
        conditional_score_fn(score, clf, 0, scale=-1.)


# ------------------------------------------------------------------ PC inpainting
@pytest.mark.parametrize("shape", [(64, 2), (64, 6), (32, 1, 4, 4)])
def test_inpaint_keeps_known_pixels_exactly_and_is_reproducible(shape):
    D = math.prod(shape[1:])
    mix = separated_mixture(D=D, K=2)
    sde = VPSDE(N=30)
    x = mix.sample(shape[0], generator=torch.Generator().manual_seed(1)).reshape(shape).float()
    mask = (torch.arange(D) % 2 == 0).float().reshape(1, *shape[1:])
    score = lambda z, t: mix.score_fn(sde)(z.reshape(z.shape[0], -1).double(), t.double()).reshape(z.shape).float()  # noqa: E731
    out1 = inpaint(sde, score, x, mask, generator=torch.Generator().manual_seed(3))
    out2 = inpaint(sde, score, x, mask, generator=torch.Generator().manual_seed(3))
    out3 = inpaint(sde, score, x, mask, generator=torch.Generator().manual_seed(4))
    known = mask.expand_as(x).bool()
    assert torch.equal(out1[known], x[known])
    assert torch.equal(out1, out2)
    assert not torch.equal(out1[~known], out3[~known])
    assert torch.isfinite(out1).all()


@pytest.mark.parametrize("sde", [VESDE(sigma_min=0.01, sigma_max=10., N=40), VPSDE(N=40)], ids=["ve", "vp"])
def test_known_pixels_renoised_to_the_current_level(sde):
    """At every score call (corrector at t_i, predictor at t_i, next corrector at t_(i+1)) the known
    pixels are m(t) x + s(t) z with fresh z ~ N(0, I): standardized residuals have mean 0 and variance 1."""
    mix = separated_mixture(D=8, K=2)
    B, D = 4000, 8
    x = mix.sample(B, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([1., 1., 1., 1., 0., 0., 0., 0.], dtype=D64)
    rec = Recorder(mix.score_fn(sde))
    inpaint(sde, rec, x, mask, corrector="langevin", snr=0.05, generator=torch.Generator().manual_seed(1))
    assert len(rec.calls) == 2 * sde.N
    variances, prev = [], None
    for xs, t in rec.calls:
        m, s = sde.marginal_coeffs(t)
        r = (xs[:, :4] - m[:, None] * x[:, :4]) / s[:, None]
        assert abs(float(r.mean())) < 0.05
        variances.append(float(r.var()))
        if prev is not None:  # fresh noise at every replacement: consecutive calls are uncorrelated
            assert abs(float((r * prev).mean())) < 0.05
        prev = r
    v = torch.tensor(variances)
    assert (v - 1).abs().max() < 0.06, v
    # the check has power: a level shifted by one grid step moves the variance well outside it
    dt = (sde.T - 1e-3) / (sde.N - 1)
    wrong = []
    for xs, t in rec.calls:
        m, s = sde.marginal_coeffs((t - dt).clamp(min=1e-4))
        wrong.append(float(((xs[:, :4] - m[:, None] * x[:, :4]) / s[:, None]).var()))
    assert (torch.tensor(wrong) - 1).abs().max() > 0.2


@pytest.mark.parametrize("sde", [VESDE(sigma_min=0.01, sigma_max=10., N=200), VPSDE(N=200)], ids=["ve", "vp"])
def test_inpaint_completes_the_right_mixture_component(sde):
    """D = 16, three separated components: the known half determines the component; the filled half
    must come from it (unconditional sampling matches only 1/3 of the time)."""
    mix = separated_mixture(D=16, K=3)
    x, labels = mix.sample(600, generator=torch.Generator().manual_seed(0), dtype=D64, return_labels=True)
    mask = torch.cat([torch.ones(8), torch.zeros(8)]).to(D64)
    out = inpaint(sde, mix.score_fn(sde), x, mask, generator=torch.Generator().manual_seed(1))
    # component of the filled half alone (distance to the components' second halves)
    d = torch.cdist(out[:, 8:], mix.means[:, 8:])
    hit = d.argmin(1) == labels
    # the replacement method is approximate (the known half enters only as fresh noisy copies), so
    # some samples commit to another component at mid noise: measured 0.81 (VE and VP), 600 samples
    assert float(hit.double().mean()) > 0.7
    # the filled half is spread like the component (std 0.3), not collapsed or blown up
    resid = out[hit][:, 8:] - mix.means[labels[hit]][:, 8:]
    assert 0.25 < float(resid.std()) < 0.4
    uncond, _ = pc_sample(sde, mix.score_fn(sde), (600, 16), generator=torch.Generator().manual_seed(1), dtype=D64)
    d_u = torch.cdist(uncond[:, 8:], mix.means[:, 8:])
    assert float((d_u.argmin(1) == labels).double().mean()) < 0.45


# ------------------------------------------------------------------ NCSN Algorithm 2
def test_annealed_langevin_inpaint_algorithm2():
    mix = separated_mixture(D=16, K=3)
    x, labels = mix.sample(400, generator=torch.Generator().manual_seed(0), dtype=D64, return_labels=True)
    mask = torch.cat([torch.ones(8), torch.zeros(8)]).to(D64)
    sigmas = torch.exp(torch.linspace(math.log(8.), math.log(0.01), 12, dtype=D64))
    rec = Recorder(mix.sigma_score_fn())
    out, nfe = annealed_langevin_inpaint(rec, sigmas, x, mask, n_steps_each=30, step_lr=5e-5,
                                         generator=torch.Generator().manual_seed(1), return_nfe=True)
    assert nfe == 12 * 30 + 1
    assert torch.equal(out[:, :8], x[:, :8])
    d = torch.cdist(out[:, 8:], mix.means[:, 8:])
    assert float((d.argmin(1) == labels).double().mean()) > 0.8        # measured 0.90
    # within a level the known pixels are the same y = x + sigma_i z (drawn once per level) ...
    level0 = [c for c in rec.calls[:30]]
    for xs, s in level0[1:]:
        assert torch.equal(xs[:, :8], level0[0][0][:, :8])
        assert torch.all(s == sigmas[0])
    r = (level0[0][0][:, :8] - x[:, :8]) / sigmas[0]
    assert abs(float(r.var()) - 1) < 0.08
    # ... and a new draw at the next level, with its own sigma
    y1 = rec.calls[30][0][:, :8]
    r1 = (y1 - x[:, :8]) / sigmas[1]
    assert abs(float(r1.var()) - 1) < 0.08 and abs(float((r1 * r).mean())) < 0.1
    # same seed, same result
    again = annealed_langevin_inpaint(mix.sigma_score_fn(), sigmas, x, mask, n_steps_each=30, step_lr=5e-5,
                                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


# ------------------------------------------------------------------ colorization
def test_color_transform_is_orthonormal_with_gray_first_row():
    M = color_transform()
    assert torch.allclose(M @ M.T, torch.eye(3, dtype=D64), atol=1e-15)
    assert torch.allclose(M[0], torch.full((3,), 1 / math.sqrt(3), dtype=D64))


def colour_mixture():
    """Four constant-colour 4x4 images, a colour per gray level. The gray levels are farther apart than
    the colours (in the transformed coordinates): the replacement method fixes the unknown coordinates
    at the noise level where they separate, so it needs the known one to separate first (with colours
    farther apart than their grays it picks the colour at random, 44% here)."""
    colours = torch.tensor([[0.05, 0.15, 0.1], [0.6, 0.2, 0.4], [0.5, 0.9, 0.7], [1.0, 0.95, 0.9]], dtype=D64)
    means = colours[:, :, None, None].expand(4, 3, 4, 4).clone() - 0.5
    return GaussianMixture(torch.full((4,), 0.25, dtype=D64), means, torch.full((4,), 0.05, dtype=D64))


def test_colorize_recovers_colours_and_keeps_gray():
    mix = colour_mixture()
    sde = VESDE(sigma_min=0.01, sigma_max=6., N=150)
    x, labels = mix.sample(200, generator=torch.Generator().manual_seed(0), dtype=D64, return_labels=True)
    gray = x.mean(1, keepdim=True)
    out = colorize(sde, mix.score_fn(sde), gray, corrector="none", generator=torch.Generator().manual_seed(1))
    assert out.shape == (200, 3, 4, 4)
    assert float((out.mean(1, keepdim=True) - gray).abs().max()) < 1e-12     # the gray channel is exact
    assert float((mix.component_index(out) == labels).double().mean()) > 0.97
    assert float((out - x).pow(2).mean().sqrt()) < 0.12
    # inpainting the first channel as if it were the gray value (no channel transform) fails
    wrong = inpaint(sde, mix.score_fn(sde), torch.cat([gray, torch.zeros_like(x[:, 1:])], 1),
                    torch.tensor([1., 0., 0.], dtype=D64).reshape(1, 3, 1, 1), corrector="none",
                    generator=torch.Generator().manual_seed(1))
    assert float((wrong - x).pow(2).mean().sqrt()) > 0.2


# ------------------------------------------------------------------ classifier guidance
def test_conditional_score_with_exact_classifier_is_the_component_score():
    """p_t(x | y=k) of a mixture is component k: score + grad log p_t(k | x) must equal its score."""
    mix = separated_mixture(D=5, K=3)
    sde = VPSDE(N=100)
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(0), dtype=D64)
    t = torch.rand(50, generator=torch.Generator().manual_seed(1), dtype=D64) * 0.9 + 0.05

    def log_posterior(z, tt):   # exact log p_t(k | z) + const
        m, s = sde.marginal_coeffs(tt)
        logpdf, _, _ = mix._component_logpdf(z, m, s)
        return logpdf + torch.log(mix.weights)

    for k in range(3):
        comp = GaussianMixture([1.], mix.means[k:k + 1], mix.stds[k:k + 1])
        target = comp.score(x, t, sde)
        with torch.no_grad():   # samplers call score functions under no_grad
            got = conditional_score_fn(mix.score_fn(sde), log_posterior, k, scale=1.)(x, t)
        assert torch.allclose(got, target, atol=1e-10, rtol=1e-10)
        half = conditional_score_fn(mix.score_fn(sde), log_posterior, k, scale=0.5)(x, t)
        assert (half - target).abs().max() > 1e-2
    labels = torch.arange(50) % 3
    got = conditional_score_fn(mix.score_fn(sde), log_posterior, labels)(x, t)
    for k in range(3):
        comp = GaussianMixture([1.], mix.means[k:k + 1], mix.stds[k:k + 1])
        assert torch.allclose(got[labels == k], comp.score(x[labels == k], t[labels == k], sde), atol=1e-10)


# ------------------------------------------------------------------ acceptance on the digits
@pytest.fixture(scope="module")
def digits_models():
    """A VE score MLP, a clean and a noise-conditional classifier, trained on the digits train split."""
    import ml_collections
    from configs.ve.digits import get_config
    from models import ExponentialMovingAverage, get_model, get_score_fn
    from models.classifier import build_classifier
    from sde_lib import get_sde
    from training.classifier import accuracy, get_labeled_dataset, train_classifier
    from training.losses import get_loss_fn

    cfg = get_config()
    cfg.model.name = "mlp"
    cfg.model.nf = 256
    cfg.model.n_layers = 3
    cfg.model.sigma_max = 4.46
    cfg.model.num_scales = 200
    cfg.model.scale_by_sigma = True
    cfg.classifier = ml_collections.ConfigDict(dict(nf=128, n_layers=2))
    x, y = get_labeled_dataset(cfg, "train")
    xt, yt = get_labeled_dataset(cfg, "test")
    sde = get_sde(cfg)

    torch.manual_seed(0)
    clean = build_classifier(cfg, conditional=False)
    train_classifier(clean, x, y, None, n_iters=400, batch_size=64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    noisy = build_classifier(cfg, conditional=True)
    train_classifier(noisy, x, y, sde, n_iters=1000, batch_size=128, generator=torch.Generator().manual_seed(1))

    torch.manual_seed(2)
    model = get_model(cfg)
    ema = ExponentialMovingAverage(model.parameters(), decay=0.99)
    loss_fn = get_loss_fn(sde, reduce_mean=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(2)
    for _ in range(1000):
        idx = torch.randint(0, x.shape[0], (128,), generator=g)
        loss = loss_fn(model, x[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model.parameters())
    ema.copy_to(model.parameters())
    model.eval()
    assert accuracy(clean, xt, yt) > 0.95
    return dict(cfg=cfg, sde=sde, score_fn=get_score_fn(sde, model), clean=clean, noisy=noisy, x_test=xt[:100],
                y_test=yt[:100])


def test_digits_inpainting_agrees_with_the_label(digits_models):
    from training.classifier import accuracy

    m = digits_models
    sde, score_fn, clean, x, y = m["sde"], m["score_fn"], m["clean"], m["x_test"], m["y_test"]
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1.                       # the top half is known
    with torch.no_grad():
        out = inpaint(sde, score_fn, x, mask, generator=torch.Generator().manual_seed(0))
        uncond, _ = pc_sample(sde, score_fn, tuple(x.shape), generator=torch.Generator().manual_seed(0))
    known = mask.expand_as(x).bool()
    assert torch.equal(out[known], x[known])
    agree = accuracy(clean, out, y)
    chance = accuracy(clean, uncond, y)
    print(f"digits inpainting (top half known): clean-classifier agreement {agree:.2f}, "
          f"unconditional samples {chance:.2f}")
    assert agree > 0.45
    assert chance < 0.25

    # NCSN Algorithm 2 with the same network (score(x, sigma) = score_fn at t(sigma))
    sigmas = torch.exp(torch.linspace(math.log(4.46), math.log(0.01), 21))
    sigma_score = lambda z, s: score_fn(z, sde.t_from_noise_level(s))  # noqa: E731
    # T = 20 steps of 1e-4 per level, 10x the Technique-4 step for T = 20 (9.9e-6): the unknown half has
    # to mix between digits; measured agreement 0.70-0.74 (two seeds), 0.50-0.55 at 9.9e-6, ~0.11 at 3e-4
    out2 = annealed_langevin_inpaint(sigma_score, sigmas, x, mask, n_steps_each=20, step_lr=1e-4,
                                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(out2[known], x[known])
    agree2 = accuracy(clean, out2, y)
    print(f"digits inpainting with annealed Langevin (NCSN Alg. 2): agreement {agree2:.2f}")
    assert agree2 > 0.5


def test_digits_class_conditional_sampling(digits_models):
    from models.classifier import get_classifier_fn
    from training.classifier import accuracy

    m = digits_models
    sde, score_fn, clean, noisy = m["sde"], m["score_fn"], m["clean"], m["noisy"]
    labels = torch.arange(100) % 10
    cf = get_classifier_fn(sde, noisy)
    rates = {}
    for scale in (0., 2.):
        x, _ = pc_sample(sde, conditional_score_fn(score_fn, cf, labels, scale), (100, 1, 8, 8),
                         generator=torch.Generator().manual_seed(0))
        rates[scale] = accuracy(clean, x.detach(), labels)
    print(f"class-conditional digits: requested class rate {rates[2.]:.2f} at scale 2, {rates[0.]:.2f} unguided")
    assert rates[2.] > 0.6
    assert rates[0.] < 0.25


# ------------------------------------------------------------------ public API and the main.py workflows
def test_spec_exports():
    import samplers
    from samplers import controllable
    assert samplers.inpaint is controllable.inpaint and samplers.colorize is controllable.colorize
    assert samplers.annealed_langevin_inpaint is controllable.annealed_langevin_inpaint
    assert samplers.conditional_score_fn is controllable.conditional_score_fn


@pytest.mark.slow
def test_workflow_modes_on_a_briefly_trained_digits_ncsn(tmp_path, capsys):
    """The main.py modes (training.workflows) end to end on a 30-step NCSN digits model: files,
    metrics and exit codes (the numbers themselves are checked by the tests above)."""
    import json
    import os

    from configs.ve.digits_ncsn import get_config
    from training.train import train
    import workflows as W

    cfg = get_config()
    cfg.training.n_iters = 30
    cfg.training.snapshot_sampling = False
    cfg.training.eval_freq = 0
    cfg.sampling.n_steps_each = 2
    cfg.classifier.n_iters = 60
    cfg.classifier.clean_n_iters = 60
    c = cfg.controllable
    c.num, c.n_per_class, c.classes, c.n_pairs, c.n_frames = 6, 2, (3, 7), 1, 3
    c.color_num_scales = 20
    c.figure = str(tmp_path / "fig" / "copy.png")
    wd = str(tmp_path / "run")
    assert W.mode_inpaint(cfg, wd, progress=False) == 2                       # no checkpoint yet
    assert "error:" in capsys.readouterr().err
    train(cfg, wd, progress=False)
    assert W.mode_train_classifier(cfg, wd, progress=False) == 0
    assert W.mode_inpaint(cfg, wd, progress=False) == 0
    import glob
    one = lambda pattern: (lambda found: found[0] if len(found) == 1 else found)(glob.glob(os.path.join(wd, pattern)))  # noqa: E731
    with open(one("inpaint/inpaint_top_pc_none-ald_*_n6_30.json")) as fh:   # named by the settings (issue 10)
        stats = json.load(fh)
    assert stats["known_pixels_exact"] and stats["nfe"] == 21 * 2 + 1 and "label_agreement" in stats  # + denoise
    assert os.path.isfile(c.figure)
    c.method = "ald"
    assert W.mode_inpaint(cfg, wd, progress=False) == 0
    assert os.path.isfile(one("inpaint/inpaint_top_ald_*_n6_30.png"))        # the pc one is not overwritten
    assert len(glob.glob(os.path.join(wd, "inpaint", "*.png"))) == 2
    assert W.mode_conditional_sample(cfg, wd, progress=False) == 0
    with open(one("conditional/conditional_scale2_*_30.json")) as fh:
        stats = json.load(fh)
    assert stats["classes"] == [3, 7] and 0 <= stats["class_rate"] <= 1
    cfg.sampling.rtol = cfg.sampling.atol = 1e-3
    assert W.mode_interpolate(cfg, wd, progress=False) == 0
    assert os.path.isfile(one("interpolate/interpolate_ode_tol0.001_pairs1x3_30.png"))
    assert W.mode_colorize(cfg, wd, progress=False) == 0
    with open(one("colorize/colorize_*.json")) as fh:
        stats = json.load(fh)
    assert stats["gray_max_error"] < 1e-12
    c.mask = "nowhere"
    assert W.mode_inpaint(cfg, wd, progress=False) == 2
    assert "config.controllable.mask" in capsys.readouterr().err


def test_compare_mode_closed_form(tmp_path):
    import os

    from configs.ve.toy2d_ncsn import get_config
    import workflows as W

    cfg = get_config()
    cfg.controllable.compare_n = 256
    cfg.controllable.compare_quick = True
    cfg.controllable.compare_families = "ode,ald"
    assert W.mode_compare(cfg, str(tmp_path), progress=False) == 0
    stem = os.path.join(tmp_path, "compare", "compare_closed_form_n256_ode-ald_quick")   # named by the settings
    for ext in ("md", "json", "png"):
        assert os.path.isfile(f"{stem}.{ext}")
    with open(f"{stem}.md") as fh:
        table = fh.read()
    assert "pf_ode_rk45" in table and "annealed_langevin" in table


# ------------------------------------------------------------------ latent interpolation
def test_slerp_closed_form():
    from workflows.interpolate import slerp

    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 2, 5, generator=g, dtype=D64)
    z1 = torch.randn(3, 2, 5, generator=g, dtype=D64)
    z1 = z1 / z1.flatten(1).norm(dim=1)[:, None, None] * z0.flatten(1).norm(dim=1)[:, None, None]  # equal norms
    a = torch.linspace(0, 1, 7, dtype=D64)
    path = slerp(z0, z1, a)
    assert path.shape == (3, 7, 2, 5)
    assert torch.allclose(path[:, 0], z0, atol=1e-12) and torch.allclose(path[:, -1], z1, atol=1e-12)
    norms = path.flatten(2).norm(dim=2)
    assert torch.allclose(norms, norms[:, :1].expand_as(norms), rtol=1e-12)     # stays on the sphere
    f0 = z0.flatten(1) / z0.flatten(1).norm(dim=1, keepdim=True)
    ang = torch.arccos((path.flatten(2) / norms[..., None] * f0[:, None]).sum(-1).clamp(-1, 1))
    assert torch.allclose(ang, a[None] * ang[:, -1:], atol=1e-9)                 # constant angular speed
    lerp = (1 - a[None, :, None]) * z0.flatten(1)[:, None] + a[None, :, None] * z1.flatten(1)[:, None]
    assert (lerp.norm(dim=2)[:, 3] < 0.95 * norms[:, 3]).all()                   # a straight line cuts inside
    assert torch.allclose(slerp(z0, 2 * z0, a)[:, 3], 1.5 * z0, atol=1e-12)       # parallel: linear
    with pytest.raises(ValueError, match="z1"):
        slerp(z0, z1[:2], a)


@pytest.mark.parametrize("sde", [VESDE(sigma_min=0.01, sigma_max=20., N=100), VPSDE(N=100)], ids=["ve", "vp"])
def test_interpolation_through_latents_stays_on_the_data(sde):
    """Pairs across the two modes of the 0.2/0.8 mixture: decode(slerp(encode(.))) reproduces the end
    points and stays in high density (log p >= -5.3 measured), where the straight line crosses the gap
    (log p <= -12.8); with half the exact score the decoded path falls off the data (down to -83)."""
    from sde_lib.mixture import two_mode_mixture
    from workflows.interpolate import interpolate

    mix = two_mode_mixture()
    x, k = mix.sample(200, generator=torch.Generator().manual_seed(0), return_labels=True, dtype=D64)
    a, b = x[k == 0][:4], x[k == 1][:4]
    path = interpolate(sde, mix.score_fn(sde), a, b, n=9, rtol=1e-6, atol=1e-6)
    assert path.shape == (4, 9, 2)
    assert float((path[:, 0] - a).norm() / a.norm()) < 1e-4
    assert float((path[:, -1] - b).norm() / b.norm()) < 1e-4
    logp = mix.log_prob(path.reshape(-1, 2)).reshape(4, 9)
    assert float(logp.min()) > -6.5
    line = torch.stack([(1 - t) * a + t * b for t in torch.linspace(0, 1, 9, dtype=D64)], 1)
    assert float(mix.log_prob(line.reshape(-1, 2)).reshape(4, 9).min(1).values.max()) < -12
    wrong = interpolate(sde, mix.score_fn(sde, 0.5), a, b, n=9, rtol=1e-6, atol=1e-6)
    assert float(mix.log_prob(wrong.reshape(-1, 2)).reshape(4, 9).min(1).values.mean()) < -10
