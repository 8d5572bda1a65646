"""Frechet Inception distance through torch-fidelity, only when it is importable and its Inception
weights are already on disk (nothing is downloaded); otherwise the result says why it was skipped."""
from __future__ import annotations

import logging
import os

import torch

from scoredata import to_unit_images

log = logging.getLogger(__name__)
Tensor = torch.Tensor


def _inception_weights_on_disk() -> str | None:
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    if os.path.isdir(hub):
        for name in os.listdir(hub):
            if name.startswith("weights-inception") and name.endswith(".pth"):
                return os.path.join(hub, name)
    return None


def fid_stats(config, samples: Tensor, reference: Tensor) -> dict:
    """{"fid": FID(samples, reference)} for model-space images, or {"fid": None, "fid_skipped": why}."""
    try:
        import torch_fidelity
    except ImportError:
        log.info("FID skipped: torch-fidelity is not installed")
        return {"fid": None, "fid_skipped": "torch-fidelity is not installed"}
    if _inception_weights_on_disk() is None:
        msg = f"Inception weights not found under {os.path.join(torch.hub.get_dir(), 'checkpoints')}"
        log.info("FID skipped: %s", msg)
        return {"fid": None, "fid_skipped": msg}

    class _Images(torch.utils.data.Dataset):
        def __init__(self, x):
            u = to_unit_images(x.float(), config)
            if u.shape[1] == 1:
                u = u.repeat(1, 3, 1, 1)
            self.x = (u * 255).round().clamp(0, 255).to(torch.uint8)

        def __len__(self):
            return self.x.shape[0]

        def __getitem__(self, i):
            return self.x[i]

    m = torch_fidelity.calculate_metrics(input1=_Images(samples), input2=_Images(reference), fid=True,
                                         cuda=torch.cuda.is_available(), verbose=False)
    return {"fid": float(m["frechet_inception_distance"])}
