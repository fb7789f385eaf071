"""The MLflow ``python_function`` flavor of an export, so MLflow's own tools load and serve it:
``mlflow.pyfunc.load_model("models:/NAME@champion")``, ``mlflow models serve``,
``mlflow models build-docker``, and the registry's schema view.

The MLflow Model is the export folder itself (under ``data/export``, every sha256 kept) plus an
MLmodel whose pyfunc flavor names this module as its loader: loading calls :func:`_load_pyfunc`,
which opens the folder with the one export reader (sha256 checks, onnxruntime — no pickle, no
TensorFlow). One row of the input is one item; the ``operation`` param picks what to run:

    columns (each optional)  z: latent code | seed: draw z from the prior with this seed |
                             label: class (conditional models) | x: image [H][W][C] |
                             z_mix / seed_mix: the second code of a style-mixing operation
    params                   operation (the generator by default | encode | reconstruct | score |
                             mix | any other operation the manifest lists), seed (the noise seed:
                             row i's noise is the same as item i's of `gen-keras batch` with that
                             seed), truncation (psi), crossover (mix)

The columns are request values, not tensors: :class:`gen_keras.exported.adapter.Adapter` feeds
them to the operation's inputs by the roles the manifest declares, drawing codes from seeds and
noise from the noise seed by the one rule every consumer shares. The output has one row per item
and one column per output of the operation, by the manifest's names (``image``,
``mean``/``log_var``, ``score``, ...). The signature declares these columns; the metadata lists
every operation's tensors with their roles, shapes and dtypes (``gen_keras.operations``).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from gen_keras.errors import ConfigError
from gen_keras.exported.adapter import Values, codes_for_seeds
from gen_keras.exported.reader import ExportReader

INPUT_COLUMNS = ("z", "seed", "label", "x", "z_mix", "seed_mix")


class ExportPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(model_input, params)``."""

    def __init__(self, reader: ExportReader):
        self.reader = reader

    def predict(self, model_input, params: dict | None = None):
        import pandas as pd

        params = dict(params or {})
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        adapter = self.reader.adapter
        name = params.get("operation")
        op = adapter.operation(str(name)) if name else adapter.default_operation()
        outputs = adapter.run(op, self.values(op, frame, params))  # an InputError is a ConfigError
        return pd.DataFrame({name: [row.tolist() for row in value] for name, value in outputs.items()})

    def values(self, op, frame, params: dict) -> Values:
        """The request values of the frame's columns and the params (one row per item)."""
        if len(frame) == 0:
            raise ConfigError("the input has no rows; give one row per item")
        roles = op.input_roles
        values = Values(noise_seed=int(params.get("seed") or 0), truncation=params.get("truncation"),
                        crossover=params.get("crossover"))
        if "code" in roles:
            values.codes = self._codes(frame, "z", "seed")
        if "mixing_code" in roles:
            values.mixing_codes = self._codes(frame, "z_mix", "seed_mix")
        if "image" in roles:
            if "x" not in frame:
                raise ConfigError(f"operation {op.name!r} needs a column 'x' of images {list(self.reader.image_shape)}")
            values.images = np.asarray(frame["x"].tolist(), np.float32)
        if "label" in roles:
            if "label" not in frame:
                raise ConfigError(f"operation {op.name!r} of this class-conditional model needs a column "
                                  f"'label' (0..{self.reader.num_classes - 1})")
            values.labels = np.asarray(frame["label"].tolist())
        return values

    def _codes(self, frame, code: str, seed: str) -> np.ndarray:
        """Each row's latent code: its ``code`` column, or the prior draw for its ``seed`` column."""
        rows = []
        for i in range(len(frame)):
            z = frame[code].iloc[i] if code in frame else None
            if z is not None and not (isinstance(z, float) and np.isnan(z)):
                rows.append(self.reader.as_codes(np.asarray(z, np.float32))[0])
                continue
            s = frame[seed].iloc[i] if seed in frame else None
            if s is None or (isinstance(s, float) and np.isnan(s)):
                raise ConfigError(f"row {i} has neither {code!r} (a latent code of length "
                                  f"{self.reader.latent_dim}) nor {seed!r}")
            rows.append(codes_for_seeds([int(s)], self.reader.latent_dim)[0])
        return np.stack(rows).astype(np.float32)


def _load_pyfunc(data_path: str) -> ExportPyfunc:
    """MLflow's entry point: the export folder the MLmodel names, verified and opened."""
    return ExportPyfunc(ExportReader(data_path))


# -- the MLflow Model: signature, example, metadata ----------------------------------------------
def _array(depth: int):
    from mlflow.types.schema import Array, DataType

    t = DataType.double
    for _ in range(depth):
        t = Array(t)
    return t


def signature(reader: ExportReader):
    """Input columns (all optional; which ones an operation reads is in the module docstring),
    output columns (every output name any operation has, typed by its role), and the params."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    image = _array(len(reader.image_shape))
    columns = [ColSpec(_array(1), "z", required=False), ColSpec(DataType.long, "seed", required=False),
               ColSpec(DataType.long, "label", required=False), ColSpec(image, "x", required=False)]
    if reader.adapter.has_task("mix"):
        columns += [ColSpec(_array(1), "z_mix", required=False), ColSpec(DataType.long, "seed_mix", required=False)]
    outputs, seen = [], set()
    for op in reader.spec.operations.values():
        for name, role, out in zip(op.outputs, op.output_roles, op.output_specs or [None] * len(op.outputs)):
            if name not in seen:
                seen.add(name)
                depth = len(out.shape) - 1 if out is not None else (len(reader.image_shape) if role == "image" else 1)
                outputs.append(ColSpec(DataType.double if depth == 0 else _array(depth), name, required=False))
    params = ParamSchema([ParamSpec("operation", DataType.string, reader.adapter.default_operation().name),
                          ParamSpec("seed", DataType.long, 0), ParamSpec("truncation", DataType.double, 1.0),
                          ParamSpec("crossover", DataType.long, _default_crossover(reader))])
    return ModelSignature(inputs=Schema(columns), outputs=Schema(outputs), params=params)


def _default_crossover(reader: ExportReader) -> int:
    style = reader.adapter.style
    return int(style["default_crossover"]) if style else 0


def operations_metadata(reader: ExportReader) -> dict:
    """Every operation's task and tensors with roles, shapes and dtypes (the columns above carry
    no shapes), and the model's facts."""
    spec = reader.spec
    return {"gen_keras.kind": spec.kind, "gen_keras.image_shape": list(spec.image_shape),
            "gen_keras.value_range": list(spec.value_range), "gen_keras.latent_dim": spec.latent_dim,
            "gen_keras.facts": spec.facts,
            "gen_keras.operations": {
                name: {"task": op.task,
                       "inputs": [{"name": i.name, "role": i.role, "shape": [-1 if d is None else d for d in i.shape],
                                   "dtype": i.dtype} for i in op.inputs],
                       "outputs": list(op.outputs), "output_roles": list(op.output_roles)}
                for name, op in spec.operations.items()}}


def input_example(reader: ExportReader):
    import pandas as pd

    op = reader.adapter.default_operation()
    if op.input_for("code") is not None:
        example = {"z": [row.tolist() for row in reader.sample_latent(2, 0)]}
    else:  # an image-to-image model: two blank images
        lo = (op.input_for("image").value_range or reader.value_range)[0]
        example = {"x": [np.full(op.input_for("image").shape[1:], lo).tolist()] * 2}
    if op.input_for("label") is not None:
        example["label"] = [0, 1]
    return pd.DataFrame(example)


def save_model(export_dir: str | Path, path: str | Path) -> Path:
    """Write the MLflow Model of ``export_dir`` to ``path`` (which must not exist)."""
    import mlflow.pyfunc

    import gen_keras

    reader = ExportReader(export_dir)
    mlflow.pyfunc.save_model(
        str(path), loader_module="gen_keras.exported.pyfunc", data_path=str(reader.export_dir),
        signature=signature(reader), input_example=input_example(reader),
        metadata=operations_metadata(reader),
        pip_requirements=[f"gen-keras=={gen_keras.__version__}", "onnxruntime", "pandas"])
    return Path(path)


def log_model(client, run_id: str, experiment_id: str, export_dir: str | Path, step: int = 0) -> str:
    """Log ``export_dir`` as a logged MLflow Model of the run (MLflow 3's "Logged models");
    returns its model id. Registry versions point at ``models:/<model id>``. The digest of every
    file of the MLflow Model — its MLmodel included — is recorded as a tag of the logged model, in
    the tracking store, where gen-keras's loaders check it (:func:`gen_keras.exported.sources.check_mlflow_model`)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    from gen_keras.exported.sources import FILES_DIGEST_TAG, files_digest

    tmp = Path(tempfile.mkdtemp(prefix="gen_keras_mlflow_model_"))
    try:
        local = save_model(export_dir, tmp / "model")
        model = client.create_logged_model(experiment_id, name="mlflow_model", source_run_id=run_id,
                                           model_type="gen-keras-export",
                                           tags={"gen_keras.kind": ExportReader(export_dir).kind,
                                                 FILES_DIGEST_TAG: files_digest(local)})
        client.log_model_artifacts(model.model_id, str(local))
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
        return model.model_id
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
