"""ermongroup/ncsnv2 configuration -> this toolkit's config (``configs.from_ncsnv2``).

The original is its YAML file as plain nested values (``yaml.safe_load`` of ``configs/<name>.yml``, or
the ``config.yml`` the original writes into its log folder read with ``yaml.Loader``, which gives
``argparse.Namespace`` sections; both are accepted). What the original does and how it maps:

* network: ``runners/ncsn_runner.get_model`` picks the class by data set (CIFAR10 / CELEBA: NCSNv2,
  LSUN: NCSNv2Deeper, FFHQ: NCSNv2Deepest) -> config.model.name "ncsnv2" / "ncsnv2_deeper" /
  "ncsnv2_deepest"; ngf -> nf; normalization, nonlinearity as they are.
* noise ladder: sigmas = exp(linspace(log sigma_begin, log sigma_end, num_classes)), label 0 =
  sigma_begin -> a discrete VE SDE (training.sde "vesde", continuous False) with sigma_max =
  sigma_begin, sigma_min = sigma_end, num_scales = num_classes (the network is fed the ladder index).
* data: rescaled (data in [-1, 1]) -> data.centered; otherwise the network maps x -> 2x - 1 itself.
* sampling (annealed Langevin, ``anneal_Langevin_dynamics``): per level i, n_steps_each times
  x <- x + e_i s(x, i) + sqrt(2 e_i) z with e_i = step_lr (sigma_i / sigma_L)^2, then (denoise)
  x <- x + sigma_L^2 s(x, L-1). The toolkit's "ald" corrector takes e_i = 2 (snr sigma_i)^2
  (samplers/correctors.py: alpha = 4 (snr sigma)^2, x <- x + alpha/2 s + sqrt(alpha) z), so
  snr = sqrt(step_lr / 2) / sigma_end reproduces the step; predictor "none"; denoise -> noise_removal;
  sampling eps 1e-5 so that the PC grid's labels are the ladder indices (see ``_sampling``).

Refused with a ValueError naming the key (the toolkit would compute another function): logit_transform,
spec_norm, sigma_dist other than geometric, anneal_power other than 2, data sets without an NCSNv2
class. Training-only options the toolkit does not have (dequantization, amsgrad) are not carried over.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import ml_collections

from configs.default import get_default_configs

#: runners/ncsn_runner.get_model: data set -> network
MODEL_BY_DATASET = {"CIFAR10": "ncsnv2", "CELEBA": "ncsnv2", "LSUN": "ncsnv2_deeper", "FFHQ": "ncsnv2_deepest"}
_NORMALIZATIONS = ("InstanceNorm++", "InstanceNorm", "BatchNorm", "VarianceNorm", "NoneNorm")
_NONLINEARITIES = ("elu", "relu", "lrelu", "swish")


def _plain(value):
    """Mappings / argparse.Namespace / ConfigDict -> nested dicts."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping) and hasattr(value, "__dict__") and not isinstance(value, type):
        value = vars(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _section(original: Mapping[str, Any], name: str, required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    value = original.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"original.{name} must be a mapping of config values, got {type(value).__name__}")
    for key in required:
        if key not in value:
            raise ValueError(f"original.{name}.{key} is missing (not an ermongroup/ncsnv2 config?)")
    return value


def _number(section: Mapping, name: str, key: str, integer: bool = False, positive: bool = True):
    value = section[key]
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok and not integer:
        ok = math.isfinite(float(value))
    if ok and positive:
        ok = value > 0
    if not ok:
        kind = "a positive int" if integer else "a positive finite number"
        raise ValueError(f"original.{name}.{key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _flag(section: Mapping, name: str, key: str, default: bool = False) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"original.{name}.{key} must be true or false, got {value!r}")
    return value


def from_ncsnv2(original: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A toolkit config that builds the ermongroup/ncsnv2 network, noise ladder and sampler of ``original``.

    ``get_model(config)`` has the original's parameters (``models.import_checkpoint`` maps a checkpoint
    onto it) and ``get_score_fn(get_sde(config), model, continuous=False)`` at the times whose
    ``sde.model_label(t, False)`` is i is the original's ``scorenet(x, i)``.
    """
    original = _plain(original)
    if not isinstance(original, Mapping):
        raise ValueError(f"original must be the ermongroup/ncsnv2 config as a dict of sections, got "
                         f"{type(original).__name__}")
    da = _section(original, "data", ("dataset", "image_size", "channels"))
    mo = _section(original, "model", ("sigma_begin", "sigma_end", "num_classes", "ngf"))
    tr, sa, op = (_section(original, k) for k in ("training", "sampling", "optim"))
    dataset = da["dataset"]
    if dataset not in MODEL_BY_DATASET:
        raise ValueError(f"original.data.dataset={dataset!r} has no NCSNv2 network in the original "
                         f"(runners/ncsn_runner.get_model knows {sorted(MODEL_BY_DATASET)})")
    if _flag(da, "data", "logit_transform"):
        raise ValueError("original.data.logit_transform=True is not supported (the toolkit's data are in "
                         "[0, 1] or, with rescaled, [-1, 1])")
    if _flag(mo, "model", "spec_norm"):
        raise ValueError("original.model.spec_norm=True is not supported (spectral normalisation changes "
                         "the weights' parameterisation)")
    if mo.get("sigma_dist", "geometric") != "geometric":
        raise ValueError(f"original.model.sigma_dist={mo['sigma_dist']!r} is not supported: the VE SDE's "
                         f"ladder is geometric")
    if float(tr.get("anneal_power", 2)) != 2.:
        raise ValueError(f"original.training.anneal_power={tr['anneal_power']!r} is not supported: the "
                         f"discrete SMLD loss weights level i by sigma_i^2 (anneal_power 2)")
    for key, allowed in (("normalization", _NORMALIZATIONS), ("nonlinearity", _NONLINEARITIES)):
        if key in mo and mo[key] not in allowed:
            raise ValueError(f"original.model.{key}={mo[key]!r} is not one of {allowed}")
    sigma_max, sigma_min = _number(mo, "model", "sigma_begin"), _number(mo, "model", "sigma_end")
    if not sigma_max > sigma_min:
        raise ValueError(f"original.model.sigma_begin={sigma_max} must exceed sigma_end={sigma_min}")
    size, channels = _number(da, "data", "image_size", True), _number(da, "data", "channels", True)

    config = get_default_configs()
    _training(config.training, tr)
    _sampling(config.sampling, sa, sigma_min)
    _data(config.data, da, dataset, channels, size)
    m = config.model
    m.name = MODEL_BY_DATASET[dataset]
    m.nf = _number(mo, "model", "ngf", True)
    m.normalization = mo.get("normalization", "InstanceNorm++")
    m.nonlinearity = mo.get("nonlinearity", "elu")
    m.sigma_max, m.sigma_min = sigma_max, sigma_min
    m.num_scales = _number(mo, "model", "num_classes", True)
    m.scale_by_sigma = True                # output / sigma_i: always, in NCSNv2 (Technique 3)
    m.ema_rate = float(mo.get("ema_rate", 0.999)) if _flag(mo, "model", "ema", True) else 0.
    m.dropout = 0.
    o = config.optim
    o.optimizer = str(op.get("optimizer", "Adam"))
    o.lr, o.beta1 = float(op.get("lr", 1e-4)), float(op.get("beta1", 0.9))
    o.eps, o.weight_decay = float(op.get("eps", 1e-8)), float(op.get("weight_decay", 0.))
    o.warmup, o.grad_clip = 0, -1.         # the original has neither
    config.eval.enable_bpd = False         # the original reports FID / IS only
    config.eval.batch_size = int(_section(original, "test").get("batch_size", 100))
    return config


def _training(t, tr: Mapping) -> None:
    t.sde, t.continuous = "vesde", False
    t.reduce_mean = False                  # dsm: 1/2 ||.||^2 summed over pixels, sigma^2-weighted, batch mean
    t.likelihood_weighting = False
    t.batch_size = int(tr.get("batch_size", 128))
    t.n_iters = int(tr.get("n_iters", 300001))
    t.snapshot_freq = int(tr.get("snapshot_freq", 5000))
    t.snapshot_sampling = bool(tr.get("snapshot_sampling", True))
    t.snapshot_freq_for_preemption = min(t.snapshot_freq, 5000)
    t.keep_checkpoints = 5


def _sampling(s, sa: Mapping, sigma_min: float) -> None:
    s.method, s.predictor, s.corrector = "pc", "none", "ald"
    s.n_steps_each = int(sa.get("n_steps_each", 5))
    step_lr = float(sa.get("step_lr", 6.2e-6))
    s.snr = math.sqrt(step_lr / 2.) / sigma_min    # 2 (snr sigma_i)^2 = step_lr (sigma_i / sigma_L)^2
    s.noise_removal = bool(sa.get("denoise", True))
    # grid t_i = 1 - i (1 - eps)/(N - 1): the labels round(i (1 - eps)) are the indices i for
    # i eps < 1/2 (N = 2311 needs eps < 2e-4), and sigma(t_i) is sigma_i to within (smax/smin)^eps - 1
    s.eps = 1e-5
    s.batch_size = int(sa.get("batch_size", 100))
    s.num_samples = int(sa.get("num_samples4fid", 10000))


def _data(d, da: Mapping, dataset: str, channels: int, size: int) -> None:
    d.shape = (channels, size, size)
    d.centered = _flag(da, "data", "rescaled")
    d.random_flip = _flag(da, "data", "random_flip", True)
    d.n_bins = 256
    if dataset == "CIFAR10":
        d.dataset, d.path = "npz", "data/cifar10.npz"      # uint8 x_train / x_test (placeholder)
    else:
        name = str(da.get("category", dataset)).lower()
        d.dataset, d.path = "image_folder", f"data/{name}_{size}"   # a local folder of images (placeholder)
