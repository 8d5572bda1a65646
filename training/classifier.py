"""Training the classifiers used by controllable generation, on labelled data (the digits).

* noise-conditional p_t(y | x_t): cross-entropy on perturbed data x_t = m(t) x + s(t) z, t ~ U(eps, T)
  (ladder times when not ``continuous``), conditioned on cond = sde.model_label(t, continuous);
* clean p(y | x): cross-entropy on the data itself (used to *judge* inpainted / conditional samples).

``train_classifiers(config, workdir)`` trains both on the train split (labels: ``scoredata.get_labeled_dataset``),
checkpoints them under ``<workdir>/classifier/{noisy,clean}/`` (training.checkpoint) and returns their
test accuracies. The networks themselves are ``models.classifier``.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from scoredata import get_labeled_dataset, get_labels
from sde_lib.base import SDE
from sde_lib.checks import batch_view, check_generator, check_positive, check_tensor, randn_like

from .checkpoint import CheckpointManager, capture_state

log = logging.getLogger(__name__)
Tensor = torch.Tensor
KINDS = ("noisy", "clean")
#: classifier options that fix the architecture (stored in the checkpoint)
ARCH_KEYS = ("n_classes", "nf", "n_layers", "embedding_type", "fourier_scale", "dropout")

__all__ = ["get_labels", "get_labeled_dataset", "train_classifier", "accuracy", "noisy_accuracy",
           "classifier_dir", "train_classifiers", "load_classifier", "KINDS"]


# ---------------------------------------------------------------------------- training
def _perturb(sde: SDE, x: Tensor, continuous: bool, eps: float, generator) -> tuple[Tensor, Tensor]:
    from training.losses import sample_times

    t = sample_times(sde, x.shape[0], continuous, eps, generator, x.device, x.dtype)
    m, s = sde.marginal_coeffs(t) if continuous else sde.discrete_marginal_coeffs(t)
    return batch_view(m, x) * x + batch_view(s, x) * randn_like(x, generator), sde.model_label(t, continuous)


def train_classifier(model: torch.nn.Module, x: Tensor, y: Tensor, sde: SDE | None = None,
                     n_iters: int = 3000, batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 1e-4,
                     eps: float = 1e-5, continuous: bool = True, generator: torch.Generator | None = None,
                     progress: bool = False) -> list[float]:
    """Minimise the cross-entropy of ``model`` on (x, y) with AdamW (cosine-decayed lr).

    With ``sde``: on x_t = m(t) x + s(t) z, t ~ U(eps, T) (ladder times if not ``continuous``), labels
    cond = sde.model_label(t, continuous) -- a noise-conditional classifier of p_t(y | x_t). Without:
    on x (a clean classifier; the model is called as model(x, None)). Minibatches and noise come from
    ``generator``. Returns the per-step losses.
    """
    check_tensor("x", x, min_dim=2)
    if not isinstance(y, Tensor) or y.dtype != torch.long or y.shape != (x.shape[0],):
        raise ValueError(f"y must be an int64 tensor of shape [{x.shape[0]}], got "
                         f"{(tuple(y.shape), y.dtype) if isinstance(y, Tensor) else type(y).__name__}")
    check_positive("n_iters", n_iters, integer=True, allow_zero=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("lr", lr)
    check_generator("generator", generator)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(n_iters, 1))
    gdev = generator.device if generator is not None else torch.device("cpu")
    losses = []
    model.train()
    for _ in tqdm(range(n_iters), desc="classifier", disable=not progress, leave=False):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator, device=gdev).to(x.device)
        xb, yb = x[idx], y[idx]
        if sde is not None:
            xb, cond = _perturb(sde, xb, continuous, eps, generator)
        else:
            cond = None
        loss = F.cross_entropy(model(xb, cond), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: Tensor, y: Tensor, cond: Tensor | None = None,
             batch_size: int = 1024) -> float:
    """Fraction of ``x`` classified as ``y`` by ``model(x, cond)`` (eval mode)."""
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        c = None if cond is None else cond[i:i + batch_size]
        correct += int((model(x[i:i + batch_size], c).argmax(-1) == y[i:i + batch_size]).sum())
    return correct / x.shape[0]


@torch.no_grad()
def noisy_accuracy(model: torch.nn.Module, sde: SDE, x: Tensor, y: Tensor, t: float,
                   continuous: bool = True, generator: torch.Generator | None = None) -> float:
    """Accuracy of a noise-conditional classifier on x_t = m(t) x + s(t) z at the fixed time ``t``."""
    tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
    m, s = sde.marginal_coeffs(tt) if continuous else sde.discrete_marginal_coeffs(tt)
    xt = batch_view(m, x) * x + batch_view(s, x) * randn_like(x, generator)
    return accuracy(model, xt, y, sde.model_label(tt, continuous))


# ---------------------------------------------------------------------------- workflow
def classifier_dir(workdir: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    return os.path.join(workdir, "classifier", kind)


def train_classifiers(config, workdir: str, progress: bool = True, kinds=KINDS) -> dict:
    """Train the noise-conditional (``noisy``) and ``clean`` classifiers of ``config`` (options in
    ``config.classifier``, see models.classifier.CLASSIFIER_DEFAULTS) on the train split, checkpoint
    them under ``<workdir>/classifier/<kind>/`` and return test accuracies (noisy: at several t)."""
    from models.classifier import build_classifier, classifier_options
    from sde_lib import get_sde

    opts = classifier_options(config)
    sde = get_sde(config)
    continuous = bool(config.training.continuous)
    x_train, y_train = get_labeled_dataset(config, "train")
    x_test, y_test = get_labeled_dataset(config, "test")
    metrics: dict = {}
    for kind in kinds:
        torch.manual_seed(int(config.seed) + (11 if kind == "noisy" else 12))
        model = build_classifier(config, conditional=(kind == "noisy"))
        g = torch.Generator().manual_seed(int(config.seed) + (21 if kind == "noisy" else 22))
        n_iters = int(opts.n_iters if kind == "noisy" else opts.clean_n_iters)
        train_classifier(model, x_train, y_train, sde if kind == "noisy" else None, n_iters=n_iters,
                         batch_size=int(opts.batch_size), lr=float(opts.lr), weight_decay=float(opts.weight_decay),
                         eps=float(opts.eps), continuous=continuous, generator=g, progress=progress)
        mgr = CheckpointManager(classifier_dir(workdir, kind), keep=1)
        for _, _, old in mgr.list():           # a fresh training replaces any earlier classifier
            os.remove(old)
        arch = {k: opts[k] for k in ARCH_KEYS}
        mgr.save(capture_state(n_iters, model, extra={"kind": kind, "arch": arch}), "ckpt")
        if kind == "clean":
            metrics["clean_test_accuracy"] = accuracy(model, x_test, y_test)
        else:
            ge = torch.Generator().manual_seed(int(config.seed) + 31)
            metrics["noisy_test_accuracy"] = {
                f"t={t:g}": noisy_accuracy(model, sde, x_test, y_test, t, continuous, ge)
                for t in (0.01, 0.25, 0.5, 0.75, 1.0)}
    return metrics


def load_classifier(config, workdir: str, kind: str = "noisy") -> torch.nn.Module:
    """The checkpointed classifier ``kind`` ("noisy" | "clean") of ``train_classifiers``, in eval mode."""
    from models.classifier import build_classifier, classifier_options

    mgr = CheckpointManager(classifier_dir(workdir, kind), keep=1)
    loaded = mgr.load_latest()
    if loaded is None:
        raise ValueError(f"workdir {workdir!r} has no {kind} classifier checkpoint in "
                         f"{classifier_dir(workdir, kind)}; run --mode train_classifier first")
    arch = loaded[0].get("extra", {}).get("arch")
    if arch:                                   # the architecture it was trained with
        config = copy.deepcopy(config)
        with config.unlocked() if hasattr(config, "unlocked") else contextlib.nullcontext():
            config.classifier = classifier_options(config)
            config.classifier.update(arch)
    model = build_classifier(config, conditional=(kind == "noisy"))
    model.load_state_dict(loaded[0]["model"])
    return model.eval()
