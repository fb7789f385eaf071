"""How a run finds its store, its checkpoint and its data -- each resolved once -- and what issue
#27's probe got through there, each with a test that failed before its fix: ``gen-keras retrain``
on the default store (no MLFLOW_TRACKING_URI, a fresh folder), a retrain lock that depended on how
the store was spelled, a tracking server that took minutes to be reported unreachable, and a killed
``gen-keras train`` that the same command did not resume. Real processes, a real SQLite store, real
training on slices of mnist10k."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from gen_keras.checkpoint_state import read_state
from gen_keras.config_loader import load_config

from conftest import PYTHON, ROOT, free_port

GEN_KERAS = str(Path(PYTHON).with_name("gen-keras"))
VAE_CONFIG = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"
# A small VAE on a slice of mnist10k, every tracking setting left at its default.
TINY = """\
model: {kind: vae, image_shape: [28, 28, 1], latent_dim: 8, filters: 8, hidden: 64}
data: {dataset: mnist10k, limit_train: 256, limit_test: 64}
train: {epochs: 1, batch_size: 64, progress: false, evaluate_at_end: false}
"""


def env_without_store(data_cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PYTHONUNBUFFERED": "1", "GEN_KERAS_CACHE": str(data_cache),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


# -- the store: one function, one spelling ---------------------------------------------------------
def test_one_store_has_one_spelling_and_resolving_creates_nothing(tmp_path, monkeypatch):
    from gen_keras.stores import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    default = tracking_uri()
    assert default == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"
    assert not (tmp_path / "mlflow").exists()
    spellings = [f"sqlite:///{tmp_path}/mlflow//mlflow.db", f"sqlite:///{tmp_path}/mlflow/./mlflow.db",
                 f"sqlite:///{tmp_path}/x/../mlflow/mlflow.db", "sqlite:///mlflow/mlflow.db"]
    assert {tracking_uri(s) for s in spellings} == {default}
    # The command line wins over the config, which wins over the environment.
    assert tracking_uri("http://Mlflow.internal:5000/", "sqlite:///other.db") == "http://mlflow.internal:5000"
    assert tracking_uri(None, "sqlite:///other.db") == f"sqlite:///{tmp_path.resolve() / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(None, "") == "http://127.0.0.1:5000"


def test_a_new_store_is_a_copy_of_the_empty_store_and_nothing_is_replaced(tmp_path, monkeypatch):
    """ensure_store makes a new SQLite store from the empty store of this MLflow version (made
    once in the cache by MLflow's own migrations): MLflow opens it as its own, with the Default
    experiment its own way and a registry; an existing file is never replaced."""
    from mlflow.store.db import utils as db_utils

    from gen_keras.stores import empty_store_template, ensure_store

    monkeypatch.setenv("GEN_KERAS_CACHE", str(tmp_path / "cache"))
    ensure_store(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    template = empty_store_template()
    assert template.parent == tmp_path / "cache" / "mlflow_stores" and template.is_file()
    made = template.stat().st_mtime_ns
    store = tmp_path / "b" / "mlflow.db"
    ensure_store(f"sqlite:///{store}")
    assert template.stat().st_mtime_ns == made and store.read_bytes() == template.read_bytes()
    assert sorted(p.name for p in store.parent.iterdir()) == ["mlflow.db"]  # no part file left
    engine = db_utils.create_sqlalchemy_engine(f"sqlite:///{store}")
    try:
        db_utils._verify_schema(engine)  # at MLflow's latest schema revision
    finally:
        engine.dispose()
    client = MlflowClient(f"sqlite:///{store}")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    run = client.create_run(client.create_experiment("x"))
    client.log_metric(run.info.run_id, "m", 1.5)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    assert client.create_registered_model("digits").name == "digits"
    # A file already there (another process's store, or anything) is kept as it is.
    other = tmp_path / "c" / "mlflow.db"
    other.parent.mkdir()
    other.write_bytes(b"not mine")
    ensure_store(f"sqlite:///{other}")
    assert other.read_bytes() == b"not mine"


def test_the_retrain_lock_is_keyed_on_the_resolved_store(tmp_path, monkeypatch, data_cache):
    """#27.9: ``.../mlflow//mlflow.db`` and ``.../mlflow/mlflow.db`` (and the default store, and a
    relative spelling) are one store, so one lock: the second job exits 4 having done nothing."""
    from gen_keras.retrain import RetrainBusy, job_lock

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "retrain.yaml").write_text(TINY)
    spellings = [f"sqlite:///{tmp_path}/mlflow//mlflow.db", f"sqlite:///{tmp_path}/mlflow/./mlflow.db",
                 "sqlite:///mlflow/mlflow.db", None]  # None: the README's default store
    with job_lock("digits", f"sqlite:///{tmp_path}/mlflow/mlflow.db"):
        for other in spellings:
            with pytest.raises(RetrainBusy, match="a retrain of 'digits'"), job_lock("digits", other):
                pass
        r = subprocess.run([GEN_KERAS, "retrain", "--config", "retrain.yaml", "--model-name", "digits",
                            "--tracking-uri", spellings[0]], cwd=tmp_path, env=env_without_store(data_cache),
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stderr[-2000:]
    assert "already running" in r.stderr and not (tmp_path / "outputs").exists()


# -- an unreachable server: a clear error within 15 s ----------------------------------------------
class HungServer:
    """Accepts connections and never answers: a tracking server that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns = []
        self.first_contact = None  # time.monotonic() of the first connection
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
                self.first_contact = self.first_contact or time.monotonic()
            except OSError:
                return

    def close(self):
        for s in [self.sock, *self.conns]:
            s.close()


@pytest.mark.parametrize("server", ["hung", "down"])
def test_an_unreachable_tracking_server_is_reported_within_15_s(server, tmp_path, data_cache):
    """#27.14: a reader of ``models:/`` (here ``gen-keras batch``) against a server that hangs
    says so, naming the bound, within 15 s (it took 248 s: MLflow's own retries); against one that
    is down, at once."""
    hung = HungServer() if server == "hung" else None
    uri = hung.uri if hung else f"http://127.0.0.1:{free_port()}"
    try:
        started = time.monotonic()
        r = subprocess.run([GEN_KERAS, "batch", "generate", "--export", "models:/digits@champion",
                            "--count", "4", "--out", str(tmp_path / "out"), "--tracking-uri", uri],
                           env=env_without_store(data_cache), capture_output=True, text=True, timeout=300)
        ended = time.monotonic()
    finally:
        if hung:
            hung.close()
    took = ended - started
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"the MLflow tracking server at {uri} did not answer (" in r.stderr, r.stderr[-2000:]
    assert "a command waits at most 15 s for it" in r.stderr
    if hung:  # the wait itself: from the command's first connection to its end
        assert hung.first_contact is not None
        assert ended - hung.first_contact < 15 + 3, (ended - hung.first_contact, took)
    # the whole command: the bound plus its own start-up (6-7 s on a loaded 2-core host)
    assert took < 15 + 15, took
    if server == "down":  # nothing listens: nothing to wait for, well under the 15 s bound
        assert took < 10, took  # (the command's own start-up took 6 s on a loaded 2-core host)


# -- retraining with the README's defaults ---------------------------------------------------------
def test_retrain_on_the_default_store_from_a_fresh_folder(tmp_path, monkeypatch, data_cache):
    """#27.3: no MLFLOW_TRACKING_URI, no --tracking-uri, a fresh working folder: the job trains,
    registers, promotes and publishes into ./mlflow/mlflow.db -- no stray ./mlflow.db. The same
    store named on the command line (spelled another way, from another folder) gates the next slot."""
    from gen_keras.exported.manifest import verify_export
    from gen_keras.retrain import retrain

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "retrain.yaml").write_text(TINY)
    r = subprocess.run([GEN_KERAS, "retrain", "--config", "retrain.yaml", "--model-name", "digits",
                        "--num-samples", "32"], cwd=fresh, env=env_without_store(data_cache),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "PROMOTED" in r.stdout and "Traceback" not in r.stderr
    assert sorted(p.name for p in fresh.iterdir()) == ["mlflow", "outputs", "retrain.yaml"]
    store = f"sqlite:///{fresh / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(store, registry_uri=store)
    v1 = client.get_model_version_by_alias("digits", "champion")
    assert str(v1.version) == "1" and v1.source.startswith("models:/m-")
    assert client.get_run(v1.run_id).info.status == "FINISHED"
    assert verify_export(fresh / "outputs" / "serving" / "digits").manifest["source_run_id"] == v1.run_id

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(fresh / "retrain.yaml", [f"tracking.outputs_dir={fresh / 'outputs'}"])
    kept = retrain(cfg, "digits", slot="next", margin=1e6, num_samples=32, verbose=0,
                   tracking_uri=f"sqlite:///{fresh}/mlflow//mlflow.db",
                   serve_dir=fresh / "outputs" / "serving")
    assert (kept.decision, kept.version, kept.champion_version) == ("kept", "2", "1")
    assert list(elsewhere.iterdir()) == []  # no store, no outputs where the job ran from


# -- a killed `gen-keras train`: the same command resumes it ---------------------------------------
class TrainProcess:
    """``gen-keras train`` in a subprocess, its output read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, data_cache: Path):
        self.proc = subprocess.Popen([GEN_KERAS, "train", *args], cwd=cwd, env=env_without_store(data_cache),
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def wait_for(self, text: str, timeout: float = 300.0) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.time() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.02)


def test_a_killed_train_is_resumed_by_the_same_command_and_a_dead_run_is_marked_killed(
        tmp_path, monkeypatch, capfd, data_cache):
    """#27.17: ``gen-keras train`` without a run name prints its run and the exact resume command;
    SIGKILLed in epoch 2, its MLflow run is marked KILLED by the next start in the same folder (a
    new run asked for with --new-run), and the SAME command as the killed one resumes it, in the
    same MLflow run, from epoch 1 -- no third run."""
    from gen_keras.cli import main as cli

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--config", str(VAE_CONFIG), "--tracking-uri", store]
    for item in ["train.epochs=2", "data.limit_train=512", "data.limit_test=64", "train.batch_size=64",
                 "model.hidden=64", "model.filters=8", f"tracking.outputs_dir={tmp_path / 'out'}",
                 "train.export_at_end=false", "train.evaluate_at_end=false", "tracking.experiment=resume"]:
        args += ["--set", item]

    first = TrainProcess(args, tmp_path, data_cache)
    first.wait_for("Epoch 2/")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(60)
    printed = "".join(first.lines)
    name = re.search(r"^run (\S+) \(new; MLflow run (\w+) in ", printed, re.MULTILINE)
    assert name, printed[-3000:]
    name, killed_id = name.groups()
    assert f"--resume {name}" in printed and f"--tracking-uri {store}" in printed
    state = read_state(tmp_path / "out" / "checkpoints" / name)
    assert state["epochs_done"] == 1 and not state["finished"] and state["run_id"] == killed_id
    client = MlflowClient(store)
    assert client.get_run(killed_id).info.status == "RUNNING"  # nothing could tell MLflow

    monkeypatch.chdir(tmp_path)
    assert cli(["train", *args, "--new-run"]) == 0
    out = capfd.readouterr().out
    assert f"run {name} " not in out and "(new; MLflow run" in out
    killed = client.get_run(killed_id)
    assert killed.info.status == "KILLED" and "during epoch 2" in killed.data.tags["gen_keras.stopped"]

    assert cli(["train", *args]) == 0  # the killed run's own command, again
    out = capfd.readouterr().out
    assert f"run {name} (resumed from epoch 1; MLflow run {killed_id}" in out
    assert "Epoch 1/2" not in out and "Epoch 2/2" in out
    resumed = client.get_run(killed_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["gen_keras.resumed_from_epoch"] == "1"
    assert sorted(m.step for m in client.get_metric_history(killed_id, "epoch/loss")) == [1, 2]
    runs = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


# -- the data: the end-of-training evaluation reads the run's own test split -----------------------
def test_the_evaluation_reads_the_test_split_the_trainer_built(data_cache):
    from gen_keras.data import load_split_arrays, make_datasets
    from gen_keras.eval import _test_split

    cfg = load_config(VAE_CONFIG, ["data.limit_test=150", "data.limit_train=256", "train.batch_size=64"])
    data = make_datasets(cfg)
    images, labels = _test_split(cfg, data)
    want_images, want_labels = load_split_arrays(cfg, "test", limit=150)
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    images, labels = _test_split(cfg, data, limit=40)
    np.testing.assert_array_equal(images, want_images[:40])
    assert labels.dtype == np.int32 and len(labels) == 40
