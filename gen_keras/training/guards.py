"""Health guards for adversarial training: warnings on the MLflow run, never a stop.

A non-finite loss already stops training (``HealthGuard`` in ``callbacks.py``). The two failure
modes here leave the numbers finite, so they are flagged instead: a tag
``gen_keras.warning.<guard>`` on the run (with what was measured) and a ``guard/*`` metric.

* :class:`DiscriminatorCollapseGuard` — D wins outright: the step's mean D(x) > 1 - eps AND
  mean D(G(z)) < eps for N consecutive steps. The generator's gradient then carries little
  signal (Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs", sec. 2).
* :class:`ModeCollapseGuard` — samples from different z become near-identical: the mean pairwise
  RMS distance of a FIXED sample batch (:func:`mean_pairwise_distance`) falls below a threshold
  (Salimans et al. 2016, sec. 3.2, describe the failure).

``sink`` is the run's ``TrackingSink``, or None on non-chief workers (then only the log says it).
"""
from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger("gen_keras.guards")

TAG_PREFIX = "gen_keras.warning."


def mean_pairwise_distance(images) -> float:
    """Mean over pairs i < j of ``||x_i - x_j||_2 / sqrt(D)`` (D = values per image).

    Dividing by ``sqrt(D)`` makes it the root-mean-square difference per value, so one threshold
    serves every image size: two images differing by ``d`` in every value are ``d`` apart.
    """
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    n, dims = x.shape
    if n < 2:
        raise ValueError(f"mean_pairwise_distance needs at least 2 images, got {n}")
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)  # rounding can dip below 0
    iu = np.triu_indices(n, k=1)
    return float(np.mean(np.sqrt(d2[iu])) / np.sqrt(dims))


def sample_diversity(images, labels=None) -> float:
    """:func:`mean_pairwise_distance`, within each label when labels are given (a conditional
    generator that ignores z is collapsed even though its classes differ), then averaged."""
    if labels is None:
        return mean_pairwise_distance(images)
    labels = np.asarray(labels)
    images = np.asarray(images)
    groups = [images[labels == c] for c in np.unique(labels)]
    return float(np.mean([mean_pairwise_distance(g) for g in groups if len(g) >= 2]))


def _warn(sink, guard: str, message: str, metrics: dict, step: int) -> None:
    log.warning("%s: %s", guard, message)
    if sink is not None:
        sink.set_tag(TAG_PREFIX + guard, message)
        sink.log_metrics(metrics, step=step)


class DiscriminatorCollapseGuard(keras.callbacks.Callback):
    """Flags ``collapse_steps`` consecutive steps with mean D(x) > 1 - eps and D(G(z)) < eps.

    Keras hands callbacks the EPOCH-TO-DATE means of ``d_real`` / ``d_fake``; the mean over the
    steps since the last call is recovered exactly from two consecutive running means
    (``(t m_t - s m_s) / (t - s)``: every step adds the same number of examples), so the guard
    sees each step (or each ``steps_per_execution`` group) without any extra work in the step.
    At each epoch end it logs ``guard/collapse_streak`` (the longest streak in the epoch).
    """

    def __init__(self, epsilon: float, steps: int, sink=None):
        super().__init__()
        self.epsilon = float(epsilon)
        self.steps = int(steps)
        self.sink = sink
        self.global_step = 0
        self.streak = 0
        self.flagged = False

    def on_epoch_begin(self, epoch, logs=None):
        self._seen = 0
        self._means = {"d_real": 0.0, "d_fake": 0.0}
        self.longest = 0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if "d_real" not in logs or "d_fake" not in logs:
            return
        seen = batch + 1
        new = seen - self._seen
        if new <= 0:
            return
        step_mean = {}
        for key in ("d_real", "d_fake"):
            running = float(np.asarray(logs[key]).ravel()[0])
            step_mean[key] = (seen * running - self._seen * self._means[key]) / new
            self._means[key] = running
        self._seen = seen
        self.global_step += new
        pinned = step_mean["d_real"] > 1.0 - self.epsilon and step_mean["d_fake"] < self.epsilon
        self.streak = self.streak + new if pinned else 0
        self.longest = max(self.longest, self.streak)
        if not pinned:
            self.flagged = False
        elif self.streak >= self.steps and not self.flagged:
            self.flagged = True
            _warn(self.sink, "discriminator_collapse",
                  f"D(x) > {1 - self.epsilon:g} and D(G(z)) < {self.epsilon:g} for {self.streak} "
                  f"consecutive steps (at step {self.global_step}: D(x)={step_mean['d_real']:.4f}, "
                  f"D(G(z))={step_mean['d_fake']:.4f}); the generator gets little gradient",
                  {"guard/collapse_streak": self.streak}, self.global_step)

    def on_epoch_end(self, epoch, logs=None):
        if self.sink is not None:
            self.sink.log_metrics({"guard/collapse_streak": self.longest}, step=epoch + 1)


class ModeCollapseGuard(keras.callbacks.Callback):
    """At each epoch end: the diversity of samples from a FIXED noise batch (and, for conditional
    models, fixed labels cycling through the classes, measured within each class), logged as
    ``guard/sample_diversity``; below ``threshold`` the run gets a warning tag."""

    def __init__(self, model_, threshold: float, n: int = 64, sink=None, seed: int = 4321):
        super().__init__()
        self.threshold = float(threshold)
        self.sink = sink
        classes = int(model_.config.num_classes)
        self.labels = (np.arange(n) % classes).astype(np.int32) if classes else None
        self.z = model_.sample_latent(n, seed)
        self.last = None

    def measure(self, model_) -> float:
        samples = np.asarray(model_.generate(self.z, self.labels))
        return sample_diversity(samples, self.labels)

    def on_epoch_end(self, epoch, logs=None):
        self.last = self.measure(self.model)
        if self.sink is not None:
            self.sink.log_metrics({"guard/sample_diversity": self.last}, step=epoch + 1)
        if self.last < self.threshold:
            _warn(self.sink, "mode_collapse",
                  f"samples from {len(self.z)} different z are near-identical after epoch "
                  f"{epoch + 1}: mean pairwise RMS distance {self.last:.4f} < {self.threshold:g}",
                  {"guard/mode_collapse": self.last}, epoch + 1)


def guard_callbacks(model_, sink=None) -> list:
    """The callbacks for the guards the model declares (``model.training_guards()``: name ->
    settings); the discriminator-collapse guard runs first, as it watches every step."""
    declared = model_.training_guards()
    unknown = set(declared) - {"discriminator_collapse", "mode_collapse"}
    if unknown:
        raise ValueError(f"{model_.kind}: unknown training guard(s) {sorted(unknown)}")
    guards = []
    if "discriminator_collapse" in declared:
        g = declared["discriminator_collapse"]
        guards.append(DiscriminatorCollapseGuard(g["epsilon"], g["steps"], sink))
    if "mode_collapse" in declared:
        g = declared["mode_collapse"]
        guards.append(ModeCollapseGuard(model_, g["threshold"], g["samples"], sink))
    return guards
