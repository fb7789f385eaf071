"""Every export is an MLflow Model (pyfunc flavor over the export, no pickle, no TensorFlow), so
MLflow's own tools work on a registered version: ``mlflow.pyfunc.load_model`` predicts what
``gen-keras serve`` answers, ``mlflow models serve`` answers ``/invocations``, and the version
record carries the signature. Real MLflow server, real subprocesses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, free_port, wait_http
from serving_fixtures import ServeProcess, request

NAME = "pyfunc-digits"


@pytest.fixture(scope="module")
def registered(mlflow_server, tmp_path_factory, data_cache):
    from mlflow import MlflowClient

    from gen_keras.config_loader import load_config
    from gen_keras.retrain import register_run
    from gen_keras.training import train

    out = tmp_path_factory.mktemp("pyfunc")
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", [
        f"tracking.outputs_dir={out}", "tracking.experiment=pyfunc", "tracking.run_name=pyfunc-vae",
        "data.limit_train=256", "data.limit_test=64", "train.batch_size=64", "train.epochs=1",
        "train.progress=false", "train.evaluate_at_end=false", "model.latent_dim=16"])
    result = train(cfg, tracking_uri=mlflow_server.uri)
    client = MlflowClient(mlflow_server.uri, registry_uri=mlflow_server.uri)
    version = register_run(client, NAME, result.run_id)
    client.set_registered_model_alias(NAME, "champion", version.version)
    return result, client, version


@pytest.fixture
def tracking(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    return mlflow_server.uri


def test_the_run_logs_a_real_mlflow_model(registered):
    result, client, version = registered
    run = client.get_run(result.run_id)
    model_id = run.data.tags["gen_keras.model_id"]
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.model_id for m in models if m.source_run_id == result.run_id] == [model_id]
    assert version.source == f"models:/{model_id}"


def test_pyfunc_predicts_what_the_server_answers(registered, tracking, tmp_path):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    z = np.random.default_rng(3).standard_normal((4, 16)).astype("float32")
    images = np.asarray(model.predict(pd.DataFrame({"z": list(z.astype("float64"))}))["image"].tolist())
    server = ServeProcess(["--model-uri", f"models:/{NAME}@champion", "--tracking-uri", tracking,
                           "--cache-dir", str(tmp_path / "cache")], tmp_path / "serve.log").start()
    try:
        status, _, body = request(server.url, "POST", f"/v1/models/{NAME}:generate",
                                  {"z": z.tolist(), "format": "json"})
        assert status == 200
        served = np.asarray(json.loads(body)["images"])
    finally:
        server.stop()
    assert images.shape == served.shape == (4, 28, 28, 1)
    assert np.max(np.abs(images - served)) <= 1e-6  # the server rounds JSON to 6 decimals
    # seeds draw the documented prior codes; encode / score run the export's other operations
    by_seed = model.predict(pd.DataFrame({"seed": [7, 8]}))
    from gen_keras.exported.latents import sample_prior

    want = model.predict(pd.DataFrame({"z": [sample_prior(1, 16, 7)[0].astype("float64")]}))
    assert np.array_equal(np.asarray(by_seed["image"][0]), np.asarray(want["image"][0]))
    encoded = model.predict(pd.DataFrame({"x": list(images)}), params={"operation": "encode"})
    assert list(encoded.columns) == ["mean", "log_var"] and np.asarray(encoded["mean"].tolist()).shape == (4, 16)
    scores = model.predict(pd.DataFrame({"x": list(images)}), params={"operation": "score", "seed": 1})
    assert np.isfinite(np.asarray(scores["score"].tolist())).all()
    with pytest.raises(Exception, match="no 'explode' operation"):
        model.predict(pd.DataFrame({"seed": [1]}), params={"operation": "explode"})
    with pytest.raises(Exception, match="neither 'z'"):
        model.predict(pd.DataFrame({"label": [1]}))


def test_the_version_carries_its_signature(registered, tracking):
    from mlflow.models import get_model_info

    _, _, version = registered
    status, _, body = request(tracking, "GET",
                              f"/api/2.0/mlflow/model-versions/get?name={NAME}&version={version.version}")
    record = json.loads(body)["model_version"]
    assert status == 200 and record["source"].startswith("models:/m-")
    info = get_model_info(f"models:/{NAME}@champion")
    assert {c.name for c in info.signature.inputs.inputs} == {"z", "seed", "label", "x"}
    assert {"image", "mean", "log_var", "score"} <= {c.name for c in info.signature.outputs.inputs}
    assert {p.name for p in info.signature.params.params} == {"operation", "seed", "truncation", "crossover"}
    ops = info.metadata["gen_keras.operations"]
    assert ops["generate"]["task"] == "generate" and ops["generate"]["inputs"] == [
        {"name": "z", "role": "code", "shape": [-1, 16], "dtype": "float32"}]
    assert ops["encode"]["inputs"][0]["shape"] == [-1, 28, 28, 1]


def test_mlflow_models_serve_answers_invocations(registered, tracking, tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking,  # the venv's uvicorn on PATH, as when activated
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "models-serve.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
                             f"models:/{NAME}@champion", "--env-manager", "local", "-p", str(port),
                             "-h", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 240, proc)
        body = {"dataframe_records": [{"seed": 1}, {"seed": 2}], "params": {"operation": "generate"}}
        status, _, answer = request(f"http://127.0.0.1:{port}", "POST", "/invocations", body)
        assert status == 200, answer[:500]
        predictions = json.loads(answer)["predictions"]
        assert len(predictions) == 2 and np.asarray(predictions[0]["image"]).shape == (28, 28, 1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def test_a_tampered_mlflow_model_is_refused(registered, tracking, tmp_path):
    import mlflow.artifacts
    import mlflow.pyfunc

    from gen_keras.exported.sources import export_folder_of

    _, _, version = registered
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(tmp_path)))
    onnx = export_folder_of(local) / "generate.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    with pytest.raises(Exception, match="does not match its sha256"):
        mlflow.pyfunc.load_model(str(local))


def test_an_edited_mlmodel_in_the_artifact_store_is_refused_by_gen_keras_loaders(registered, mlflow_server, tmp_path):
    """The probe's finding: an MLmodel edited in the artifact store (loader switched to a pickle)
    is loaded by MLflow's own loader. gen-keras's loaders check every file of the MLflow Model,
    the MLmodel included, against the digest recorded on the logged model in the tracking store."""
    from gen_keras.errors import ArtifactIntegrityError, ModelSourceError
    from gen_keras.exported.reader import open_export
    from gen_keras.exported.sources import FILES_DIGEST_TAG

    result, client, version = registered
    model_id = version.source.removeprefix("models:/")
    assert client.get_logged_model(model_id).tags[FILES_DIGEST_TAG]
    # Fresh caches: a verified copy from another test would be reused as is.
    open_export(f"models:/{NAME}@champion", tracking_uri=mlflow_server.uri, cache_dir=tmp_path / "ok")
    [mlmodel] = [p for p in (mlflow_server.root / "artifacts").rglob("MLmodel") if model_id in str(p)]
    original = mlmodel.read_text()
    try:
        mlmodel.write_text(original.replace("loader_module: gen_keras.exported.pyfunc",
                                            "loader_module: mlflow.pyfunc.model"))
        (mlmodel.parent / "python_model.pkl").write_bytes(b"not loaded")
        with pytest.raises((ArtifactIntegrityError, ModelSourceError), match="differ from the ones logged"):
            open_export(f"models:/{NAME}@champion", tracking_uri=mlflow_server.uri, cache_dir=tmp_path / "bad")
        assert not (tmp_path / "bad" / f"{NAME}-v{version.version}").exists()
    finally:
        mlmodel.write_text(original)
        (mlmodel.parent / "python_model.pkl").unlink(missing_ok=True)
