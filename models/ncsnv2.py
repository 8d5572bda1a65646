"""NCSNv2 score networks (Song & Ermon 2020): NCSNv2, NCSNv2Deeper and NCSNv2Deepest of
ermongroup/ncsnv2 (``models/ncsnv2.py``), computing the original function with its parameter names.

    s_theta(x, i) = f_theta(h) / sigma_i,   h = 2x - 1 (data in [0, 1]) or h = x (config.data.centered)

(Technique 3: no noise embedding; sigma_i = spec.sigma(cond), the ladder level of index i with
0 = sigma_max for a discrete VE SDE, or cond itself for a continuous one.) f_theta: begin_conv ->
stages ``res*`` of two pre-activation residual blocks (:mod:`models.ncsnv2_layers`) -> RefineNet
blocks ``refine*`` from the deepest stage up -> normalizer -> act -> end_conv. Stage layouts (channel
multiples of ngf = config.model.nf; 'down' = 2x2 ConvMeanPool; 'dil d' = dilated convs, same size):

    ncsnv2          res1 1 | res2 2 down | res3 2 dil 2 | res4 2 dil 4                       (32, 64 px)
    ncsnv2_deeper   res1 1 | res2 2 down | res3 2 down | res4 4 dil 2 | res5 4 dil 4          (LSUN 128 px)
    ncsnv2_deepest  res1 1 | res2 2 down | res3 2 down | res31 2 down | res4 4 dil 2 | res5 4 dil 4 (FFHQ)

The original's ``adjust_padding`` for 28x28 images sits on a dilated block, where it has no effect,
so it needs no counterpart. State dicts equal the original's minus its ``sigmas`` buffer (the ladder
comes from the SDE) and the DataParallel prefix 'module.'. score_sde_pytorch's names of its port
(``ncsnv2_64``, ``ncsnv2_128``, ``ncsnv2_256``) are aliases.
"""
from __future__ import annotations

import torch
from torch import nn

from . import registry as R
from .conditioning import NoiseConditioning
from .layers import check_inputs
from .ncsnv2_layers import ACTIVATIONS, NORMALIZATIONS, RefineBlock, ResidualBlock

Tensor = torch.Tensor

# stage: (name, in mult, out mult, down, dilation); refine: (name, [input mults], out mult)
# listed in the original's construction order (so that a seed gives the original's initial weights);
# refine blocks run in REFINE_RUN order, each fusing one stage (deepest first) with the previous output
LAYOUTS: dict[str, dict] = {
    "ncsnv2": dict(
        stages=[("res1", 1, 1, False, None), ("res2", 1, 2, True, None), ("res3", 2, 2, True, 2),
                ("res4", 2, 2, True, 4)],
        refines=[("refine1", [2], 2), ("refine2", [2, 2], 2), ("refine3", [2, 2], 1), ("refine4", [1, 1], 1)],
        run=["refine1", "refine2", "refine3", "refine4"]),
    "ncsnv2_deeper": dict(
        stages=[("res1", 1, 1, False, None), ("res2", 1, 2, True, None), ("res3", 2, 2, True, None),
                ("res4", 2, 4, True, 2), ("res5", 4, 4, True, 4)],
        refines=[("refine1", [4], 4), ("refine2", [4, 4], 2), ("refine3", [2, 2], 2), ("refine4", [2, 2], 1),
                 ("refine5", [1, 1], 1)],
        run=["refine1", "refine2", "refine3", "refine4", "refine5"]),
    "ncsnv2_deepest": dict(
        stages=[("res1", 1, 1, False, None), ("res2", 1, 2, True, None), ("res3", 2, 2, True, None),
                ("res31", 2, 2, True, None), ("res4", 2, 4, True, 2), ("res5", 4, 4, True, 4)],
        refines=[("refine1", [4], 4), ("refine2", [4, 4], 2), ("refine3", [2, 2], 2), ("refine31", [2, 2], 2),
                 ("refine4", [2, 2], 1), ("refine5", [1, 1], 1)],
        run=["refine1", "refine2", "refine31", "refine3", "refine4", "refine5"]),
}
ALIASES = {"ncsnv2_64": "ncsnv2", "ncsnv2_128": "ncsnv2_deeper", "ncsnv2_256": "ncsnv2_deepest"}


def downsampling(layout: str) -> int:
    """The factor by which ``layout`` halves H and W (they must be divisible by it)."""
    return 2 ** sum(1 for _, _, _, down, dil in LAYOUTS[layout]["stages"] if down and dil is None)


class NCSNv2(nn.Module):
    """f_theta(h) / sigma on x [B, C, H, W] with cond [B] (module docstring); ``layout`` one of LAYOUTS."""

    def __init__(self, data_shape: tuple[int, int, int], spec: NoiseConditioning, *, layout: str = "ncsnv2",
                 ngf: int = 128, normalization: str = "InstanceNorm++", nonlinearity: str = "elu",
                 centered: bool = False, num_classes: int = 1):
        super().__init__()
        C, _, _ = data_shape
        self.data_shape, self.noise_conditioning = tuple(data_shape), spec
        self.layout, self.centered = layout, bool(centered)
        self.act = act = ACTIVATIONS[nonlinearity]
        norm = NORMALIZATIONS[normalization]
        spec_ = LAYOUTS[layout]
        self.begin_conv = nn.Conv2d(C, ngf, 3, padding=1)
        self.normalizer = norm(ngf, num_classes)   # the original's second argument (see ncsnv2_layers)
        self.end_conv = nn.Conv2d(ngf, C, 3, padding=1)
        self.stage_names = []
        for name, m_in, m_out, down, dil in spec_["stages"]:
            self.add_module(name, nn.ModuleList([
                ResidualBlock(m_in * ngf, m_out * ngf, act, norm, down=down, dilation=dil),
                ResidualBlock(m_out * ngf, m_out * ngf, act, norm, down=False, dilation=dil)]))
            self.stage_names.append(name)
        for name, ins, out in spec_["refines"]:
            self.add_module(name, RefineBlock([m * ngf for m in ins], out * ngf, act, start=(len(ins) == 1),
                                              end=(name == spec_["run"][-1])))
        self.refine_run = list(spec_["run"])

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        cond = check_inputs(x, cond, self.data_shape, self.noise_conditioning)
        h = x if self.centered else 2 * x - 1.
        h = self.begin_conv(h)
        layers = []
        for name in self.stage_names:
            for block in getattr(self, name):
                h = block(h)
            layers.append(h)
        ref = None
        for name, layer in zip(self.refine_run, reversed(layers)):
            xs = [layer] if ref is None else [layer, ref]
            ref = getattr(self, name)(xs, layer.shape[2:])
        out = self.end_conv(self.act(self.normalizer(ref)))
        sigma = self.noise_conditioning.sigma(cond.double()).to(x.dtype)   # float64: the float32 ladder
        return out / sigma.reshape(-1, *([1] * (x.dim() - 1)))


def _build(config, layout: str) -> NCSNv2:
    C, H, W = R.image_shape(config)
    spec = R.noise_conditioning(config)
    name = R.option(config, "name")
    if not spec.is_ve:
        raise ValueError(f"config.model.name={name!r} divides by the noise level sigma and needs "
                         f"config.training.sde='vesde', got {config.training.sde!r}")
    k = downsampling(layout)
    if H % k or W % k:
        raise ValueError(f"config.data.shape={(C, H, W)}: H and W must be divisible by {k} for "
                         f"config.model.name={name!r} ({k.bit_length() - 1} 2x2 mean-pooling stages)")
    return NCSNv2((C, H, W), spec, layout=layout, ngf=R.int_option(config, "nf"),
                  normalization=R.choice_option(config, "normalization", NORMALIZATIONS, "InstanceNorm++"),
                  nonlinearity=R.choice_option(config, "nonlinearity", ACTIVATIONS, "elu"),
                  centered=R.data_centered(config), num_classes=spec.N)


def _register(name: str, layout: str) -> None:
    def factory(config) -> NCSNv2:
        return _build(config, layout)
    factory.__name__ = name
    factory.__doc__ = (f"{layout} network of ermongroup/ncsnv2 from config.model (nf = ngf, normalization, "
                       f"nonlinearity) and config.data (shape, centered); needs a VE SDE.")
    R.register_model(name)(factory)


for _name in LAYOUTS:
    _register(_name, _name)
for _alias, _layout in ALIASES.items():
    _register(_alias, _layout)
