"""What the conditioning input ``cond`` of a score network means, and its embeddings.

The SDE decides what a network is fed (``sde.model_label(t, continuous)``), following the original
score_sde / NCSNv2 code so that released checkpoints see exactly the labels they were trained on:

    kind "sigma"     continuous VE:   cond = sigma(t)
    kind "ve_index"  discrete VE:     cond = i = round((T - t)/T (N-1)), the ladder index with 0 = sigma_max
                                      (NCSN / NCSNv2 order: sigma_i = sigma_max (sigma_min/sigma_max)^(i/(N-1)))
    kind "label"     VP / sub-VP:     cond = 999 t (continuous) or (N-1) t (discrete DDPM)

Embeddings: Gaussian Fourier features gamma(u) = [sin 2 pi W u, cos 2 pi W u] (W ~ N(0, scale^2) fixed) and
the DDPM/Transformer sinusoidal embedding [sin(u w_k), cos(u w_k)], w_k = 10000^(-k/(d/2 - 1)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import dense

Tensor = torch.Tensor
KINDS = ("sigma", "ve_index", "label")


@dataclass(frozen=True)
class NoiseConditioning:
    """Meaning of ``cond`` (see the module docstring); ``log_sigma_min/max`` describe the VE ladder,
    ``label_scale`` the time labels (cond = label_scale t)."""
    kind: str
    N: int
    log_sigma_min: float = 0.
    log_sigma_max: float = 1.
    label_scale: float = 0.            # kind "label": labels per unit time (999 continuous, N-1 discrete)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def is_ve(self) -> bool:
        return self.kind in ("sigma", "ve_index")

    def sigma(self, cond: Tensor) -> Tensor:
        """Noise level of a VE ``cond``: cond itself, or sigma_max (sigma_min/sigma_max)^(i/(N-1))."""
        if self.kind == "sigma":
            return cond
        if self.kind == "ve_index":
            frac = cond / max(self.N - 1, 1)
            return torch.exp(self.log_sigma_max + frac * (self.log_sigma_min - self.log_sigma_max))
        raise ValueError("sigma(cond) is only defined for VE conditioning (kind 'sigma' or 've_index'), "
                         f"this network is conditioned on {self.kind!r}")

    def fourier_input(self, cond: Tensor) -> Tensor:
        """The scalar the toolkit's own networks (MLP, classifier) feed to Fourier features:
        log(sigma) for VE, t = cond / (N-1) for time labels."""
        if self.is_ve:
            return torch.log(self.sigma(cond))
        return cond / (self.label_scale if self.label_scale > 0 else max(self.N - 1, 1))

    def positional_input(self, cond: Tensor) -> Tensor:
        """The scalar the toolkit's own networks feed to the sinusoidal embedding: a ladder position in
        [0, N-1] (continuous sigma -> (N-1) log(sigma/sigma_min) / log(sigma_max/sigma_min))."""
        if self.kind == "sigma":
            span = self.log_sigma_max - self.log_sigma_min
            return (torch.log(cond) - self.log_sigma_min) * ((self.N - 1) / span)
        return cond


class GaussianFourierProjection(nn.Module):
    """gamma(u) = [sin(2 pi W u), cos(2 pi W u)], W ~ N(0, scale^2) fixed (a buffer): [B] -> [B, 2 dim]."""

    def __init__(self, dim: int, scale: float = 16.):
        super().__init__()
        self.register_buffer("W", torch.randn(dim) * scale)

    def forward(self, u: Tensor) -> Tensor:
        proj = u[:, None] * self.W[None, :].to(u.dtype) * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def sinusoidal_embedding(timesteps: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """DDPM/Transformer embedding: [sin(t w_k), cos(t w_k)], w_k = max_positions^(-k / (dim/2 - 1))."""
    half = dim // 2
    freq = math.log(max_positions) / max(half - 1, 1)
    freqs = torch.exp(-freq * torch.arange(half, device=timesteps.device, dtype=timesteps.dtype))
    args = timesteps[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class FourierEmbedding(nn.Module):
    """Gaussian Fourier features of ``spec.fourier_input(cond)`` (or of log(cond), the score_sde
    networks' rule, with ``raw_log``); output size 2 dim."""

    def __init__(self, spec: NoiseConditioning, dim: int, fourier_scale: float = 16., raw_log: bool = False):
        super().__init__()
        self.spec, self.raw_log = spec, raw_log
        self.proj = GaussianFourierProjection(dim, fourier_scale)
        self.out_dim = 2 * dim

    def forward(self, cond: Tensor) -> Tensor:
        return self.proj(torch.log(cond) if self.raw_log else self.spec.fourier_input(cond))


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of ``spec.positional_input(cond)`` (of cond itself with ``raw_log``, the
    score_sde networks' rule); output size dim."""

    def __init__(self, spec: NoiseConditioning, dim: int, fourier_scale: float = 16., raw_log: bool = False):
        super().__init__()
        self.spec, self.raw = spec, raw_log
        self.dim = self.out_dim = dim

    def forward(self, cond: Tensor) -> Tensor:
        return sinusoidal_embedding(cond if self.raw else self.spec.positional_input(cond), self.dim)


EMBEDDINGS: dict[str, type[nn.Module]] = {"fourier": FourierEmbedding, "positional": PositionalEmbedding}


class NoiseEmbedding(nn.Module):
    """cond [B] -> temb [B, out_dim]: features (EMBEDDINGS[embedding_type]) -> dense -> SiLU -> dense."""

    def __init__(self, spec: NoiseConditioning, embedding_type: str, dim: int, out_dim: int,
                 fourier_scale: float = 16., raw: bool = False):
        super().__init__()
        self.features = EMBEDDINGS[embedding_type](spec, dim, fourier_scale, raw)
        self.mlp = nn.Sequential(dense(self.features.out_dim, out_dim), nn.SiLU(), dense(out_dim, out_dim))

    def forward(self, cond: Tensor) -> Tensor:
        return self.mlp(self.features(cond))
