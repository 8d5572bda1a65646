"""Basic layers shared by the score networks: DDPM initialisation, convolutions, dense layers,
GroupNorm sizing, the NIN (per-pixel dense) layer, and the input checks of every network."""
from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


def variance_scaling_(weight: Tensor, scale: float = 1.) -> Tensor:
    """DDPM default init: U(-a, a) with a = sqrt(3 scale / fan_avg), fan_avg = (fan_in + fan_out) / 2.

    ``scale == 0`` gives exact zeros (zero-init of the last layer of a residual branch / the output).
    """
    if scale == 0:
        return nn.init.zeros_(weight)
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    bound = math.sqrt(3. * scale / ((fan_in + fan_out) / 2.))
    return nn.init.uniform_(weight, -bound, bound)


def conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
         init_scale: float = 1., padding: int | None = None, bias: bool = True) -> nn.Conv2d:
    """``kernel`` x ``kernel`` convolution ('same' padding unless given), DDPM init, zero bias."""
    pad = dilation * (kernel // 2) if padding is None else padding
    layer = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad, dilation=dilation, bias=bias)
    variance_scaling_(layer.weight, init_scale)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def dense(in_features: int, out_features: int, init_scale: float = 1.) -> nn.Linear:
    """Linear layer with DDPM init and zero bias."""
    layer = nn.Linear(in_features, out_features)
    variance_scaling_(layer.weight, init_scale)
    nn.init.zeros_(layer.bias)
    return layer


def norm_groups(channels: int, groups: int | None = None, max_groups: int = 32) -> int:
    """GroupNorm group count: ``groups`` when given, else the score_sde rule min(C // 4, 32); a count
    that does not divide ``channels`` (where the original networks cannot be built) is lowered until
    it does, so the toolkit's own small networks always build."""
    g = groups if groups is not None else min(channels // 4, max_groups)
    g = max(1, min(g, channels))
    while channels % g:
        g -= 1
    return g


def group_norm(channels: int, groups: int | None = None) -> nn.GroupNorm:
    """GroupNorm(eps=1e-6) with :func:`norm_groups` groups."""
    return nn.GroupNorm(norm_groups(channels, groups), channels, eps=1e-6)


class NIN(nn.Module):
    """Per-pixel dense layer ("network in network"): y[b, o, h, w] = sum_c x[b, c, h, w] W[c, o] + b[o].

    W is stored as [in, out] (the DDPM / score_sde layout); DDPM init with ``init_scale``."""

    def __init__(self, in_dim: int, out_dim: int, init_scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(variance_scaling_(torch.empty(out_dim, in_dim), init_scale).t().contiguous())
        self.b = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.W.t().to(x.dtype)[:, :, None, None]
        return torch.nn.functional.conv2d(x, weight, self.b.to(x.dtype))


def check_inputs(x: Tensor, cond: Tensor, data_shape: tuple[int, ...], spec=None) -> Tensor:
    """Cheap shape checks (no device sync): x [B, *data_shape], cond a tensor [B] (floating point; integer
    ladder indices too when ``spec`` says the network is fed indices, kind "ve_index", as the original
    NCSN / NCSNv2 / score_sde networks are).

    Returns cond as a float tensor of x's dtype (a float64 time grid may drive a float32 network).
    """
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(data_shape):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [batch, {', '.join(map(str, data_shape))}] "
                         f"(config.data.shape={tuple(data_shape)}), got {got}")
    index_ok = getattr(spec, "kind", None) == "ve_index"
    ok_dtype = isinstance(cond, torch.Tensor) and (cond.is_floating_point() or (
        index_ok and not cond.is_complex() and cond.dtype != torch.bool))
    if not ok_dtype or cond.shape != (x.shape[0],):
        got = (tuple(cond.shape), cond.dtype) if isinstance(cond, torch.Tensor) else type(cond).__name__
        kind = "a float or integer (ladder index)" if index_ok else "a float"
        raise ValueError(f"cond must be {kind} tensor of shape [{x.shape[0]}] "
                         f"(sde.model_label(t, continuous)), got {got}")
    return cond.to(x.dtype)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
