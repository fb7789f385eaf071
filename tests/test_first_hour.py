"""A new user's first hour (issue #14), each trap with a test that can fail: the store a run
used and the exact command that opens it, read-only commands that never create a store and say
why they failed, the MLflow UI opening on the runs table (real Chromium, screenshots), metric
groups and per-epoch image series, fast argument checks before TensorFlow, serve's start-up
errors, and "did you mean" for a near miss."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, chromium_or_skip, free_port

GEN_KERAS = str(Path(PYTHON).with_name("gen-keras"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]
TINY = ["data.limit_train=256", "data.limit_test=64", "train.batch_size=64", "train.epochs=2",
        "train.progress=false", "train.evaluate_at_end=false", "model.hidden=32", "model.latent_dim=4"]


def run_cli(args, cwd=ROOT, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"PYTHONUNBUFFERED": "1", **(env_extra or {})})
    return subprocess.run([GEN_KERAS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# -- the tracking store ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, data_cache):
    """A training run started from another working directory with the default store."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    r = run_cli(["train", "--config", str(ROOT / "pipelines/configs/vae_mnist10k.yaml"),
                 *sum((["--set", s] for s in TINY), []), "--set", "tracking.run_name=first-hour"],
                cwd=cwd, env_extra={"GEN_KERAS_CACHE": str(data_cache)})
    assert r.returncode == 0, r.stderr[-3000:]
    return cwd, r


def test_the_end_of_training_hint_opens_the_store_that_was_used(elsewhere):
    cwd, r = elsewhere
    store = f"sqlite:///{(cwd / 'mlflow' / 'mlflow.db').resolve()}"
    hint = r.stdout[r.stdout.index("MLflow UI:"):]
    assert f"ui --backend-store-uri {store}" in hint and str(Path(PYTHON).with_name("mlflow")) in hint
    assert "http://127.0.0.1:5000/#/experiments/" in hint and "?workflowType=machine_learning" in hint
    assert f"samples per epoch: {cwd.resolve() / 'outputs'}" in r.stdout
    # TensorFlow's start-up notices stay off the terminal
    assert "oneDNN custom operations" not in r.stderr and "absl::InitializeLog" not in r.stderr


def test_read_only_commands_never_create_a_store_and_say_why(tmp_path, elsewhere):
    typo = tmp_path / "typo" / "mlflow.db"
    for args in (["export", "--run-id", "0" * 32], ["evaluate", "--run-id", "0" * 32],
                 ["latent", "traverse", "--run-id", "0" * 32, "--out", str(tmp_path / "t.png")]):
        r = run_cli([*args, "--tracking-uri", f"sqlite:///{typo}"], cwd=tmp_path)
        assert r.returncode in (1, 2) and f"no MLflow tracking store at {typo}" in r.stderr, (args, r.stderr)
        assert not (tmp_path / "typo").exists() and not (tmp_path / "mlflow").exists()
    closed = f"http://127.0.0.1:{free_port()}"
    r = run_cli(["export", "--run-id", "0" * 32, "--tracking-uri", closed], cwd=tmp_path)
    assert r.returncode in (1, 2) and closed in r.stderr and "connection refused" in r.stderr, r.stderr


def test_argument_errors_come_before_tensorflow(tmp_path):
    started = time.time()
    r = run_cli(["train", "--config", str(ROOT / "pipelines/configs/vae_mnist10k.yaml"),
                 "--set", "train.epochz=3"], cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'epochz' → 'epochs'" in r.stderr
    assert time.time() - started < 20  # no TensorFlow import on the way (it takes 5+ s here)
    r = run_cli(["train", "--config", str(ROOT / "pipelines/configs/vae_mnist10k.yaml"),
                 "--set", "model.kind=dcgna"], cwd=tmp_path)
    assert r.returncode == 2 and "did you mean 'dcgan'" in r.stderr


# -- serve's start-up ---------------------------------------------------------------------------------
def test_serve_refuses_what_it_cannot_serve_before_the_banner(tmp_path, elsewhere):
    cwd, _ = elsewhere
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli(["serve", "--models", str(empty)], cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "holds no export" in r.stderr and "--wait-for-models" in r.stderr
    r = run_cli(["serve", "--models", str(empty), "--port", "80000"], cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "80000 is not a TCP port" in r.stderr and "Traceback" not in r.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(["serve", "--models", str(cwd / "outputs" / "exports"), "--port", str(port)],
                    cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "gen-keras serve: http://" not in r.stderr  # no banner for a server that never ran


def test_serve_takes_one_export_folder_given_directly(tmp_path, elsewhere):
    from serving_fixtures import ServeProcess, request

    cwd, _ = elsewhere
    export = cwd / "outputs" / "exports" / "first-hour"
    server = ServeProcess(["--models", str(export)], tmp_path / "serve.log").start()
    try:
        status, _, body = request(server.url, "GET", "/readyz")
        assert status == 200 and b'"first-hour"' in body
    finally:
        server.stop()


# -- the MLflow UI ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ui_run(mlflow_server, tmp_path_factory, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    out = tmp_path_factory.mktemp("ui")
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", [
        *TINY, f"tracking.outputs_dir={out}", "tracking.experiment=first-hour-ui", "tracking.run_name=ui-run",
        "train.export_at_end=false"])  # the UI's run table, metrics and images: no export read here
    return train(cfg, tracking_uri=mlflow_server.uri)


def test_runs_are_grouped_and_images_step_through_epochs(mlflow_server, ui_run):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(ui_run.run_id)
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    prefixes = {name.split("/")[0] for name in run.data.metrics}
    assert {"epoch", "test"} <= prefixes and all("/" in n for n in run.data.metrics), run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")] == [1, 2]
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    # the series from epoch 0 (the untrained model); each step a PNG and its thumbnail
    assert sum("epoch~samples+step+" in p and p.endswith(".png") for p in images) == 3, images
    assert {a.path for a in client.list_artifacts(run.info.run_id, "samples")} == {
        "samples/epoch_000.png", "samples/epoch_001.png", "samples/epoch_002.png"}


def test_the_mlflow_ui_opens_on_the_runs_table(mlflow_server, ui_run, tmp_path):
    from mlflow import MlflowClient

    from gen_keras.tracking import run_url

    binary, sync_playwright = chromium_or_skip()
    exp_id = MlflowClient(mlflow_server.uri).get_run(ui_run.run_id).info.experiment_id
    shots = Path(os.environ.get("GEN_KERAS_SCREENSHOT_DIR", tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # the link the end of training prints opens the run in the "Model training" view
            page.goto(run_url(mlflow_server.uri, exp_id, None))
            page.get_by_text("ui-run").first.wait_for(timeout=90_000)  # the run, in the runs table
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "mlflow_experiment.png"))
            body = page.inner_text("body")
            assert "Run Name" in body and "Evaluation runs" not in body, body[:2000]
            page.goto(run_url(mlflow_server.uri, exp_id, ui_run.run_id).replace(
                "?workflowType", "/model-metrics?workflowType"))
            page.get_by_text("epoch/loss").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "mlflow_run_metrics.png"))
        finally:
            browser.close()
    print(f"\nscreenshots: {shots / 'mlflow_experiment.png'}, {shots / 'mlflow_run_metrics.png'}")
    assert (shots / "mlflow_experiment.png").stat().st_size > 10_000
