"""Figures of samples in the data's own form: a scatter next to the data (2-D), an image grid (images),
and interpolation paths (a grid with one row per pair, or paths drawn over the data)."""
from __future__ import annotations

import os

import torch

from scoredata import is_image, to_unit_images
from sde_lib.checks import check_tensor

from .png import enlarge_png, image_grid, scatter_2d

Tensor = torch.Tensor


def save_samples_png(config, samples: Tensor, path: str, data: Tensor | None = None, title: str = "") -> str:
    """2-D data: scatter of samples next to ``data``; images: a grid in [0, 1]; other shapes: a
    scatter of the first two coordinates."""
    if is_image(config):
        return image_grid(path, to_unit_images(samples[:256].float(), config))
    flat = samples.reshape(samples.shape[0], -1)
    ref = None if data is None else data.reshape(data.shape[0], -1)
    return scatter_2d(path, flat, ref, title=title)


def save_strip(path: str, frames: Tensor, config=None, data: Tensor | None = None, title: str = "",
               width: int = 720) -> str:
    """PNG of interpolation paths ``frames`` [B, n, *shape]: image data as a grid with one row per pair
    (``config`` maps model space to [0, 1] via scoredata.to_unit_images; without a config values
    are taken as [0, 1]; enlarged to about ``width`` pixels); 2-D data as the paths drawn over a scatter
    of ``data``."""
    check_tensor("frames", frames, min_dim=3)
    B, n = frames.shape[:2]
    flat = frames.reshape(B * n, *frames.shape[2:])
    if flat.dim() == 4:
        if config is not None:
            flat = to_unit_images(flat, config)
        return enlarge_png(image_grid(path, flat.clamp(0., 1.), nrow=n), width)
    if flat.dim() == 2 and flat.shape[1] == 2:
        return _path_plot(path, frames, data, title)
    raise ValueError(f"frames must hold images [B, n, C, H, W] or 2-D points [B, n, 2], got {tuple(frames.shape)}")


def _path_plot(path: str, frames: Tensor, data: Tensor | None, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    if data is not None:
        d = data.detach().cpu().reshape(data.shape[0], -1)[:4000].numpy()
        ax.scatter(d[:, 0], d[:, 1], s=2, alpha=0.3, color="C0", label="data")
    f = frames.detach().cpu().double().numpy()
    for b in range(f.shape[0]):
        ax.plot(f[b, :, 0], f[b, :, 1], "-o", ms=3, lw=1, color=f"C{1 + b % 8}")
    ax.set_aspect("equal")
    ax.set_title(title or "decoded spherical interpolation")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
