"""A data set named by its string alone (``mnist10k``, ``dsprites:20000``, ``tfds:...``), every
other data setting at its default: for consumers that hold no run configuration, such as batch
jobs, which read a data set's test split by name and must not import the configuration layer."""
from __future__ import annotations

import numpy as np


def named_split(dataset: str, split: str, image_shape, field: str = "data.dataset"):
    """``(images uint8 [N, H, W, C], labels int64 [N])`` of one split of ``dataset``, prepared
    at ``image_shape`` as the training pipeline prepares it (its default split seed, so the same
    images a training run with default settings holds out). A bad name is a ConfigError naming
    ``field``."""
    from gen_keras.config import DataConfig
    from gen_keras.data import load_split
    from gen_keras.data.sources import check_dataset_name

    check_dataset_name(dataset, field)
    images, labels = load_split(DataConfig(dataset=dataset), split, tuple(image_shape), (0.0, 255.0))
    return np.round(images).astype(np.uint8), labels.astype(np.int64)
