"""Models to evaluate, from where training leaves them: an MLflow run (its ``model/model.keras``
artifact, sha256-checked, and the run's logged config) or an export (read through the one export
reader; sample metrics only, as an export has no decoder likelihood)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from gen_keras.errors import ConfigError, ModelSourceError

_RUN_SECTIONS = ("data", "train", "distribute", "tracking")


@dataclasses.dataclass
class EvalTarget:
    model: object  # a GenerativeModel, or an ExportedGenerator (sample metrics only)
    run_config: object  # RunConfig: the data set and test split the metrics use
    run_id: str | None  # the MLflow run the metrics belong to (None: nowhere to log)
    tracking_uri: str | None
    source: str  # human-readable origin, for messages


class ExportedGenerator:
    """An :class:`~gen_keras.exported.reader.ExportReader` with the model config its manifest
    records, shaped like a model for :func:`gen_keras.eval.samples.generate_samples`."""

    def __init__(self, reader):
        from gen_keras.config_loader import model_config_from_dict

        reader.adapter.for_task("generate")  # a clear error for an export without a generator
        self.reader = reader
        self.config = model_config_from_dict(reader.model_config)
        self.image_shape, self.latent_dim = reader.image_shape, reader.latent_dim
        self.sample_latent, self.generate = reader.sample_latent, reader.generate


def run_config_from_params(params: dict[str, str], model_config):
    """Rebuild a RunConfig from a run's logged params (``section.field`` → str) and its model."""
    import yaml

    from gen_keras.config import DataConfig, DistributeConfig, TrackingConfig, TrainConfig
    from gen_keras.config_loader import config_from_dict

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
    """The model and run config to evaluate, from exactly one of ``run_id`` / ``export_dir``
    (a folder or ``models:/`` URI).

    ``dataset`` overrides the data set (default: the run's own ``data.dataset``; for an export
    whose source run cannot be read, ``mnist10k``).
    """
    from gen_keras.config import RunConfig
    from gen_keras.exported.reader import open_export
    from gen_keras.stores import tracking_uri as resolve_store

    if (run_id is None) == (export_dir is None):
        raise ConfigError("give exactly one of --run-id or --export")
    uri = resolve_store(tracking_uri)
    if run_id is not None:
        try:
            model, run_config = _from_run(run_id, uri)
        except ModelSourceError as exc:
            raise ConfigError(f"--run-id {run_id}: {exc}") from None
        source = f"MLflow run {run_id} ({uri})"
    else:
        model = ExportedGenerator(open_export(str(export_dir), tracking_uri=uri))
        run_id, run_config = _source_run(model, uri)
        source = f"export {export_dir}"
    if dataset:
        run_config = dataclasses.replace(
            run_config, data=dataclasses.replace(run_config.data, dataset=dataset))
    return EvalTarget(model, (run_config or RunConfig(model=model.config)).validate(), run_id,
                      uri if run_id else None, source)


def _source_run(model: ExportedGenerator, uri: str):
    """The export's source run and its config, when the tracking store holds it (an export alone
    never creates a store)."""
    from gen_keras.exported.sources import client_for
    from gen_keras.tracking import logged_config

    run_id = model.reader.spec.source_run_id
    if not run_id or (uri.startswith("sqlite:///") and not os.path.isfile(uri[len("sqlite:///"):])):
        return None, None
    try:
        client, _ = client_for(uri)
        return run_id, run_config_from_params(logged_config(client, run_id), model.config)
    except Exception:  # the store is unreachable or the run lives elsewhere
        return None, None


def _from_run(run_id: str, uri: str):
    from gen_keras.artifacts import load_model_from_run, run_params
    from gen_keras.precision import float32_twin

    model = load_model_from_run(run_id, uri)  # sha256-checked against the sidecar
    return float32_twin(model), run_config_from_params(run_params(run_id, uri), model.config)
