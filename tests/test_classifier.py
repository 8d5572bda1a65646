"""Noise-conditional and clean classifiers (models/classifier.py, training/classifier.py)."""
import numpy as np
import pytest
import torch

from models.classifier import ClassifierMLP, build_classifier, get_classifier_fn
from sde_lib import VESDE, VPSDE
from sde_lib.mixture import two_mode_mixture
from training.classifier import (accuracy, get_labeled_dataset, load_classifier, noisy_accuracy,
                                 train_classifier, train_classifiers)


def toy_config(sde="vpsde"):
    from configs.vp.toy2d import get_config
    cfg = get_config()
    cfg.training.sde = sde
    return cfg


def test_classifier_shapes_registry_and_errors():
    import ml_collections
    from models import get_model
    from models.conditioning import NoiseConditioning

    spec = NoiseConditioning("label", 100)
    for shape in [(2,), (6,), (1, 8, 8), (3, 4, 4)]:
        net = ClassifierMLP(shape, 4, spec, nf=32)
        x = torch.randn(5, *shape)
        assert net(x, torch.rand(5) * 99).shape == (5, 4)
        assert ClassifierMLP(shape, 4, None, nf=32)(x).shape == (5, 4)
    with pytest.raises(ValueError, match="cond"):
        ClassifierMLP((2,), 3, spec, nf=8)(torch.randn(4, 2), None)
    with pytest.raises(ValueError, match="x"):
        ClassifierMLP((2,), 3, spec, nf=8)(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="n_classes"):
        ClassifierMLP((2,), 1)
    cfg = toy_config()
    cfg.model.name = "classifier"
    cfg.classifier = ml_collections.ConfigDict(dict(n_classes=2, nf=16))
    net = get_model(cfg)
    assert isinstance(net, ClassifierMLP) and net.conditional and net.n_classes == 2
    cfg.classifier.n_classes = 1
    with pytest.raises(ValueError, match="config.classifier.n_classes"):
        build_classifier(cfg)
    # a classifier conditioned for VP labels refuses a VE SDE (its cond would be sigma)
    with pytest.raises(ValueError, match="conditioning"):
        get_classifier_fn(VESDE(N=10), net)


@pytest.mark.parametrize("sde_name", ["vpsde", "vesde"])
def test_noise_conditional_classifier_learns_exact_posterior(sde_name):
    """On the 0.2/0.8 mixture p_t(k | x_t) is known in closed form (the responsibilities); the trained
    classifier's probabilities must match them across t, a clean classifier used at all t must not."""
    import ml_collections

    mix = two_mode_mixture()
    cfg = toy_config(sde_name)
    cfg.model.sigma_max = 10.
    cfg.classifier = ml_collections.ConfigDict(dict(n_classes=2, nf=64, n_layers=2, dropout=0.))
    from sde_lib import get_sde
    sde = get_sde(cfg)
    x, k = mix.sample(4000, generator=torch.Generator().manual_seed(0), return_labels=True)
    torch.manual_seed(0)
    net = build_classifier(cfg)
    train_classifier(net, x, k, sde, n_iters=600, batch_size=256, lr=3e-3, weight_decay=0.,
                     generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    clean = build_classifier(cfg, conditional=False)
    train_classifier(clean, x, k, None, n_iters=300, batch_size=256, lr=3e-3, weight_decay=0.,
                     generator=torch.Generator().manual_seed(1))
    fn = get_classifier_fn(sde, net)
    g = torch.Generator().manual_seed(2)
    errs, errs_clean = [], []
    for t in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95):
        x0 = mix.sample(2000, generator=g)
        tt = torch.full((2000,), t)
        m, s = sde.marginal_coeffs(tt)
        xt = m[:, None] * x0 + s[:, None] * torch.randn(x0.shape, generator=g)
        logpdf, _, _ = mix._component_logpdf(xt.double(), m.double(), s.double())
        exact = torch.softmax(logpdf + torch.log(mix.weights), 1)[:, 0]
        with torch.no_grad():
            p = torch.softmax(fn(xt, tt), 1)[:, 0].double()
            pc = torch.softmax(clean(xt), 1)[:, 0].double()
        errs.append(float((p - exact).abs().mean()))
        errs_clean.append(float((pc - exact).abs().mean()))
    print(sde_name, "posterior error", [round(e, 4) for e in errs], "clean", [round(e, 4) for e in errs_clean])
    assert max(errs) < 0.08, errs
    assert max(errs_clean) > 0.12, errs_clean


def test_guided_sampling_with_a_trained_classifier_picks_the_mode():
    """Exact score of the 0.2/0.8 mixture + a trained noise-conditional classifier: asking for the
    small mode gives the small mode (unguided: 20%)."""
    import ml_collections
    from samplers import pc_sample
    from samplers.controllable import conditional_score_fn

    mix = two_mode_mixture()
    from sde_lib import get_sde
    cfg = toy_config("vpsde")
    cfg.model.num_scales = 200
    cfg.classifier = ml_collections.ConfigDict(dict(n_classes=2, nf=64, n_layers=2, dropout=0.))
    sde = get_sde(cfg)
    x, k = mix.sample(4000, generator=torch.Generator().manual_seed(0), return_labels=True)
    torch.manual_seed(0)
    net = build_classifier(cfg)
    train_classifier(net, x, k, sde, n_iters=400, batch_size=256, lr=3e-3, weight_decay=0.,
                     generator=torch.Generator().manual_seed(1))
    score = mix.score_fn(sde)
    score32 = lambda z, t: score(z.double(), t.double()).float()  # noqa: E731
    fn200 = get_classifier_fn(sde, net)
    with pytest.raises(ValueError, match="N=200"):
        get_classifier_fn(VPSDE(N=500), net)   # labels (N-1) t of another ladder are refused
    for target in (0, 1):
        out, _ = pc_sample(sde, conditional_score_fn(score32, fn200, target, 1.), (1000, 2), corrector="none",
                           generator=torch.Generator().manual_seed(3))
        frac = float((mix.component_index(out.detach()) == target).double().mean())
        assert frac > 0.95, (target, frac)
    out, _ = pc_sample(sde, score32, (1000, 2), corrector="none", generator=torch.Generator().manual_seed(3))
    assert abs(float((mix.component_index(out) == 0).double().mean()) - 0.2) < 0.05


def test_digits_labels_and_classifiers_with_checkpoints(tmp_path):
    import ml_collections
    from configs.ve.digits import get_config
    from sklearn.datasets import load_digits

    cfg = get_config()
    cfg.classifier = ml_collections.ConfigDict(dict(nf=64, n_layers=1, n_iters=300, clean_n_iters=300,
                                                    batch_size=64, dropout=0.))
    x, y = get_labeled_dataset(cfg, "train")
    xt, yt = get_labeled_dataset(cfg, "test")
    assert x.shape == (1497, 1, 8, 8) and xt.shape == (300, 1, 8, 8) and y.dtype == torch.long
    # labels match sklearn's targets of the same images
    d = load_digits()
    images = torch.from_numpy(d.images.reshape(-1, 64) / 17.).float()
    idx = torch.cdist(xt.reshape(300, -1), images).argmin(1)
    assert torch.equal(torch.from_numpy(d.target.astype(np.int64))[idx], yt)
    assert set(y.tolist()) == set(range(10))

    metrics = train_classifiers(cfg, str(tmp_path))
    assert metrics["clean_test_accuracy"] > 0.9
    noisy = metrics["noisy_test_accuracy"]
    assert noisy["t=0.01"] > 0.85 and noisy["t=0.25"] > 0.85
    assert noisy["t=1"] < 0.3              # sigma_max = 8: the digit is gone, near chance
    for kind in ("noisy", "clean"):
        net = load_classifier(cfg, str(tmp_path), kind)
        assert net.conditional == (kind == "noisy")
    clean = load_classifier(cfg, str(tmp_path), "clean")
    assert accuracy(clean, xt, yt) == pytest.approx(metrics["clean_test_accuracy"])
    from sde_lib import get_sde
    sde = get_sde(cfg)
    net = load_classifier(cfg, str(tmp_path), "noisy")
    acc = noisy_accuracy(net, sde, xt, yt, 0.01, generator=torch.Generator().manual_seed(int(cfg.seed) + 31))
    assert acc == pytest.approx(noisy["t=0.01"])
    # retraining replaces the checkpoint (even with fewer steps), and loading follows its architecture
    cfg2 = get_config()
    cfg2.classifier = ml_collections.ConfigDict(dict(nf=32, n_layers=1, clean_n_iters=100, batch_size=64))
    train_classifiers(cfg2, str(tmp_path), kinds=("clean",))
    reloaded = load_classifier(cfg, str(tmp_path), "clean")     # cfg still says nf=64
    assert reloaded.fc_in.out_features == 32
    with pytest.raises(ValueError, match="train_classifier"):
        load_classifier(cfg, str(tmp_path / "nothing"), "clean")
    with pytest.raises(ValueError, match="config.data.dataset"):
        get_labeled_dataset(toy_config(), "train")
