"""The RunInference model handler: one :class:`~gen_keras.exported.reader.ExportReader` per
worker (every sha256 of the manifest checked once, when the worker loads it), running one
operation on whole chunks (:mod:`gen_keras.batch.work`), one chunk per batch."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from gen_keras.batch.work import Chunk, read_chunk
from gen_keras.exported.latents import sample_prior

NAMESPACE = "gen_keras"


class ExportModelHandler(ModelHandler[Chunk, PredictionResult, Any]):
    """``operation`` of the export at ``source``: a folder every worker can read, or
    ``models:/NAME@ALIAS`` / ``runs:/ID`` (each worker downloads it from the registry at
    ``tracking_uri`` into its cache, verified; a verified copy already there is used as is).
    ``threads`` is the cores one onnxruntime call may use per worker (0: all this process may run on); ``seed`` the noise of ``score``."""

    def __init__(self, source: str, operation: str, threads: int = 0, seed: int = 0,
                 tracking_uri: str | None = None):
        super().__init__()
        self.source, self.operation, self.threads, self.seed = str(source), operation, threads, seed
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
        """``{"ids", "labels", "skipped", <the operation's outputs>}`` for one chunk."""
        op = reader.operation(self.operation)
        feeds, labels, skipped = {}, None, []
        if chunk.kind == "seeds":
            ids = list(chunk.ids)
            feeds["z"] = np.concatenate([sample_prior(1, reader.latent_dim, s) for s in ids])
        else:
            ids, images, labels, skipped = read_chunk(chunk, reader.image_shape)
            lo, hi = reader.value_range
            feeds["x"] = images.astype(np.float32) / 255.0 * (hi - lo) + lo
            if op.input("eps") is not None:  # the score's noise: seeded by the job and the chunk
                rng = np.random.default_rng([self.seed, chunk.index])
                feeds["eps"] = rng.standard_normal((len(ids), reader.latent_dim)).astype(np.float32)
        if op.input("label") is not None:
            if chunk.kind == "seeds" or labels is None or (np.asarray(labels) < 0).any():
                raise ValueError(f"operation {op.name!r} of this class-conditional model needs labels; "
                                 "this job's inputs have none")
            feeds["label"] = np.asarray(labels, np.int32)
        outputs = reader.run(op.name, **feeds) if ids else {name: np.zeros((0,)) for name in op.outputs}
        self.items.inc(len(ids))
        self.skipped.inc(len(skipped))
        self.chunks.inc()
        return {"ids": ids, "labels": None if labels is None else list(np.asarray(labels).tolist()),
                "skipped": skipped, **outputs}

    def get_metrics_namespace(self) -> str:
        return NAMESPACE
