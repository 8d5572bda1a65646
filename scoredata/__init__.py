"""Offline data sets in model space: 2-D toy sets, scikit-learn's 8x8 digits, and user-provided
``.npz`` files or image folders (MNIST, CIFAR-10, ...). Nothing is downloaded.

    x = get_dataset(config, "train")     # float32 [n, *config.data.shape] in model space
    spec = data_spec(config)             # shape, image or not, levels, range -- without loading data

Modules: ``toy`` (2-D sets), ``digits``, ``files`` (.npz / image folders), ``splits`` (fixed-seed splits,
levels -> model space), ``registry`` (``DATASETS``, ``get_dataset``, ``data_spec``), ``labels``.
To add a data set: write ``load(config, split) -> tensor`` and register a ``DatasetSpec`` in
``registry.DATASETS``.
"""
from .labels import get_labeled_dataset, get_labels
from .registry import (DATASETS, DatasetSpec, DataSpec, data_range, data_spec, get_dataset, is_image, n_bins,
                       to_unit_images)
from .toy import TOY_SETS, toy

__all__ = ["TOY_SETS", "DATASETS", "DatasetSpec", "DataSpec", "toy", "get_dataset", "data_spec", "is_image",
           "n_bins", "data_range", "to_unit_images", "get_labels", "get_labeled_dataset"]
