"""The MLflow ``python_function`` flavor of an export, so MLflow's own tools load and serve it:
``mlflow.pyfunc.load_model("models:/NAME@champion")``, ``mlflow models serve``,
``mlflow models build-docker``, and the registry's schema view.

The MLflow Model is the export folder itself (under ``data/export``, every sha256 kept) plus an
MLmodel whose pyfunc flavor names this module as its loader: loading calls :func:`_load_pyfunc`,
which opens the folder with the one export reader (sha256 checks, onnxruntime — no pickle, no
TensorFlow). One row of the input is one item; the ``operation`` param picks what to run:

    columns (each optional)  z: latent code | seed: draw z from the prior with this seed |
                             label: class (conditional models) | x: image [H][W][C]
    params                   operation (generate | encode | reconstruct | score | any other
                             operation the manifest lists), seed (the noise of ``score``),
                             truncation (style models: psi)

The output has one row per item and one column per output of the operation (``image``,
``mean``/``log_var``, ``score``, ...). The signature declares these columns; the metadata lists
every operation's tensors with shapes and dtypes (``gen_keras.operations``).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from gen_keras.errors import ConfigError
from gen_keras.exported.reader import ExportReader

DEFAULT_OPERATION = "generate"
INPUT_COLUMNS = ("z", "seed", "label", "x")


class ExportPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(model_input, params)``."""

    def __init__(self, reader: ExportReader):
        self.reader = reader

    def predict(self, model_input, params: dict | None = None):
        import pandas as pd

        params = dict(params or {})
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        op = self.reader.operation(str(params.get("operation") or DEFAULT_OPERATION))
        outputs = self.reader.run(op.name, **self.inputs(op, frame, params))
        return pd.DataFrame({name: [row.tolist() for row in value] for name, value in outputs.items()})

    def inputs(self, op, frame, params: dict) -> dict[str, np.ndarray]:
        """The operation's named inputs from the frame's columns (one row per item)."""
        r, n = self.reader, len(frame)
        if n == 0:
            raise ConfigError("the input has no rows; give one row per item")
        feeds = {}
        if op.input("z") is not None:
            feeds["z"] = np.stack([self._code(frame, i) for i in range(n)]).astype(np.float32)
        if op.input("x") is not None:
            if "x" not in frame:
                raise ConfigError(f"operation {op.name!r} needs a column 'x' of images {list(r.image_shape)}")
            feeds["x"] = r.as_images(np.asarray(frame["x"].tolist(), np.float32))
        if op.input("label") is not None:
            if "label" not in frame:
                raise ConfigError(f"operation {op.name!r} of this class-conditional model needs a column "
                                  f"'label' (0..{r.num_classes - 1})")
            feeds["label"] = r.check_labels(np.asarray(frame["label"].tolist()), n)
        if op.input("eps") is not None:
            seed = int(params.get("seed", 0))
            feeds["eps"] = np.random.default_rng(seed).standard_normal((n, r.latent_dim)).astype(np.float32)
        if op.input("psi") is not None:
            feeds["psi"] = np.full((n,), float(params.get("truncation", 1.0)), np.float32)
        return feeds

    def _code(self, frame, i: int) -> np.ndarray:
        """Row ``i``'s latent code: its ``z``, or the prior draw for its ``seed``."""
        z = frame["z"].iloc[i] if "z" in frame else None
        if z is not None and not (isinstance(z, float) and np.isnan(z)):
            return self.reader.as_codes(np.asarray(z, np.float32))[0]
        seed = frame["seed"].iloc[i] if "seed" in frame else None
        if seed is None or (isinstance(seed, float) and np.isnan(seed)):
            raise ConfigError(f"row {i} has neither 'z' (a latent code of length "
                              f"{self.reader.latent_dim}) nor 'seed'")
        return self.reader.sample_latent(1, int(seed))[0]


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
    output columns (every output name any operation has), and the params."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    columns = [ColSpec(_array(1), "z", required=False), ColSpec(DataType.long, "seed", required=False),
               ColSpec(DataType.long, "label", required=False),
               ColSpec(_array(len(reader.image_shape)), "x", required=False)]
    outputs, seen = [], set()
    for op in reader.spec.operations.values():
        for name in op.outputs:
            if name not in seen:
                seen.add(name)
                kind = (_array(len(reader.image_shape)) if name == "image" else
                        DataType.double if name == "score" else _array(1))
                outputs.append(ColSpec(kind, name, required=False))
    params = ParamSchema([ParamSpec("operation", DataType.string, DEFAULT_OPERATION),
                          ParamSpec("seed", DataType.long, 0), ParamSpec("truncation", DataType.double, 1.0)])
    return ModelSignature(inputs=Schema(columns), outputs=Schema(outputs), params=params)


def operations_metadata(reader: ExportReader) -> dict:
    """Every operation's tensors with shapes and dtypes (the columns above carry no shapes)."""
    spec = reader.spec
    return {"gen_keras.kind": spec.kind, "gen_keras.image_shape": list(spec.image_shape),
            "gen_keras.value_range": list(spec.value_range), "gen_keras.latent_dim": spec.latent_dim,
            "gen_keras.operations": {
                name: {"inputs": [{"name": i.name, "shape": [-1 if d is None else d for d in i.shape],
                                   "dtype": i.dtype} for i in op.inputs], "outputs": list(op.outputs)}
                for name, op in spec.operations.items()}}


def input_example(reader: ExportReader):
    import pandas as pd

    example = {"z": [row.tolist() for row in reader.sample_latent(2, 0)]}
    if reader.conditional:
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
    returns its model id. Registry versions point at ``models:/<model id>``."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    tmp = Path(tempfile.mkdtemp(prefix="gen_keras_mlflow_model_"))
    try:
        local = save_model(export_dir, tmp / "model")
        model = client.create_logged_model(experiment_id, name="mlflow_model", source_run_id=run_id,
                                           model_type="gen-keras-export",
                                           tags={"gen_keras.kind": ExportReader(export_dir).kind})
        client.log_model_artifacts(model.model_id, str(local))
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
        return model.model_id
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
