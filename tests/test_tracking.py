"""The quickstart through the real CLI against a REAL mlflow server, read back with MlflowClient."""
import json
import os
import subprocess

import numpy as np
import onnxruntime as ort
from mlflow import MlflowClient

from gen_keras.tracking import logged_config

from conftest import PYTHON, ROOT


def test_cli_train_logs_everything_to_a_real_server(mlflow_server, tmp_path, data_cache):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri, "GEN_KERAS_CACHE": str(data_cache)}
    cmd = [PYTHON, "-m", "gen_keras.cli", "train", "--config",
           str(ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"),
           "--set", "train.epochs=2", "--set", "data.limit_train=512", "--set", "data.limit_test=256",
           "--set", "train.batch_size=64", "--set", f"tracking.outputs_dir={tmp_path / 'out'}",
           "--set", "tracking.run_name=tracked-run", "--set", "tracking.experiment=tracking-test"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MLflow run id" in proc.stdout and "export" in proc.stdout

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("tracking-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked-run"
    # the whole record is config.yaml (MLflow's image cards print every param: none are logged)
    assert run.data.params == {} and "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    params = logged_config(client, run.info.run_id)
    assert params["model.kind"] == "vae" and params["train.epochs"] == "2"
    assert params["data.dataset"] == "mnist10k" and params["version.tensorflow"].startswith("2.")
    assert params["derived.replicas"] == "1" and params["derived.per_replica_batch"] == "64"
    for name in ("epoch/loss", "epoch/val_loss", "epoch/kl", "epoch/val_reconstruction"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == [1, 2], name
        assert all(np.isfinite(m.value) for m in history)
    assert "test/loss" in run.data.metrics
    # the end-of-training evaluation the quickstart runs, on the server under its eval/ names
    assert {"eval/fid_256", "eval/test_nll_k100_nats"} <= set(run.data.metrics), sorted(run.data.metrics)
    # The dataset is recorded as an input of the run.
    full = client.get_run(run.info.run_id)
    assert [d.dataset.name for d in full.inputs.dataset_inputs] == ["mnist10k"]

    def listing(path):
        return {os.path.basename(f.path) for f in client.list_artifacts(run.info.run_id, path)}

    assert listing("samples") == {"epoch_000.png", "epoch_001.png", "epoch_002.png"}  # 0: untrained
    assert listing("reconstructions") == {"epoch_000.png", "epoch_001.png", "epoch_002.png"}
    assert listing("model") == {"model.keras", "model.keras.sha256"}
    assert {"manifest.json", "generate.onnx", "encode.onnx", "saved_model"} <= listing("export")
    png = client.download_artifacts(run.info.run_id, "samples/epoch_002.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    # The exported decoder runs in onnxruntime with the manifest's shapes.
    export = client.download_artifacts(run.info.run_id, "export", str(tmp_path / "dl"))
    manifest = json.load(open(os.path.join(export, "manifest.json")))
    gen = manifest["endpoints"]["generate"]
    sess = ort.InferenceSession(os.path.join(export, gen["onnx"]), providers=["CPUExecutionProvider"])
    z = np.zeros((3, manifest["latent_dim"]), "float32")
    (img,) = sess.run(None, {gen["inputs"][0]["name"]: z})
    assert img.shape == (3, *manifest["image_shape"])
    assert img.min() >= 0.0 and img.max() <= 1.0
