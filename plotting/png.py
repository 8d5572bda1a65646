"""Small PNG writers: 2-D scatter next to data, image grids (and their nearest-neighbour enlargement),
loss curves (matplotlib, Agg backend). Every writer creates the parent folder and returns the path."""
from __future__ import annotations

import math
import os

import numpy as np
import torch

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _makedirs_for(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)


def scatter_2d(path: str, samples, data=None, title: str = "", max_points: int = 4000) -> str:
    """Scatter plot of 2-D ``samples`` [n, 2] next to ``data`` [m, 2] (same axes limits)."""
    s = _np(samples).reshape(len(samples), -1)[:max_points, :2]
    panels = [("samples", s)]
    if data is not None:
        panels.insert(0, ("data", _np(data).reshape(len(data), -1)[:max_points, :2]))
    both = np.concatenate([p for _, p in panels])
    finite = both[np.isfinite(both).all(1)]
    lo, hi = (np.percentile(finite, 0.5, axis=0), np.percentile(finite, 99.5, axis=0)) if len(finite) \
        else (np.array([-1., -1.]), np.array([1., 1.]))
    pad = 0.1 * (hi - lo) + 1e-3
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (name, p) in zip(axes[0], panels):
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.4, color="C0" if name == "data" else "C1")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(f"{name} (n={len(p)})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _makedirs_for(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def image_grid(path: str, images, nrow: int | None = None, pad: int = 1) -> str:
    """Save ``images`` [B, C, H, W] with values in [0, 1] (C = 1 or 3) as one PNG grid."""
    from PIL import Image

    x = _np(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {x.shape}")
    B, C, H, W = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(B))))
    ncol = int(math.ceil(B / nrow))
    grid = np.ones((C, ncol * (H + pad) + pad, nrow * (W + pad) + pad))
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[:, pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = x[i]
    grid = (np.clip(np.nan_to_num(grid), 0., 1.) * 255. + 0.5).astype(np.uint8)
    img = grid[0] if C == 1 else np.transpose(grid[:3], (1, 2, 0))
    scale = max(1, 256 // max(grid.shape[1:]))  # upscale tiny (8x8) grids so they are visible
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    _makedirs_for(path)
    pil.save(path)
    return path


def loss_curve(path: str, steps, losses, title: str = "training loss") -> str:
    """Loss against step (log scale when all losses are positive) with a running mean."""
    steps, losses = _np(steps), _np(losses)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, lw=0.8, alpha=0.6, label="loss")
    if len(losses) >= 10:
        k = max(2, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"running mean ({k})")
    if len(losses) and np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    _makedirs_for(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def enlarge_png(path: str, width: int = 720) -> str:
    """Scale the PNG at ``path`` up by an integer factor (nearest neighbour) to about ``width`` pixels."""
    from PIL import Image

    with Image.open(path) as img:
        scale = max(1, width // img.width)
        big = img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img.copy()
    big.save(path)
    return path
