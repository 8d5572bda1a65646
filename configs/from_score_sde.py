"""score_sde_pytorch configuration -> this toolkit's config (``configs.from_score_sde``).

The original config is taken as plain values (a nested dict, e.g. ``json.load`` of a dumped
ml_collections config, or ``config.to_dict()``). Every option the released configs use is carried over;
options the toolkit cannot reproduce exactly (another normalization, nonlinearity, attention type or
kernel size) stop with a ValueError naming the key. Sampling defaults follow the original's run_lib:
sampling eps 1e-5 for VE, 1e-3 for VP / sub-VP; likelihood eps 1e-5.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections

from configs.default import get_default_configs

MODEL_NAMES = {"ncsnpp": "ncsnpp", "ddpm": "ddpm"}
_DATASETS = {"CIFAR10": ("npz", "data/cifar10.npz")}
#: the values the toolkit's networks implement (anything else would compute another function)
_FIXED = {"normalization": ("GroupNorm",), "nonlinearity": ("swish",), "attention_type": ("ddpm",),
          "conv_size": (3,)}


def _section(original: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = original.get(name, {})
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ValueError(f"original.{name} must be a mapping of config values, got {type(value).__name__}")
    return value


def _copy(dst, src: Mapping[str, Any], keys, section: str) -> None:
    for key in keys:
        if key in src:
            value = src[key]
            setattr(dst, key, tuple(value) if isinstance(value, list) else value)


def from_score_sde(original: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A toolkit config that builds the same network, SDE and sampler as the score_sde config ``original``.

    ``get_model(config)`` then has the original's parameters (``models.import_checkpoint`` maps a
    checkpoint onto it) and ``get_score_fn(get_sde(config), model, continuous=config.training.continuous)``
    is the original's score function.
    """
    if hasattr(original, "to_dict"):
        original = original.to_dict()
    if not isinstance(original, Mapping):
        raise ValueError(f"original must be the score_sde config as a dict of sections, got "
                         f"{type(original).__name__}")
    tr, sa, ev = _section(original, "training"), _section(original, "sampling"), _section(original, "eval")
    da, mo, op = _section(original, "data"), _section(original, "model"), _section(original, "optim")
    for section, key in (("training", "sde"), ("model", "name"), ("data", "image_size"),
                         ("data", "num_channels")):
        if key not in _section(original, section):
            raise ValueError(f"original.{section}.{key} is missing (not a score_sde config?)")
    name = mo["name"]
    if name not in MODEL_NAMES:
        raise ValueError(f"original.model.name={name!r} is not supported; expected one of "
                         f"{sorted(MODEL_NAMES)} (NCSNv2 checkpoints: configs.from_ncsnv2)")
    for key, allowed in _FIXED.items():
        if key in mo and mo[key] not in allowed:
            raise ValueError(f"original.model.{key}={mo[key]!r} is not supported (the toolkit's networks "
                             f"implement {allowed[0]!r})")
    sde = str(tr["sde"]).lower()

    config = get_default_configs()
    t = config.training
    _copy(t, tr, ("sde", "continuous", "reduce_mean", "likelihood_weighting", "batch_size", "n_iters",
                  "log_freq", "eval_freq", "snapshot_freq", "snapshot_freq_for_preemption",
                  "snapshot_sampling"), "training")
    t.sde = sde
    t.keep_checkpoints = 5

    s = config.sampling
    _copy(s, sa, ("method", "predictor", "corrector", "snr", "n_steps_each", "noise_removal",
                  "probability_flow"), "sampling")
    s.eps = 1e-5 if sde == "vesde" else 1e-3
    s.num_samples = int(ev.get("num_samples", 50000))
    s.batch_size = int(ev.get("batch_size", 1024))

    e = config.eval
    _copy(e, ev, ("batch_size", "num_samples", "enable_bpd", "enable_sampling"), "eval")

    d = config.data
    size, channels = int(da["image_size"]), int(da["num_channels"])
    d.shape = (channels, size, size)
    d.centered = bool(da.get("centered", False))
    d.random_flip = bool(da.get("random_flip", True))
    d.dataset, d.path = _DATASETS.get(str(da.get("dataset", "")).upper(),
                                      ("image_folder", f"data/{str(da.get('dataset', 'images')).lower()}"))
    d.n_bins = 256

    m = config.model
    m.name = MODEL_NAMES[name]
    _copy(m, mo, ("sigma_min", "sigma_max", "num_scales", "beta_min", "beta_max", "ema_rate", "dropout",
                  "scale_by_sigma", "embedding_type", "fourier_scale", "nf", "ch_mult", "num_res_blocks",
                  "attn_resolutions", "resamp_with_conv", "conditional", "fir", "fir_kernel", "skip_rescale",
                  "resblock_type", "progressive", "progressive_input", "progressive_combine", "init_scale"),
          "model")
    for key in ("sigma_min", "sigma_max", "beta_min", "beta_max", "fourier_scale"):
        if key in mo:
            setattr(m, key, float(mo[key]))
    if name == "ddpm":          # the DDPM network: sinusoidal embedding of the label, plain residual sums
        m.embedding_type = "positional"
        m.skip_rescale = False
    if m.name == "ncsnpp":
        for key, default in (("fir", False), ("progressive", "none"), ("progressive_input", "none"),
                             ("progressive_combine", "sum"), ("resblock_type", "biggan")):
            if key not in m:
                setattr(m, key, default)

    o = config.optim
    _copy(o, op, ("optimizer", "lr", "beta1", "eps", "weight_decay", "warmup", "grad_clip"), "optim")
    o.lr = float(o.lr)
    if "seed" in original:
        config.seed = int(original["seed"])
    return config
