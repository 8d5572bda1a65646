"""``--mode train_classifier``: the noise-conditional and the clean classifier of controllable generation
(``training.classifier.train_classifiers``) -> workdir/classifier/{noisy,clean}/ and metrics.json."""
from __future__ import annotations

import os

from training.classifier import train_classifiers

from .common import cli, out_dir, write_json


@cli
def mode_train_classifier(config, workdir: str, progress: bool = True) -> int:
    """Train both classifiers on the train split; print their test accuracies."""
    metrics = train_classifiers(config, workdir, progress=progress)
    path = write_json(os.path.join(out_dir(workdir, "classifier"), "metrics.json"), metrics)
    print(f"classifiers written to {os.path.join(workdir, 'classifier')} (metrics in {path})")
    print(f"  clean classifier test accuracy: {metrics['clean_test_accuracy']:.4f}")
    acc = ", ".join(f"{k}: {v:.3f}" for k, v in metrics["noisy_test_accuracy"].items())
    print(f"  noise-conditional classifier test accuracy on x_t: {acc}")
    return 0
