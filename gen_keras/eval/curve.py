"""Quality against training wall-clock time (issue 15, "time to quality"): recipes are compared
by what they reach per CPU minute, not per epoch.

:class:`QualityClock` is a Keras callback that, at each of the given marks of TRAINING time
(minutes since ``fit`` began, minus the time this callback itself spends measuring), measures
the model — e.g. FID on N samples — records a point and, after the last mark, stops training.
Everything else the run does between steps (checkpoints, preview grids, MLflow records) counts
as training time, as it does for a user. A run whose epochs end before the last mark gets one
final point at its actual time, marked ``ended_before_mark``.
"""
from __future__ import annotations

import io
import math
import time

import keras


class QualityClock(keras.callbacks.Callback):
    def __init__(self, marks_minutes, measure, on_point=None):
        super().__init__()
        marks = sorted(float(m) for m in marks_minutes)
        if not marks or marks[0] <= 0:
            raise ValueError(f"marks {list(marks_minutes)} must be positive minutes")
        self.marks, self.measure, self.on_point = marks, measure, on_point
        self.points: list[dict] = []
        self._start = self._measuring = 0.0
        self._epoch = self._batch = 0

    def training_minutes(self) -> float:
        return (time.perf_counter() - self._start - self._measuring) / 60.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._batch = batch + 1  # the step within the epoch (the last of a steps_per_execution chunk)
        if len(self.points) < len(self.marks) and self.training_minutes() >= self.marks[len(self.points)]:
            self._record(self.marks[len(self.points)])
            if len(self.points) == len(self.marks):
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if len(self.points) < len(self.marks):  # the epochs ran out first
            self._record(self.marks[len(self.points)], ended_before_mark=True)

    def _record(self, mark: float, **extra) -> None:
        minutes = self.training_minutes()
        started = time.perf_counter()
        point = {"mark_minutes": mark, "train_minutes": round(minutes, 3), "epoch": self._epoch + 1,
                 "epoch_step": self._batch, **extra, **self.measure(self.model)}
        self._measuring += time.perf_counter() - started
        point["measure_seconds"] = round(time.perf_counter() - started, 1)
        self.points.append(point)
        if self.on_point is not None:
            self.on_point(point)


def curve_png(curves: dict[str, list[dict]], path, key: str, floor: float | None = None,
              size=(720, 420)) -> None:
    """A line chart of ``key`` against training minutes (log2 axis), one line per recipe, the
    real-data floor dashed; drawn with Pillow (matplotlib is not a dependency), written atomically."""
    from PIL import Image, ImageDraw

    from gen_keras.files import atomic_write_bytes

    w, h = size
    left, right, top, bottom = 60, 170, 20, 40
    pts = [(p["train_minutes"], p[key]) for c in curves.values() for p in c if p.get(key) is not None]
    if not pts:
        raise ValueError(f"no point has {key!r}")
    marks = sorted({p["mark_minutes"] for c in curves.values() for p in c})
    xs = [math.log2(max(x, 1e-3)) for x in [x for x, _ in pts] + marks]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    ymax = max([y for _, y in pts] + ([floor] if floor else [])) * 1.05
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)

    def at(x, y):
        return (left + (math.log2(max(x, 1e-3)) - x0) / (x1 - x0) * (w - left - right),
                h - bottom - y / ymax * (h - top - bottom))

    d.line([(left, top), (left, h - bottom), (w - right, h - bottom)], fill="black")
    for k in range(5):
        y = ymax * k / 4
        d.text((5, at(1, y)[1] - 6), f"{y:.3g}", fill="black")
    for x in marks:
        d.text((at(x, 0)[0] - 6, h - bottom + 5), f"{x:g}", fill="black")
    d.text((w - right - 90, h - 18), "training minutes (log2)", fill="black")
    d.text((left + 5, 2), key, fill="black")
    if floor:
        y = at(1, floor)[1]
        for xs_ in range(left, w - right, 12):
            d.line([(xs_, y), (xs_ + 6, y)], fill="grey")
        d.text((w - right + 5, y - 6), "real-data floor", fill="grey")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, (name, c) in enumerate(curves.items()):
        line = [at(p["train_minutes"], p[key]) for p in c if p.get(key) is not None]
        colour = colours[i % len(colours)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        for x, y in line:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.text((w - right + 5, top + 16 * i), name, fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
