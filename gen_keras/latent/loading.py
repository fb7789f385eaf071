"""Where the latent tools get a model from: an export folder or ``models:/`` URI, or an MLflow
run id (its ``export/`` artifact), read through the one export reader
(:class:`gen_keras.exported.reader.ExportReader`), or a model in memory (:class:`InMemoryModel`).
Both look the same to the tools (:class:`~gen_keras.exported.reader.LatentModel`):

- ``generate(z, labels=None)`` → images ``[N, H, W, C]`` in ``value_range``;
- ``encode(x, labels=None)`` → latent codes ``[N, latent_dim]``: the posterior mean for a VAE
  (the ``mean`` output of the ``encode`` operation), ``z`` for an autoencoder;
- ``latent_dim``, ``image_shape``, ``value_range``, ``num_classes``, ``conditional``, ``has_encoder``.

The artifact path needs no gen_keras model class: a GAN generator exported by any version of
the pipeline works as long as its manifest names a ``generate`` operation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_keras.exported.reader import ExportReader, LatentModel, open_export


class InMemoryModel(LatentModel):
    """A gen_keras model object seen through the :class:`LatentModel` interface."""

    def __init__(self, model):
        from gen_keras.precision import float32_twin

        self.model = model = float32_twin(model)  # the float32 weights, as an export has them
        cfg = model.config
        self.kind = cfg.kind
        self.latent_dim = int(cfg.latent_dim)
        self.image_shape = tuple(int(d) for d in cfg.image_shape)
        self.value_range = tuple(float(v) for v in type(cfg).value_range)
        self.num_classes = int(cfg.num_classes)
        self.conditional = bool(type(cfg).conditional)
        self.has_encoder = hasattr(model, "encode")

    def generate(self, z, labels=None) -> np.ndarray:
        z = self.as_codes(z)
        return np.asarray(self.model.generate(z, self.check_labels(labels, len(z))))

    def encode(self, x, labels=None) -> np.ndarray:
        self.require_encoder("encoding")
        x = self.as_images(x)
        labels = self.check_labels(labels, len(x))
        out = self.model.encode(x, labels) if self.conditional else self.model.encode(x)
        return np.asarray(out[0] if isinstance(out, (tuple, list)) else out)


def as_latent_model(obj) -> LatentModel:
    """A :class:`LatentModel` from an export folder path, a LatentModel, or a gen_keras model."""
    if isinstance(obj, LatentModel):
        return obj
    if isinstance(obj, (str, Path)):
        return open_export(str(obj))
    if hasattr(obj, "config") and hasattr(obj, "generate"):
        return InMemoryModel(obj)
    raise TypeError(f"cannot use a {type(obj).__name__} as a latent model; pass an export "
                    "folder, an ExportReader, or a gen_keras model")


def log_to_run(run_id: str, path: str | Path, tracking_uri: str | None = None,
               artifact_path: str = "latent") -> None:
    """Attach a produced file (a PNG, a CSV) to the run it was made from."""
    from mlflow import MlflowClient

    from gen_keras.stores import tracking_uri as resolve_store

    MlflowClient(tracking_uri=resolve_store(tracking_uri)).log_artifact(
        run_id, str(path), artifact_path)


# ----------------------------------------------------------------------------------------------
# Data for the tools
# ----------------------------------------------------------------------------------------------
def load_images(dataset: str, split: str, image_shape, value_range, limit: int = 0,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images in value_range, int32 labels)`` of one split of a data set string
    (``mnist10k``, ``npz:<path>``, ...), prepared as the training pipeline prepares it
    (:func:`gen_keras.data.load_split`)."""
    from gen_keras.config import DataConfig
    from gen_keras.data import load_split

    return load_split(DataConfig(dataset=dataset), split, image_shape, value_range, limit, seed)


def open_model(export: str | Path | None = None, run_id: str | None = None,
               tracking_uri: str | None = None) -> ExportReader:
    """The model named by exactly one of an export folder (or ``models:/`` URI) or an MLflow
    run id, read through the one export reader."""
    if (export is None) == (run_id is None):
        raise ValueError("name the model by exactly one of an export folder or an MLflow run id")
    return open_export(str(export) if export is not None else f"runs:/{run_id}",
                       tracking_uri=tracking_uri)
