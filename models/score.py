"""From a network to a score function: score_fn(x, t) = sde.model_output_to_score(model(x, label), t).

The SDE owns the conventions: label = sde.model_label(t, continuous) (VE: sigma(t) or the ladder
index with 0 = sigma_max; VP / sub-VP: 999 t, or (N-1) t for a discrete DDPM network) and the output conversion (VE: the output is the score;
VP / sub-VP: the output predicts the noise, score = -out / std(t), or / std_i of the DDPM chain
when not continuous).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Tensor = torch.Tensor


def expected_conditioning(sde, continuous: bool = True) -> str:
    """The NoiseConditioning kind of the labels ``sde.model_label(t, continuous)``."""
    if sde.score_parameterization == "score":
        return "sigma" if continuous else "ve_index"
    return "label"


def check_conditioning(sde, model: nn.Module, what: str = "model", continuous: bool = True) -> None:
    """``model`` is callable and, when it declares ``noise_conditioning``, expects the labels ``sde``
    passes (``sde.model_label(t, continuous)``): sigma(t) or the ladder index (VE), time labels
    ``model_label_scale * t`` (VP / sub-VP), with the same N. Raises ValueError otherwise."""
    if not callable(model):
        raise ValueError(f"model must be a callable network model(x, cond), got {type(model).__name__}")
    spec = getattr(model, "noise_conditioning", None)
    if spec is None:
        return
    expected = expected_conditioning(sde, continuous)
    if spec.kind != expected:
        raise ValueError(f"model was built for {spec.kind!r} conditioning but sde={sde!r} with "
                         f"continuous={continuous} passes {expected!r} labels; build the {what} from the "
                         f"same config.training.sde and config.training.continuous")
    if spec.kind != "sigma" and spec.N != sde.N:
        raise ValueError(f"model was built for N={spec.N} noise levels / time labels (config.model.num_scales) "
                         f"but sde has N={sde.N}; its labels would be rescaled")
    if spec.kind == "label" and spec.label_scale > 0 and \
            abs(spec.label_scale - sde.model_label_scale(continuous)) > 1e-9 * spec.label_scale:
        raise ValueError(f"model was built for time labels {spec.label_scale:g} t but sde={sde!r} with "
                         f"continuous={continuous} passes {sde.model_label_scale(continuous):g} t; build the "
                         f"{what} with the same config.training.continuous")


def get_score_fn(sde, model: nn.Module, continuous: bool = True,
                 train: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """score_fn(x, t) = sde.model_output_to_score(model(x, sde.model_label(t, continuous)), t, continuous).

    Each call puts ``model`` in train (``train=True``: dropout on) or eval mode. Gradients flow (wrap
    calls in ``torch.no_grad()`` for sampling). No input checks here: solvers call this in hot loops
    and may step slightly past T.
    """
    for attr in ("model_label", "model_output_to_score", "score_parameterization", "N"):
        if not hasattr(sde, attr):
            raise ValueError(f"sde must be an sde_lib.SDE (missing {attr!r}), got {type(sde).__name__}")
    check_conditioning(sde, model, continuous=bool(continuous))
    continuous, train = bool(continuous), bool(train)

    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        model.train(train)
        out = model(x, sde.model_label(t, continuous))
        return sde.model_output_to_score(out, t, continuous)

    return score_fn
