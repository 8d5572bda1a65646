"""Frechet Inception distance through torch-fidelity (an optional dependency: ``pip install torch-fidelity``).

``config.eval.fid`` (default False) turns it on for ``--mode eval``: the samples are compared with the
*training* split, as CIFAR-10 FIDs are reported (50000 samples against the 50000 training images).

* ``check_fid_config(config)``: whether FID is requested; ValueError naming config.eval.fid, before any
  work, when it cannot be computed (not image data, sampling off, torch-fidelity not installed).
* ``fid_stats(config, samples, reference)``: {"fid", "fid_n_samples", "fid_n_reference"}. torch-fidelity
  fetches its Inception weights (``INCEPTION_URL``, 92 MB) into ``torch.hub.get_dir()/checkpoints`` on
  first use where the machine allows; when that (or anything in torch-fidelity) fails the result is
  {"fid": None, "fid_skipped": <what failed and where to put the weights file by hand>}, so the
  other metrics of an evaluation are not lost.
"""
from __future__ import annotations

import importlib.util
import logging
import os

import torch

from scoredata import is_image, to_unit_images

log = logging.getLogger(__name__)
Tensor = torch.Tensor

INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
NOT_INSTALLED = ("torch-fidelity is not installed (pip install torch-fidelity; it downloads its Inception "
                 "weights, 92 MB, on first use)")


def fidelity_available() -> bool:
    """Whether ``torch_fidelity`` can be imported (a ``None`` entry in sys.modules counts as missing)."""
    import sys
    if "torch_fidelity" in sys.modules:
        return sys.modules["torch_fidelity"] is not None
    return importlib.util.find_spec("torch_fidelity") is not None


def check_fid_config(config, available: bool | None = None) -> bool:
    """True when ``config.eval.fid`` asks for FID and it can be computed; False when it is off.
    ValueError naming config.eval.fid when it is on but the data are not images, sampling is off
    (config.eval.enable_sampling) or torch-fidelity is missing (``available``: default, try the import)."""
    if not bool(config.eval.get("fid", False)):
        return False
    if not is_image(config):
        raise ValueError(f"config.eval.fid=True needs image data, got dataset {config.data.dataset!r}; set "
                         f"config.eval.fid=False")
    if not bool(config.eval.enable_sampling):
        raise ValueError("config.eval.fid=True needs config.eval.enable_sampling=True (FID compares samples "
                         "with the training split)")
    if not (fidelity_available() if available is None else available):
        raise ValueError(f"config.eval.fid=True needs torch-fidelity, which is not installed: pip install "
                         f"torch-fidelity (it downloads its Inception weights, 92 MB, on first use; offline, put "
                         f"{os.path.basename(INCEPTION_URL)} into {_weights_dir()}), or set config.eval.fid=False")
    return True


def _weights_dir() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints")


class _Images(torch.utils.data.Dataset):
    """Model-space images as the uint8 RGB [3, H, W] tensors torch-fidelity reads (gray repeated)."""

    def __init__(self, x: Tensor, config):
        u = to_unit_images(x.float().cpu(), config)
        if u.shape[1] == 1:
            u = u.repeat(1, 3, 1, 1)
        self.x = (u * 255).round().clamp(0, 255).to(torch.uint8)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.x[i]


def fid_stats(config, samples: Tensor, reference: Tensor) -> dict:
    """FID between model-space image ``samples`` and ``reference`` (see the module docstring)."""
    try:
        import torch_fidelity
    except ImportError:
        log.warning("FID not computed: %s", NOT_INSTALLED)
        return {"fid": None, "fid_skipped": NOT_INSTALLED}
    try:
        m = torch_fidelity.calculate_metrics(input1=_Images(samples, config), input2=_Images(reference, config),
                                             fid=True, cuda=torch.cuda.is_available(), verbose=False)
    except Exception as e:   # no network for the weights, a broken cache, ...: keep the other metrics
        why = (f"torch-fidelity failed ({type(e).__name__}: {e}); if it could not fetch its Inception weights "
               f"(no network access), download {INCEPTION_URL} into {_weights_dir()}")
        log.warning("FID not computed: %s", why)
        return {"fid": None, "fid_skipped": why}
    return {"fid": float(m["frechet_inception_distance"]), "fid_n_samples": int(samples.shape[0]),
            "fid_n_reference": int(reference.shape[0])}
