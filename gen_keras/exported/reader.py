"""The one export reader: open a folder, verify it once, list and run its operations.

    reader = ExportReader("outputs/exports/vae-20261202")      # verifies every sha256
    reader.operations                                           # ['encode', 'generate', ...]
    images = reader.generate(reader.sample_latent(16, seed=7))  # the seeded prior draw
    out = reader.adapter.run("encode", Values(images=images))   # {'mean': ..., 'log_var': ...}

Consumers feed operations through :attr:`ExportReader.adapter`
(:class:`gen_keras.exported.adapter.Adapter`): request values by the roles the manifest declares,
never tensor names.

Operations run with onnxruntime (``runtime="onnx"``, the default; no TensorFlow import) or with
the SavedModel's signatures (``runtime="tf"``). :class:`LatentModel` is the interface the latent
tools, anomaly scoring and evaluation see; an in-memory Keras model implements it too
(:class:`gen_keras.latent.loading.InMemoryModel`), so a tool never cares where a model lives.
``open_export`` also takes a ``models:/NAME@ALIAS`` URI or an MLflow run id
(:mod:`gen_keras.exported.sources`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_keras.errors import ConfigError
from gen_keras.exported.adapter import Adapter, Outputs, Values, check_labels
from gen_keras.exported.latents import sample_prior
from gen_keras.exported.manifest import ExportSpec, OperationSpec, verify_export
from gen_keras.exported.runtimes import make_runtime


class LatentModel:
    """A model as the tools see it: ``generate`` / ``encode`` / ``reconstruct`` on numpy
    arrays, the input checks every consumer shares, and the attributes ``kind``, ``latent_dim``,
    ``image_shape``, ``value_range``, ``num_classes``, ``conditional`` and ``has_encoder``."""

    def generate(self, z, labels=None) -> np.ndarray:
        raise NotImplementedError

    def encode(self, x, labels=None) -> np.ndarray:
        raise NotImplementedError

    def reconstruct(self, x, labels=None) -> np.ndarray:
        raise NotImplementedError

    def sample_latent(self, n: int, seed: int = 0) -> np.ndarray:
        """Codes from the N(0, I) prior, drawn the one documented way."""
        return sample_prior(n, self.latent_dim, seed)

    def check_labels(self, labels, n: int) -> np.ndarray | None:
        """int32 labels ``[n]`` for a conditional model (a single int is repeated), None for
        an unconditional one (labels are ignored); a clear error when missing or unknown."""
        return check_labels(labels, n, self.num_classes, self.kind) if self.conditional else None

    def require_encoder(self, tool: str) -> None:
        if not self.has_encoder:
            raise ValueError(f"{tool} needs an encoder, and the {self.kind!r} model has none (a "
                             "GAN generator exports only 'generate'); use latent codes from the "
                             "prior instead")

    def as_codes(self, z) -> np.ndarray:
        """``[N, latent_dim]`` float32 (one vector becomes a batch of one)."""
        z = np.asarray(z, np.float32)
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent codes of shape {list(z.shape)}; this model's latent "
                             f"size is {self.latent_dim}")
        return z

    def as_images(self, x) -> np.ndarray:
        """``[N, H, W, C]`` float32 (one image becomes a batch of one)."""
        x = np.asarray(x, np.float32)
        x = x[None] if x.ndim == len(self.image_shape) else x
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {list(x.shape)}; this model takes "
                             f"{list(self.image_shape)}")
        return x


class ExportReader(LatentModel):
    """A verified export folder and a runtime for its operations (see the module docstring).

    ``batch_size`` bounds one runtime call; :meth:`run` splits larger inputs into chunks.
    """

    def __init__(self, export_dir: str | Path, *, runtime: str = "onnx", threads: int = 0,
                 batch_size: int = 500, source: str | None = None):
        self.export_dir = Path(export_dir)
        self.spec: ExportSpec = verify_export(self.export_dir)
        self.runtime = make_runtime(runtime, self.export_dir, self.spec, threads=threads)
        self.source = source or str(self.export_dir)
        self.batch_size = int(batch_size)
        s = self.spec
        self.kind, self.latent_dim, self.image_shape = s.kind, s.latent_dim, s.image_shape
        self.value_range, self.num_classes, self.conditional = s.value_range, s.num_classes, s.conditional
        self.has_encoder = bool(s.by_task("encode"))
        self.adapter = Adapter(s, self._call)

    # -- what it holds ---------------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        return self.spec.manifest

    @property
    def model_config(self) -> dict:
        return self.spec.model_config

    @property
    def operations(self) -> list[str]:
        return sorted(self.spec.operations)

    def operation(self, name: str) -> OperationSpec:
        """The operation called ``name`` (or aliased so); an error listing the export's operations."""
        return self.adapter.operation(name)

    # -- running -----------------------------------------------------------------------------------
    def run(self, operation: str, **inputs) -> dict[str, np.ndarray]:
        """Run one operation on inputs given by tensor name (cast to the manifest's dtypes, in
        chunks of ``batch_size``); returns its outputs by the manifest's names. Consumers use
        :attr:`adapter` instead, which feeds inputs by role."""
        op = self.operation(operation)
        missing = [n for n in op.input_names if inputs.get(n) is None]
        if missing:
            raise ValueError(f"operation {op.name!r} needs input(s) {missing}")
        feeds = {i.name: np.asarray(inputs[i.name], dtype=i.dtype) for i in op.inputs}
        return dict(zip(op.outputs, self._call(op.name, feeds)))

    def _call(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        """The runtime on ``feeds``, in chunks of ``batch_size`` items."""
        n = len(next(iter(feeds.values())))
        if n <= self.batch_size:
            return self.runtime.run(operation, feeds, token)
        chunks = [self.runtime.run(operation, {k: v[s:s + self.batch_size] for k, v in feeds.items()}, token)
                  for s in range(0, n, self.batch_size)]
        return [np.concatenate(parts) for parts in zip(*chunks)]

    def run_feeds(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        """One runtime call on feeds already in the manifest's names and dtypes (the server's
        hot path: no copies, no chunking); outputs in the manifest's order. ``token`` (from
        ``runtime.new_token()``) lets another thread cancel the call."""
        return self.runtime.run(self.operation(operation).name, feeds, token)

    def _task(self, task: str, values: Values) -> Outputs:
        """The operation for ``task`` on ``values`` (an InputError, a ValueError, when they do not fit)."""
        return self.adapter.run(self.adapter.for_task(task, values), values)

    def generate(self, z, labels=None) -> np.ndarray:
        z = self.as_codes(z)
        return self._task("generate", Values(codes=z, labels=self.check_labels(labels, len(z)))).role("image")

    def encode_all(self, x, labels=None) -> dict[str, np.ndarray]:
        """Every output of the encoder by name (``mean`` and ``log_var``, or a code)."""
        self.require_encoder("encoding")
        x = self.as_images(x)
        return dict(self._task("encode", Values(images=x, labels=self.check_labels(labels, len(x)))))

    def encode(self, x, labels=None) -> np.ndarray:
        """The code of each image: the posterior mean for the VAE family, the code for autoencoders."""
        self.require_encoder("encoding")
        x = self.as_images(x)
        out = self._task("encode", Values(images=x, labels=self.check_labels(labels, len(x))))
        return out.by_role.get("code_mean", out.by_role.get("code", out.first))

    def reconstruct(self, x, labels=None) -> np.ndarray:
        x = self.as_images(x)
        return self._task("reconstruct", Values(images=x, labels=self.check_labels(labels, len(x)))).role("image")

    # -- image-to-image ------------------------------------------------------------------------------
    @property
    def translations(self) -> list[str]:
        """The image-to-image operations (``translate``, or ``translate_a2b`` / ``translate_b2a``)."""
        return sorted(self.adapter.translations.values())

    def translate(self, x, operation: str | None = None) -> np.ndarray:
        """Images in, images out through a translation operation (the only one, when
        ``operation`` is None); the images must have the shape, and lie in the value range, the
        manifest gives for the operation's input."""
        if operation is None:
            if len(self.translations) != 1:
                raise ConfigError(f"the {self.kind!r} export {self.export_dir} has translation operations "
                                  f"{self.translations or 'none'}; name one")
            operation = self.translations[0]
        op = self.operation(operation)
        if op.task != "translate":
            raise ConfigError(f"operation {op.name!r} is not a translation (its task: {op.task})")
        return self.adapter.run(op, Values(images=x)).role("image")


def open_export(source: str | Path, *, tracking_uri: str | None = None,
                cache_dir: str | Path | None = None, **options) -> ExportReader:
    """An :class:`ExportReader` for an export folder, a ``models:/NAME@ALIAS`` (or
    ``models:/NAME/VERSION``) registry URI, or ``runs:/RUN_ID`` (the run's ``export/``)."""
    from gen_keras.exported import sources

    folder, described = sources.resolve(str(source), tracking_uri=tracking_uri, cache_dir=cache_dir)
    return ExportReader(folder, source=described, **options)
