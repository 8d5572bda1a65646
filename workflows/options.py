"""``config.controllable``: the options of the researcher workflows, completed with their defaults.

Configs that define the block import ``CONTROLLABLE_DEFAULTS`` (e.g. configs/ve/digits_ncsn.py), so
``--config.controllable.mask=left`` works on the command line; other configs get the defaults.
"""
from __future__ import annotations

import ml_collections

#: defaults of ``config.controllable``
CONTROLLABLE_DEFAULTS = dict(
    num=100,                # inpaint / colorize: number of test images
    mask="top",             # inpaint: the KNOWN region, one of MASKS
    method="pc",            # inpaint: "pc" (samplers.inpaint) | "ald" (NCSN Algorithm 2, VE models)
    ald_n_steps=0,          # inpaint "ald": Langevin steps per level (0: config.sampling.n_steps_each)
    ald_step_lr=0.,         # inpaint "ald": step at sigma_min (0: 2 (snr sigma_min)^2 of config.sampling)
    classes=(),             # conditional_sample: class labels (empty: all n_classes)
    n_per_class=8,          # conditional_sample: samples per class
    scale=2.0,              # conditional_sample: guidance scale
    n_pairs=4,              # interpolate: pairs of test points (0-1, 2-3, ...)
    n_frames=9,             # interpolate: frames per pair, end points included
    recipe_n_steps=0,       # recipe: Langevin steps per level T (0: sampling.n_steps_each with "ald", else 5)
    recipe_sigma_min=0.,    # recipe: smallest noise level (0: config.model.sigma_min)
    color_bandwidth=0.05,   # colorize (digits demo): kernel width of the closed-form tinted-digits score
    color_num_scales=200,   # colorize (digits demo): PC steps
    compare_source="auto",  # compare: "checkpoint" | "closed_form" (two_mode toy set) | "auto"
    compare_n=2048,         # compare: samples per run
    compare_quick=False,    # compare: the small grid
    compare_families="pc,ode,ald,fast",
    figure="",              # also copy the mode's PNG here (e.g. docs/figures/inpaint_digits.png)
    seed_offset=0,          # added to config.seed for the sampling generator
)


def controllable_options(config) -> ml_collections.ConfigDict:
    """``config.controllable`` completed with ``CONTROLLABLE_DEFAULTS``."""
    opts = ml_collections.ConfigDict(dict(CONTROLLABLE_DEFAULTS))
    given = getattr(config, "controllable", None)
    if given is not None:
        for key, value in given.items():
            opts[key] = value
    return opts
