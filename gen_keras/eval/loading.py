"""Models to evaluate, from where training leaves them: an MLflow run (its ``model/model.keras``
artifact, sha256-checked, and the run's logged config) or an export folder (its SavedModel
``generate`` signature, manifest-verified)."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from gen_keras.config import ConfigError

_RUN_SECTIONS = ("data", "train", "distribute", "tracking")


@dataclasses.dataclass
class EvalTarget:
    model: object  # a GenerativeModel, or an ExportedGenerator (sample metrics only)
    run_config: object  # RunConfig: the data set and test split the metrics use
    run_id: str | None  # the MLflow run the metrics belong to (None: nowhere to log)
    tracking_uri: str | None
    source: str  # human-readable origin, for messages


class ExportedGenerator:
    """The ``generate`` signature of an exported SavedModel, shaped like a model for
    :func:`gen_keras.eval.samples.generate_samples` (``config``, ``image_shape``,
    ``sample_latent``, ``generate``). It has no decoder likelihood, so an export gets sample
    metrics only; the likelihood needs the Keras model (``--run-id``)."""

    def __init__(self, export_dir: str | Path):
        import tensorflow as tf

        from gen_keras.config import model_config_from_dict
        from gen_keras.export import read_manifest

        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(self.export_dir, verify=True)
        self.config = model_config_from_dict(self.manifest["model_config"])
        if "generate" not in self.manifest["endpoints"]:
            raise ConfigError(f"{export_dir}: the export has no 'generate' endpoint")
        loaded = tf.saved_model.load(str(self.export_dir / self.manifest["saved_model"]))
        self._loaded = loaded  # keeps the signature's variables alive
        self._generate = loaded.signatures["generate"]
        self._inputs = [i["name"] for i in self.manifest["endpoints"]["generate"]["inputs"]]

    @property
    def image_shape(self):
        return tuple(self.config.image_shape)

    @property
    def latent_dim(self):
        return int(self.config.latent_dim)

    def sample_latent(self, n: int, seed: int = 0) -> np.ndarray:
        # The same N(0, I) draw as GenerativeModel.sample_latent.
        return np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype("float32")

    def generate(self, z, labels=None):
        import tensorflow as tf

        feeds = {self._inputs[0]: tf.convert_to_tensor(np.asarray(z, np.float32))}
        if len(self._inputs) > 1:
            if labels is None:
                raise ValueError("this exported generator is conditional: pass labels")
            feeds[self._inputs[1]] = tf.convert_to_tensor(np.asarray(labels, np.int32))
        return next(iter(self._generate(**feeds).values())).numpy()


def run_config_from_params(params: dict[str, str], model_config):
    """Rebuild a RunConfig from a run's logged params (``section.field`` → str) and its model."""
    import yaml

    from gen_keras.config import (DataConfig, DistributeConfig, TrackingConfig, TrainConfig,
                                  config_from_dict)

    known = {"data": DataConfig, "train": TrainConfig, "distribute": DistributeConfig,
             "tracking": TrackingConfig}
    raw: dict = {"model": dataclasses.asdict(model_config)}
    for key, value in params.items():
        section, _, name = key.partition(".")
        if section not in known or name not in {f.name for f in dataclasses.fields(known[section])}:
            continue  # derived.*, version.*, or a field this version does not know
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        raw.setdefault(section, {})[name] = "" if parsed is None else parsed
    return config_from_dict(raw)


def load_for_eval(run_id: str | None = None, export_dir: str | Path | None = None,
                  tracking_uri: str | None = None, dataset: str | None = None) -> EvalTarget:
    """The model and run config to evaluate, from exactly one of ``run_id`` / ``export_dir``.

    ``dataset`` overrides the data set (default: the run's own ``data.dataset``; for an export
    whose source run cannot be read, ``mnist10k``).
    """
    from gen_keras.tracking import default_tracking_uri

    if (run_id is None) == (export_dir is None):
        raise ConfigError("give exactly one of --run-id or --export")
    if run_id is None and not (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                               or Path("mlflow/mlflow.db").is_file()):
        uri = None  # an export alone: do not create an empty tracking store as a side effect
    else:
        uri = tracking_uri or default_tracking_uri()
    if run_id is not None:
        model, run_config = _from_run(run_id, uri)
        source = f"MLflow run {run_id} ({uri})"
    else:
        model = ExportedGenerator(export_dir)
        run_id = model.manifest.get("source_run_id") if uri else None
        run_config = None
        if run_id:
            try:
                run_config = run_config_from_params(_client(uri).get_run(run_id).data.params,
                                                     model.config)
            except Exception:  # tracking store unreachable or the run is elsewhere
                run_id = None
        if run_config is None:
            from gen_keras.config import RunConfig

            run_config = RunConfig(model=model.config).validate()
        source = f"export folder {export_dir}"
    if dataset:
        run_config = dataclasses.replace(
            run_config, data=dataclasses.replace(run_config.data, dataset=dataset)).validate()
    return EvalTarget(model, run_config, run_id, uri if run_id else None, source)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _from_run(run_id: str, uri: str):
    import mlflow

    from gen_keras.artifacts import load_model

    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise ConfigError(f"--run-id {run_id}: no such run in the tracking store {uri} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    with tempfile.TemporaryDirectory(prefix="gen_keras_eval_") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                        dst_path=tmp, tracking_uri=uri)
        except Exception as exc:
            raise ConfigError(f"--run-id {run_id}: the run has no model/model.keras artifact "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); did "
                              "training finish?") from None
        model = load_model(Path(local) / "model.keras")  # sha256-checked against the sidecar
    from gen_keras.precision import float32_twin

    return float32_twin(model), run_config_from_params(run.data.params, model.config)
