"""Each hardening finding of issue #13, with a test that failed before its fix: the tracking
server script, one bad export among good ones, torn checkpoint state, strict JSON and non-finite
outputs, the in-flight cap, cancelled runs, reloads, locks, symlinks, empty sidecars."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.exported.manifest import sha256_file, verify_export
from gen_keras.exported.reader import ExportReader
from gen_keras.files import LockBusy, atomic_write_text, exclusive_lock
from serving.app import ServeSettings, create_app
from serving.registry import load_store

from conftest import ROOT, free_port, wait_http
from serving_fixtures import ServeProcess, request, serving_exports  # noqa: F401

SCRIPT = str(ROOT / "mlflow" / "server.sh")


def _script_env() -> dict:
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_AUTH", "GEN_KERAS_MLFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


# -- the tracking server script ----------------------------------------------------------------------
def test_server_script_refuses_a_reachable_host_without_login(tmp_path):
    r = subprocess.run(["bash", SCRIPT, "--host", "0.0.0.0", "--backend-store-uri",
                        f"sqlite:///{tmp_path / 'm.db'}"], env=_script_env(), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "refusing to start" in r.stderr and "--app-name basic-auth" in r.stderr
    assert not (tmp_path / "m.db").exists()


def test_server_script_masks_the_password_and_keeps_the_store_off_argv(tmp_path):
    """--insecure lets a trusted network in; the store URI reaches mlflow through the environment
    (``ps`` shows no database URI) and is printed with its password masked."""
    port = free_port()
    env = {**_script_env(), "GEN_KERAS_MLFLOW_BACKEND": f"sqlite:///{tmp_path / 'm.db'}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(["bash", SCRIPT, "--host", "0.0.0.0", "--insecure", "--port", str(port),
                             "--workers", "1", "--artifacts-destination", str(tmp_path / "a")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 180, proc)
        cmdlines = [" ".join(p.cmdline()) for p in __import__("psutil").Process(proc.pid).children(recursive=True)
                    + [__import__("psutil").Process(proc.pid)]]
        assert cmdlines and not any("m.db" in c or "backend-store-uri" in c for c in cmdlines), cmdlines
        assert (tmp_path / "m.db").exists()  # the server used the store it was given
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    r = subprocess.run(["bash", SCRIPT, "--port", "notaport"], capture_output=True, text=True,
                       env={**_script_env(), "GEN_KERAS_MLFLOW_BACKEND": "postgresql://u:SECRET@db/x"})
    assert r.returncode == 2 and "SECRET" not in r.stderr
    masked = subprocess.run(["bash", "-c", f"source <(sed -n '/^masked=/p' {SCRIPT}); echo $masked"],
                            env={"backend": "postgresql://mlflow:s3cr3t@db.internal:5432/mlflow", "PATH": os.environ["PATH"]},
                            capture_output=True, text=True)
    assert masked.stdout.strip() == "postgresql://mlflow:***@db.internal:5432/mlflow"


# -- serving: one bad export never takes the others down ---------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def _rewrite_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_bad_exports_are_refused_with_their_reason_and_the_rest_served(serving_exports, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _copy(serving_exports.vae, models / "good")
    absolute = _copy(serving_exports.vae, models / "absolute")
    _rewrite_manifest(absolute, saved_model=str(absolute / "saved_model"))
    garbage = _copy(serving_exports.vae, models / "garbage")  # listed with a matching sha256
    (garbage / "generate.onnx").write_bytes(b"not an onnx graph")
    manifest = json.loads((garbage / "manifest.json").read_text())
    manifest["files"]["generate.onnx"] = sha256_file(garbage / "generate.onnx")
    (garbage / "manifest.json").write_text(json.dumps(manifest))
    folder = _copy(serving_exports.vae, models / "a-folder")  # unreadable as a file
    (folder / "encode.onnx").unlink()
    (folder / "encode.onnx").mkdir()
    linked = _copy(serving_exports.vae, models / "linked")  # a symlink inside the SavedModel
    (linked / "saved_model" / "extra").symlink_to("/etc/hostname")

    store = load_store(models)
    assert sorted(store.models) == ["good"]
    assert "outside the folder" in store.refused["absolute"]
    assert "generate.onnx is not a readable ONNX model" in store.refused["garbage"]
    assert "encode.onnx" in store.refused["a-folder"]
    assert "symlink" in store.refused["linked"]
    with TestClient(create_app(store)) as c:
        assert c.get("/readyz").status_code == 200
        listed = c.get("/v1/models").json()
        assert [m["name"] for m in listed["models"]] == ["good"] and set(listed["refused"]) == {
            "absolute", "garbage", "a-folder", "linked"}


# -- strict JSON, non-finite outputs, :predict images ------------------------------------------------
def test_non_finite_outputs_are_a_422_and_every_body_is_strict_json(serving_exports):
    store = load_store(serving_exports.models_dir)
    with TestClient(create_app(store)) as c:
        cond = serving_exports.cond_kind
        for z in (3.3e38, -3.3e38, 1e30):
            r = c.post(f"/v1/models/{cond}:generate", json={"z": [[z] * 16], "label": 1, "format": "json"})
            json.loads(r.text, parse_constant=lambda name: pytest.fail(f"{name} in a JSON body"))
            if r.status_code != 200:
                assert r.status_code == 422 and "non-finite" in r.json()["error"]
        outs = [c.post(f"/v1/models/{cond}:generate", json={"z": [[3.3e38] * 16], "label": 1, "format": f})
                for f in ("json", "png")]
        assert {o.status_code for o in outs} <= {200, 422}
        # :predict applies the value-range check :encode applies
        r = c.post("/v1/models/vae:predict", json={"signature_name": "encode",
                                                   "instances": [[[[1.5]] * 28] * 28]})
        assert r.status_code == 400 and "value range [0, 1]" in r.json()["error"]


def test_the_finite_check_by_hand():
    from serving.errors import RequestError
    from serving.responses import finite

    ok = [np.zeros(3, "float32")]
    assert finite(ok, "generate") is ok
    for bad in (np.array([0.0, np.nan]), np.array([np.inf])):
        with pytest.raises(RequestError) as e:
            finite([np.zeros(2), bad], "generate")
        assert e.value.status == 422


# -- in-flight cap, cancelled runs, reloads ----------------------------------------------------------
def test_requests_past_the_in_flight_cap_get_503_with_retry_after(serving_exports, tmp_path):
    """Slots go to requests whose body has arrived (a body that never finishes holds none: issue
    27 item 5), so the cap is reached by real work: 24 complete requests at once against a cap of
    1 -- those past it are turned away at once with 503 + Retry-After, the rest answered."""
    server = ServeProcess(["--models", str(serving_exports.models_dir), "--max-in-flight", "1",
                           "--body-timeout", "5"], tmp_path / "serve.log").start()
    held = []
    try:
        host, port = "127.0.0.1", server.port
        for _ in range(2):  # two requests whose bodies never finish: they must not take the slot
            s = socket.create_connection((host, port))
            s.sendall(b"POST /v1/models/vae:generate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 100\r\n\r\n{")
            held.append(s)
        time.sleep(0.5)
        assert request(server.url, "POST", "/v1/models/vae:generate", {"n": 1})[0] == 200
        turned_away, answered = [], []
        for _ in range(5):  # rounds until the cap has been met (the first round nearly always)
            answers = []
            start = threading.Barrier(24)

            def ask(answers=answers, start=start):
                start.wait()
                answers.append(request(server.url, "POST", "/v1/models/vae:generate", {"n": 64, "seed": 1}))

            threads = [threading.Thread(target=ask) for _ in range(24)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted({status for status, _, _ in answers} - {200, 503}) == [], answers
            turned_away += [(h, b) for status, h, b in answers if status == 503]
            answered += [b for status, _, b in answers if status == 200]
            if turned_away:
                break
        assert turned_away and answered
        for headers, body in turned_away:
            assert headers.get("retry-after") == "2" and "busy" in json.loads(body)["error"]
        assert request(server.url, "GET", "/healthz")[0] == 200  # health is never capped
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_cancelled_onnx_run_stops_and_frees_its_thread(serving_exports):
    reader = ExportReader(serving_exports.vae)
    z = np.random.default_rng(0).standard_normal((20000, 16)).astype("float32")
    t0 = time.perf_counter()
    reader.run_feeds("generate", {"z": z[:2000]})
    full = (time.perf_counter() - t0) * 10  # the whole batch, uncancelled (estimated)
    token = reader.runtime.new_token()
    outcome = {}

    def work():
        started = time.perf_counter()
        try:
            reader.run_feeds("generate", {"z": z}, token)
            outcome["finished"] = True
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    t = threading.Thread(target=work)
    t.start()
    time.sleep(0.05)
    token.cancel()
    t.join(60)
    assert "error" in outcome and "terminate" in str(outcome["error"]).lower(), outcome
    assert outcome["seconds"] < max(0.5, full / 2), (outcome["seconds"], full)


def test_a_reload_asked_for_during_a_reload_is_not_dropped(serving_exports):
    from serving.state import ServerState

    calls = []

    def loader():
        calls.append(time.time())
        time.sleep(0.3)
        return load_store(serving_exports.models_dir)

    async def scenario():
        state = ServerState(loader, ServeSettings())
        await state.load_in_background()
        first = asyncio.create_task(state.reload())
        await asyncio.sleep(0.05)
        await state.reload()  # arrives while the first runs: queued, not dropped
        await first
        return state

    state = asyncio.run(scenario())
    assert len(calls) == 3 and state.store.models  # the load, the reload, and the queued one


def test_registry_reloads_reuse_one_verified_cache_folder(serving_exports, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.create_run(client.create_experiment(f"reload-{tmp_path.name}"))
    client.log_artifacts(run.info.run_id, str(serving_exports.vae), "export")
    name = f"reload-{tmp_path.name[-10:]}".replace("_", "-")
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/export", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", mv.version)
    cache = tmp_path / "cache"
    for _ in range(3):
        store = load_store(model_uris=[f"models:/{name}@champion"], tracking_uri=mlflow_server.uri,
                           cache_dir=cache)
        assert list(store.models) == [name]
    assert sorted(p.name for p in cache.iterdir()) == [f"{name}-v{mv.version}"]  # no temp folders left


def test_retrain_notifies_a_running_server_by_pid_file(serving_exports, tmp_path):
    from gen_keras.retrain import notify_server

    models = tmp_path / "models"
    models.mkdir()
    (models / "vae").symlink_to(serving_exports.vae, target_is_directory=True)
    pid_file = tmp_path / "serve.pid"
    server = ServeProcess(["--models", str(models), "--pid-file", str(pid_file)], tmp_path / "serve.log").start()
    try:
        assert int(pid_file.read_text()) == server.proc.pid
        (models / "second").symlink_to(serving_exports.vae, target_is_directory=True)  # a new publish
        assert notify_server(pid_file)
        deadline = time.time() + 30
        while time.time() < deadline:
            if "second" in json.loads(request(server.url, "GET", "/readyz")[2])["models"]:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the notified server did not load the newly published model")
    finally:
        server.stop()
    assert not notify_server(tmp_path / "missing.pid")  # a warning, never a failure


# -- files: torn state, locks, sidecars ---------------------------------------------------------------
def test_a_torn_checkpoint_state_is_an_error_naming_the_file(tmp_path, data_cache, mlflow_server):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train
    from gen_keras.training.checkpoint import read_state

    ckpt = tmp_path / "outputs" / "checkpoints" / "torn"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text('{"run_id": "abc", "epochs_do')
    with pytest.raises(ArtifactIntegrityError, match="state.json is unreadable") as e:
        read_state(ckpt)
    assert f"remove {ckpt}" in str(e.value)
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", [
        f"tracking.outputs_dir={tmp_path / 'outputs'}", "tracking.run_name=torn", "data.limit_train=128",
        "data.limit_test=64", "train.batch_size=64", "train.progress=false",
        "tracking.experiment=torn-state"])
    with pytest.raises(ArtifactIntegrityError, match="state.json is unreadable"):
        train(cfg, tracking_uri=mlflow_server.uri)
    from mlflow import MlflowClient

    exp = MlflowClient(mlflow_server.uri).get_experiment_by_name("torn-state")
    assert exp is None or not MlflowClient(mlflow_server.uri).search_runs([exp.experiment_id])  # no new run


def test_a_second_trainer_of_the_same_run_is_refused_at_once(tmp_path, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", [
        f"tracking.outputs_dir={tmp_path / 'outputs'}", "tracking.run_name=busy", "data.limit_train=128",
        "data.limit_test=64", "train.batch_size=64", "train.progress=false"])
    lock = tmp_path / "outputs" / "checkpoints" / ".busy.lock"
    with exclusive_lock(lock, "the first trainer"):
        with pytest.raises(LockBusy, match="training run 'busy' is already running"):
            train(cfg, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")


def test_retrain_jobs_for_one_model_conflict_whatever_their_serving_folder(tmp_path):
    from gen_keras.retrain import RetrainBusy, job_lock

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with job_lock("digits", uri):
        with pytest.raises(RetrainBusy, match="a retrain of 'digits'"):
            with job_lock("digits", uri):
                pass
        with job_lock("other-model", uri):
            pass  # another model: no conflict


def test_atomic_writes_leave_no_temporary_files_and_keep_the_old_file_on_failure(tmp_path):
    from gen_keras.files import atomic_write

    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError("disk full (planted)")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_empty_sha256_sidecar_is_a_clear_error(tmp_path):
    from gen_keras.artifacts import load_model

    (tmp_path / "model.keras").write_bytes(b"x")
    (tmp_path / "model.keras.sha256").write_text("")
    with pytest.raises(ArtifactIntegrityError, match="empty"):
        load_model(tmp_path / "model.keras")


def test_symlinked_files_in_an_export_are_refused(serving_exports, tmp_path):
    export = _copy(serving_exports.vae, tmp_path / "export")
    (export / "generate.onnx").unlink()
    (export / "generate.onnx").symlink_to(serving_exports.vae / "generate.onnx")
    with pytest.raises(ArtifactIntegrityError, match="symlink"):
        verify_export(export)


def test_onnx_runs_spread_a_costly_batch_over_the_cores_with_the_same_outputs(serving_exports):
    """The server's onnxruntime cuts a costly batch into one part per core (one-thread sessions);
    the joined parts equal the whole batch run at once, in order, for uneven cuts too."""
    from gen_keras.exported.runtimes import SPREAD_MIN_MS, OnnxRuntime

    reader = ExportReader(serving_exports.cond)  # a conv generator with a label input
    runtime = OnnxRuntime(reader.export_dir, reader.spec, threads=2)
    op = reader.spec.operations["generate"]
    rng = np.random.default_rng(3)
    for n in (2, 37, 64):
        feeds = {"z": rng.standard_normal((n, 16)).astype("float32")}
        if "label" in op.input_names:
            feeds["label"] = rng.integers(0, 10, n).astype(op.inputs[op.input_names.index("label")].dtype)
        whole = runtime.sessions["generate"].run(None, feeds)[0]  # one call, one thread
        cost = runtime.cost_ms["generate"]
        assert runtime.plan("generate", n) == (2 if cost[1] * n >= SPREAD_MIN_MS else 1)
        runtime.cost_ms["generate"] = (10 * SPREAD_MIN_MS, 10 * SPREAD_MIN_MS)  # costly: always spread
        assert runtime.plan("generate", n) == 2 and runtime.plan("generate", 1) == 0
        spread = runtime.run("generate", feeds)[0]
        runtime.cost_ms["generate"] = cost
        assert spread.shape == whole.shape
        np.testing.assert_allclose(spread, whole, rtol=0, atol=1e-5)
    # The MLP decoder's images are cheap: a request of a few runs on the calling thread.
    vae = ExportReader(serving_exports.vae).runtime
    if vae.parts > 1:
        assert vae.cost_ms["generate"][0] < SPREAD_MIN_MS and vae.plan("generate", 1) == 1
    single = OnnxRuntime(reader.export_dir, reader.spec, threads=1)
    assert single.plan("generate", 64) == 1
