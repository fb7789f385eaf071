"""Side effects of training, each in its own callback (never inside a train_step)."""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from gen_keras.errors import NonFiniteLossError
from gen_keras.images import image_grid, save_png
from gen_keras.tracking import metric_name


class HealthGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite reported quantity, naming it and the step.

    ``TerminateOnNaN`` looks only at ``logs["loss"]``; GANs report ``d_loss`` and ``g_loss``, so
    every reported value is checked. The exception propagates out of ``fit`` before the epoch's
    checkpoint is written, so the last good checkpoint is what survives.
    """

    def __init__(self):
        super().__init__()
        self.step = 0
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        for key, value in (logs or {}).items():
            v = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(v)):
                raise NonFiniteLossError(
                    f"non-finite {key} ({float(v.ravel()[0])}) at epoch {self.epoch + 1}, "
                    f"step {self.step}: training stopped; the last good checkpoint is kept"
                )


class MLflowMetrics(keras.callbacks.Callback):
    """Per-epoch train and test metrics to the run (step = 1-based epoch number)."""

    def __init__(self, sink):
        super().__init__()
        self.sink = sink

    def on_epoch_end(self, epoch, logs=None):
        values = {metric_name(k): float(np.asarray(v).ravel()[0]) for k, v in (logs or {}).items()}
        self.sink.log_metrics(values, step=epoch + 1)


def log_preview(sink, paths: list[Path], epoch: int) -> None:
    """Each picture as a file of the run (``samples/epoch_NNN.png`` ...) and as step ``epoch`` of
    the image series ``epoch/samples`` ... that the MLflow UI steps through (the ``epoch/``
    chart section, beside the per-epoch curves). Epoch 0 is the model before training, so the
    UI's step slider, which starts at 0, opens on a picture."""
    if sink is None:
        return
    for p in paths:
        sink.log_artifact(p, p.parent.name)
        sink.log_image(p, f"epoch/{p.parent.name}", epoch)


# MLflow 3.17 shows an image series in a card of fixed height: the picture (its thumbnail, 256 px
# on the long side) centred in a square box as wide as the card's header, and the box cut off
# below. Measured in Chromium: a grid at most ~0.7 times as tall as wide stays whole there (with
# no params above it, see gen_keras.tracking.RUN_RECORD); these grids are 0.3 - 0.6.
class PreviewImages(keras.callbacks.Callback):
    """Each epoch: a grid of samples from a FIXED latent batch, 4 rows of 12 (for conditional
    models one column per class) and, for models that reconstruct, 16 test images beside their
    reconstructions (4 rows of 4 pairs); a fresh run also pictures the untrained model as epoch 0."""

    def __init__(self, model_, test_images, out_dir: Path, sink=None, n: int = 48, seed: int = 1234,
                 test_labels=None):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.sink = sink
        self.value_range = model_.value_range
        num_classes = model_.config.num_classes
        if num_classes:
            per_class = max(1, n // num_classes)  # row r: the r-th sample of every class
            self.labels = np.tile(np.arange(num_classes, dtype=np.int32), per_class)
            self.ncols = num_classes
        else:
            self.labels, self.ncols = None, max(1, math.ceil(math.sqrt(3 * n)))  # 3 times wider than tall
        self.z = model_.sample_latent(len(self.labels) if self.labels is not None else n, seed)
        self.test_images = np.asarray(test_images[:16])
        # A conditional model reconstructs an image given its label.
        self.test_labels = (np.asarray(test_labels[:16], np.int32)
                            if num_classes and test_labels is not None else None)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 0:  # a fresh run (a resumed one begins at its next epoch)
            self.write(0)

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch + 1)

    def write(self, epoch: int) -> list[Path]:
        m = self.model
        paths = []
        samples = np.asarray(m.generate(self.z, self.labels))
        paths.append(save_png(image_grid(samples, self.ncols, self.value_range),
                              self.out_dir / "samples" / f"epoch_{epoch:03d}.png"))
        if hasattr(m, "reconstruct"):
            rec = np.asarray(m.reconstruct(self.test_images) if self.test_labels is None
                             else m.reconstruct(self.test_images, self.test_labels))
            pairs = np.stack([self.test_images, rec], 1).reshape(-1, *self.test_images.shape[1:])
            paths.append(save_png(image_grid(pairs, 8, self.value_range),
                                  self.out_dir / "reconstructions" / f"epoch_{epoch:03d}.png"))
        log_preview(self.sink, paths, epoch)
        return paths


class TranslationPreview(keras.callbacks.Callback):
    """Each epoch: a grid of a FIXED batch of test examples, one column each, in the rows the
    model declares (``model.preview_columns``: input / output / target for paired models; a /
    G(a) / F(G(a)) / b / F(b) / G(F(b)) for CycleGAN), saved as ``translations/epoch_NNN.png``;
    a fresh run also pictures the untrained model as epoch 0."""

    def __init__(self, model_, inputs, targets, out_dir: Path, sink=None, n: int = 10):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.sink = sink
        self.value_range = model_.value_range
        self.inputs, self.targets = np.asarray(inputs[:n]), np.asarray(targets[:n])

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 0:
            self.write(0)

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch + 1)

    def write(self, epoch: int) -> list[Path]:
        columns = [np.asarray(c, np.float32) for c in self.model.preview_columns(self.inputs, self.targets)]
        channels = max(c.shape[-1] for c in columns)  # grey columns beside colour ones become RGB
        columns = [np.repeat(c, channels, axis=-1) if c.shape[-1] != channels else c for c in columns]
        rows = np.concatenate(columns, 0)  # one row per kind of picture, one column per example
        path = save_png(image_grid(rows, len(self.inputs), self.value_range),
                        self.out_dir / "translations" / f"epoch_{epoch:03d}.png")
        log_preview(self.sink, [path], epoch)
        return [path]
