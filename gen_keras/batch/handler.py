"""The RunInference model handler: one :class:`~gen_keras.exported.reader.ExportReader` per
worker (every sha256 of the manifest checked once, when the worker loads it), running the
export's operation for one task on whole chunks (:mod:`gen_keras.batch.work`), one chunk per
batch. A chunk becomes request values (seeds, or images and labels, and the job's noise seed with
the chunk's position in the job) and the export's adapter feeds them by role, so an item gets the
same code and the same noise as through the server or the pyfunc model."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from gen_keras.batch.work import Chunk, read_chunk
from gen_keras.exported.adapter import Values

NAMESPACE = "gen_keras"


class ExportModelHandler(ModelHandler[Chunk, PredictionResult, Any]):
    """The operation for ``task`` of the export at ``source``: a folder every worker can read, or
    ``models:/NAME@ALIAS`` / ``runs:/ID`` (each worker downloads it from the registry at
    ``tracking_uri`` into its cache, verified; a verified copy already there is used as is).
    ``threads`` is the cores one onnxruntime call may use per worker (0: all this process may run
    on); ``seed`` the noise seed (a VAE score's eps)."""

    def __init__(self, source: str, task: str, threads: int = 0, seed: int = 0,
                 tracking_uri: str | None = None):
        super().__init__()
        self.source, self.task, self.threads, self.seed = str(source), task, threads, seed
        self.tracking_uri = tracking_uri
        self.items = Metrics.counter(NAMESPACE, "items")
        self.skipped = Metrics.counter(NAMESPACE, "skipped_unreadable")
        self.chunks = Metrics.counter(NAMESPACE, "chunks")

    def load_model(self):
        from gen_keras.exported.reader import ExportReader
        from gen_keras.exported.sources import resolve

        folder, _ = resolve(self.source, tracking_uri=self.tracking_uri)
        return ExportReader(folder, threads=self.threads)  # verifies every sha256, once per worker

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}  # a chunk is one batch: fixed composition

    def run_inference(self, batch: Sequence[Chunk], model, inference_args=None) -> Iterable[PredictionResult]:
        for chunk in batch:
            yield PredictionResult(chunk, self.infer(chunk, model))

    def infer(self, chunk: Chunk, reader) -> dict:
        """``{"ids", "labels", "skipped", <the operation's outputs by role>}`` for one chunk; an
        encoder's ``code`` is its posterior mean where it has one."""
        op = reader.adapter.for_task(self.task)
        values = Values(noise_seed=self.seed, first_index=chunk.start)
        labels, skipped = None, []
        if chunk.kind == "seeds":
            ids = list(chunk.ids)
            values.seeds = ids
        else:
            ids, images, labels, skipped = read_chunk(chunk, reader.image_shape)
            lo, hi = reader.value_range
            values.images = images.astype(np.float32) / 255.0 * (hi - lo) + lo
        if op.input_for("label") is not None:
            if chunk.kind == "seeds" or labels is None or (np.asarray(labels) < 0).any():
                raise ValueError(f"operation {op.name!r} of this class-conditional model needs labels; "
                                 "this job's inputs have none")
            values.labels = np.asarray(labels, np.int32)
        if ids:
            outputs = reader.adapter.run(op, values).by_role
        else:
            outputs = {role: np.zeros((0,)) for role in op.output_roles}
        if "code_mean" in outputs:
            outputs["code"] = outputs["code_mean"]
        self.items.inc(len(ids))
        self.skipped.inc(len(skipped))
        self.chunks.inc()
        return {"ids": ids, "labels": None if labels is None else list(np.asarray(labels).tolist()),
                "skipped": skipped, **outputs}

    def get_metrics_namespace(self) -> str:
        return NAMESPACE
