"""Layers of the NCSNv2 networks (Song & Ermon 2020, ermongroup/ncsnv2 ``models/layers.py`` and
``models/normalization.py``), written so that each computes the original's function with the
original's parameter names (a checkpoint's state dict loads by name after dropping 'module.').

    InstanceNorm++   h = IN(x) + alpha_c m~_c,  out = gamma_c h + beta_c,
                     m_c = mean_hw x_c,  m~ = (m - mean_c m) / sqrt(var_c m + 1e-5)  (unbiased var over c),
                     IN = InstanceNorm2d (eps 1e-5, biased var, no affine)
    ResidualBlock    out = shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))))))
                     (resample 'down' without dilation: conv2 and a 1x1 shortcut are ConvMeanPool;
                     with dilation: dilated 3x3 convs and a dilated 3x3 shortcut, no downsampling)
    ConvMeanPool     conv, then the mean of the four 2x2 phases
    RCU              n_blocks times: x <- x + conv(act(conv(act(x))))  (convs without bias)
    MSF              sum_i bilinear_upsample(conv_i(x_i)) (align_corners=True) to the first input's size
    CRP              x <- act(x); path <- x; n times: path <- conv(pool5(path)), x <- x + path
                     (pool5: 5x5 max-pooling, stride 1, padding 2)
    RefineBlock      output_RCU(CRP(MSF(RCU_i(x_i))))

Convolutions use PyTorch's default initialisation (as the original); InstanceNorm++ starts at
alpha, gamma ~ N(1, 0.02), beta = 0.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


# ------------------------------------------------------------------------------ normalizations
class InstanceNorm2dPlus(nn.Module):
    """InstanceNorm++ (unconditional), see the module docstring; ``bias`` adds beta."""

    def __init__(self, num_features: int, bias: bool = True):
        super().__init__()
        self.num_features, self.bias = num_features, bool(bias)
        self.instance_norm = nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
        self.alpha = nn.Parameter(torch.empty(num_features).normal_(1, 0.02))
        self.gamma = nn.Parameter(torch.empty(num_features).normal_(1, 0.02))
        if self.bias:
            self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        means = torch.mean(x, dim=(2, 3))
        m = torch.mean(means, dim=-1, keepdim=True)
        v = torch.var(means, dim=-1, keepdim=True)
        means = (means - m) / torch.sqrt(v + 1e-5)
        h = self.instance_norm(x) + means[..., None, None] * self.alpha[..., None, None]
        out = self.gamma.view(-1, self.num_features, 1, 1) * h
        return out + self.beta.view(-1, self.num_features, 1, 1) if self.bias else out


class VarianceNorm2d(nn.Module):
    """out = alpha_c x_c / sqrt(var_hw x_c + 1e-5) (unbiased variance)."""

    def __init__(self, num_features: int, bias: bool = False):
        super().__init__()
        self.num_features = num_features
        self.alpha = nn.Parameter(torch.empty(num_features).normal_(1, 0.02))

    def forward(self, x: Tensor) -> Tensor:
        h = x / torch.sqrt(torch.var(x, dim=(2, 3), keepdim=True) + 1e-5)
        return self.alpha.view(-1, self.num_features, 1, 1) * h


class NoneNorm2d(nn.Module):
    """Identity."""

    def __init__(self, num_features: int, bias: bool = True):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


def _torch_norm(cls) -> Callable[..., nn.Module]:
    # the original calls these as norm(C) inside the blocks and norm(C, num_classes) for the final
    # normalizer, where torch reads the second argument as eps: kept, so that outputs agree
    def make(num_features: int, second=None) -> nn.Module:
        return cls(num_features) if second is None else cls(num_features, second)
    return make


NORMALIZATIONS: dict[str, Callable[..., nn.Module]] = {
    "InstanceNorm++": InstanceNorm2dPlus,
    "InstanceNorm": _torch_norm(nn.InstanceNorm2d),
    "BatchNorm": _torch_norm(nn.BatchNorm2d),
    "VarianceNorm": VarianceNorm2d,
    "NoneNorm": NoneNorm2d,
}


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"elu": F.elu, "relu": F.relu, "lrelu": _lrelu, "swish": _swish}


# ------------------------------------------------------------------------------------- convs
def conv3x3(in_ch: int, out_ch: int, bias: bool = True, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, 'same' padding (= dilation), PyTorch default init."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=bias)


class ConvMeanPool(nn.Module):
    """conv (kernel 1 or 3, 'same' padding), then the mean of the four 2x2 phases (H, W even)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        return (h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2]) / 4.


class ResidualBlock(nn.Module):
    """Pre-activation residual block (see the module docstring). ``down`` halves H and W unless
    ``dilation`` is given (the original's dilated 'down' blocks keep the resolution)."""

    def __init__(self, in_ch: int, out_ch: int, act: Callable, norm: Callable, down: bool = False,
                 dilation: int | None = None):
        super().__init__()
        self.act, self.in_ch, self.out_ch, self.down = act, in_ch, out_ch, down
        d = dilation or 1
        mid = in_ch if down else out_ch
        self.conv1 = conv3x3(in_ch, mid, dilation=d)
        self.normalize2 = norm(mid)
        if down and dilation is None:
            self.conv2 = ConvMeanPool(in_ch, out_ch, 3)
        else:
            self.conv2 = conv3x3(mid, out_ch, dilation=d)
        if in_ch != out_ch or down:
            if dilation is not None:
                self.shortcut = conv3x3(in_ch, out_ch, dilation=d)
            elif down:
                self.shortcut = ConvMeanPool(in_ch, out_ch, 1)
            else:
                self.shortcut = nn.Conv2d(in_ch, out_ch, 1)
        self.normalize1 = norm(in_ch)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(self.act(self.normalize2(self.conv1(self.act(self.normalize1(x))))))
        skip = x if (self.in_ch == self.out_ch and not self.down) else self.shortcut(x)
        return skip + h


# ------------------------------------------------------------------------------ RefineNet parts
class RCUBlock(nn.Module):
    """Residual conv units: ``n_blocks`` times x <- x + conv(act(... conv(act(x)))) (``n_stages``
    bias-free 3x3 convs each, named '{block}_{stage}_conv' from 1 as in the original)."""

    def __init__(self, features: int, n_blocks: int, n_stages: int, act: Callable):
        super().__init__()
        self.act, self.n_blocks, self.n_stages = act, n_blocks, n_stages
        for i in range(n_blocks):
            for j in range(n_stages):
                self.add_module(f"{i + 1}_{j + 1}_conv", conv3x3(features, features, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        for i in range(self.n_blocks):
            residual = x
            for j in range(self.n_stages):
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(self.act(x))
            x = x + residual
        return x


class CRPBlock(nn.Module):
    """Chained residual pooling with 5x5 max-pooling (stride 1, padding 2) and bias-free convs."""

    def __init__(self, features: int, n_stages: int, act: Callable):
        super().__init__()
        self.act = act
        self.convs = nn.ModuleList(conv3x3(features, features, bias=False) for _ in range(n_stages))

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(x)
        path = x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, stride=1, padding=2))
            x = path + x
        return x


class MSFBlock(nn.Module):
    """Multi-resolution fusion: sum_i interpolate(conv_i(x_i), size, bilinear, align_corners=True)."""

    def __init__(self, in_chs: list[int], features: int):
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(c, features) for c in in_chs)

    def forward(self, xs: list[Tensor], size) -> Tensor:
        out = None
        for conv, x in zip(self.convs, xs):
            h = F.interpolate(conv(x), size=tuple(size), mode="bilinear", align_corners=True)
            out = h if out is None else out + h
        return out


class RefineBlock(nn.Module):
    """RefineNet block: an RCU (2 units of 2 convs) per input, MSF (when more than one input), CRP
    (2 stages), an output RCU of 1 unit (3 units at the network's ``end``)."""

    def __init__(self, in_chs: list[int], features: int, act: Callable, start: bool = False,
                 end: bool = False):
        super().__init__()
        self.adapt_convs = nn.ModuleList(RCUBlock(c, 2, 2, act) for c in in_chs)
        self.output_convs = RCUBlock(features, 3 if end else 1, 2, act)
        if not start:
            self.msf = MSFBlock(list(in_chs), features)
        self.crp = CRPBlock(features, 2, act)

    def forward(self, xs: list[Tensor], size) -> Tensor:
        hs = [adapt(x) for adapt, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, size) if len(hs) > 1 else hs[0]
        return self.output_convs(self.crp(h))
