"""Faults injected into REAL processes against a REAL MLflow server on loopback: a SIGKILL in the
middle of an epoch, the tracking server going away during training, a failed export write,
corrupt files in a folder data set. (The non-finite loss is in test_retrain.py, where it must
also leave the registered champion untouched.)"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.errors import ExportError
from gen_keras.export import export_model
from gen_keras.exported.manifest import verify_export
from gen_keras.plan import resolve_plan
from gen_keras.training.checkpoint import read_state

from conftest import PYTHON, ROOT, MlflowServer, free_port, wait_http

GEN_KERAS = str(Path(PYTHON).with_name("gen-keras"))
GAN_CONFIG = ROOT / "pipelines" / "configs" / "gan_mnist10k.yaml"
VAE_CONFIG = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"
STEPS = 1024 // 64  # steps per epoch of the runs below (data.limit_train / train.batch_size)


class ScriptServer(MlflowServer):
    """The team server script itself (mlflow/server.sh) on a free port; the tests stop it and
    start it again on the same port and store."""

    def start(self, timeout: float = 180.0) -> "ScriptServer":
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}"}
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "mlflow" / "server.sh"),
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"),
             "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        wait_http(f"{self.uri}/health", timeout, self.proc)
        return self


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ScriptServer(tmp_path_factory.mktemp("fault_server")).start()
    yield s
    s.stop()


class TrainProcess:
    """``gen-keras train`` in a subprocess; its output is read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, data_cache: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEN_KERAS_CACHE": str(data_cache),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.proc = subprocess.Popen([GEN_KERAS, "train", *args], cwd=cwd, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 240.0) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"exited {self.proc.returncode} before {text!r}:\n{self.output[-3000:]}")
            if time.time() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output[-3000:]}")
            time.sleep(0.02)

    def finish(self, timeout: float = 300.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


def kill_in_epoch_2(args: list[str], cwd: Path, data_cache: Path, ckpt_dir: Path) -> dict:
    """``gen-keras train args`` SIGKILLed as epoch 2 starts (the line is printed after epoch 1's
    checkpoint); returns the checkpoint state it left behind: one epoch done, unfinished."""
    first = TrainProcess(args, cwd, data_cache)
    first.wait_for("Epoch 2/")
    first.proc.send_signal(signal.SIGKILL)
    assert first.finish() == -signal.SIGKILL
    killed = read_state(ckpt_dir)
    assert killed["epochs_done"] == 1 and not killed["finished"], killed
    return killed


def overrides(out: Path, run_name: str, epochs: int = 3) -> list[str]:
    return [f"train.epochs={epochs}", "data.limit_train=1024", "data.limit_test=128",
            "train.batch_size=64", f"tracking.outputs_dir={out}", f"tracking.run_name={run_name}",
            "train.export_at_end=false", "train.evaluate_at_end=false"]


def train_args(config: Path, out: Path, uri: str, run_name: str) -> list[str]:
    args = ["--config", str(config), "--tracking-uri", uri]
    for item in overrides(out, run_name):
        args += ["--set", item]
    return args


def the_run(client: MlflowClient, run_name: str):
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"attributes.run_name = '{run_name}'")
    assert len(runs) == 1, f"expected ONE MLflow run named {run_name}, found {len(runs)}"
    return runs[0]


def epochs_logged(client: MlflowClient, run_id: str, metric: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def optimizer_iterations(ckpt_prefix: str) -> dict[str, int]:
    reader = tf.train.load_checkpoint(ckpt_prefix)
    return {k.split("/")[0]: int(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()
            if k.endswith("/_iterations/.ATTRIBUTES/VARIABLE_VALUE")}


class Plug:
    """A TCP forwarder to the MLflow server on a port of its own. Pulling it out closes the port
    and resets every open connection, so clients see what they see when the server goes away
    (connection refused); plugging it back in takes no server restart."""

    def __init__(self, target_port: int):
        self.target, self.port, self.conns, self.listener = target_port, free_port(), [], None
        self.plug_in()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plug_in(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def pull_out(self) -> None:
        for sock in [self.listener, *self.conns]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # also wakes the thread blocked in accept()
            except OSError:
                pass
            sock.close()
        self.conns = []

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ----------------------------------------------------------------------------------------------
def test_sigkill_mid_epoch_resumes_same_run_with_both_optimizers(server, tmp_path, data_cache,
                                                                 capfd, monkeypatch):
    """A GAN (two optimizers) is killed with SIGKILL during epoch 2; the same command resumes
    from the epoch-1 checkpoint, in the SAME MLflow run, and ends after the planned 3 epochs
    with every epoch logged exactly once and both optimizers' step counters intact."""
    out, name = tmp_path / "out", "gan-killed"
    args = train_args(GAN_CONFIG, out, server.uri, name)
    ckpt_dir = out / "checkpoints" / name
    killed = kill_in_epoch_2(args, tmp_path, data_cache, ckpt_dir)
    assert optimizer_iterations(str(ckpt_dir / "tf" / "ckpt-1")) == {
        "d_optimizer": STEPS, "g_optimizer": STEPS}

    # The same command again (in this process: it saves a TensorFlow start-up).
    from gen_keras.cli import main as cli

    monkeypatch.chdir(tmp_path)
    assert cli(["train", *args]) == 0
    output = capfd.readouterr().out
    assert "Epoch 1/3" not in output and "Epoch 2/3" in output and "Epoch 3/3" in output

    done = read_state(ckpt_dir)
    assert done["finished"] and done["epochs_done"] == 3 and done["run_id"] == killed["run_id"]
    # Restored optimizers continue counting: 3 epochs' worth of steps, not 2 (a fresh optimizer).
    assert optimizer_iterations(str(ckpt_dir / "tf" / "ckpt-3")) == {
        "d_optimizer": 3 * STEPS, "g_optimizer": 3 * STEPS}
    client = MlflowClient(server.uri)
    run = the_run(client, name)
    assert run.info.run_id == killed["run_id"] and run.info.status == "FINISHED"
    assert run.data.tags["gen_keras.resumed_from_epoch"] == "1"
    for metric in ("epoch/d_loss", "epoch/g_loss", "epoch/val_d_loss"):
        assert epochs_logged(client, run.info.run_id, metric) == [1, 2, 3], metric


def test_export_write_failure_keeps_previous_export(tmp_path):
    """A failure half way through an export (planted after the files, before the manifest)
    publishes nothing and leaves the previous export at the same place intact and verifiable."""
    from gen_keras.models import build_model

    cfg = load_config(GAN_CONFIG, ["model.g_hidden=[32]", "model.d_hidden=[32]"])  # 1 endpoint
    target = tmp_path / "exports" / "digits"
    export_model(build_model(cfg.model), target, run_id="first")
    before = verify_export(target).manifest
    with pytest.raises(ExportError, match="planted failure"):
        export_model(build_model(cfg.model), target, run_id="second", overwrite=True,
                     _fail_after="files")
    after = verify_export(target).manifest
    assert after == before and after["source_run_id"] == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["digits"]  # no temp folder left


def test_corrupt_folder_images_are_skipped_counted_and_reported(server, tmp_path, data_cache):
    """A folder data set with a truncated PNG, a non-image with a .png name and an empty .jpg:
    training runs on the readable images and the run records what was skipped."""
    from PIL import Image

    from gen_keras.data import load_split_arrays
    from gen_keras.training import train

    images, labels = load_split_arrays(load_config(VAE_CONFIG, ["data.limit_test=120"]), "test",
                                       limit=120)
    folder = tmp_path / "digits"
    for i, (x, y) in enumerate(zip(images, labels)):
        (folder / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[..., 0] * 255).round().astype(np.uint8)).save(folder / str(y) / f"{i}.png")
    good = (folder / "3" / next(p.name for p in (folder / "3").iterdir())).read_bytes()
    (folder / "3" / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "5" / "not_an_image.png").write_bytes(b"this is a text file, not a PNG\n" * 10)
    (folder / "7" / "empty.jpg").write_bytes(b"")
    bad = {"truncated.png", "not_an_image.png", "empty.jpg"}

    cfg = load_config(VAE_CONFIG, [f"data.dataset=folder:{folder}", "train.epochs=1",
                                   "train.batch_size=32", f"tracking.outputs_dir={tmp_path / 'out'}",
                                   "tracking.run_name=folder-run", "train.progress=false",
                                   "train.export_at_end=false", "train.evaluate_at_end=false",
                                   "model.filters=8", "model.hidden=32"])
    result = train(cfg, tracking_uri=server.uri, verbose=0)

    client = MlflowClient(server.uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["gen_keras.data_skipped_files"] == "3"
    assert run.data.metrics["data/skipped_files"] == 3
    assert {Path(p).name for p in run.data.tags["gen_keras.data_skipped_examples"].split(", ")} == bad
    # The readable 120 images were used: 96 train + 24 test (test_fraction 0.2), one epoch.
    steps = [m.step for m in client.get_metric_history(result.run_id, "epoch/loss")]
    assert steps == [1] and np.isfinite(result.final_metrics["loss"])


def test_mlflow_outage_buffers_then_sync_delivers(server, tmp_path, data_cache, caplog):
    """The tracking server process stops after epoch 1: training goes on with a warning, saves
    the model, keeps the undelivered records in pending.json and names the sync command; once the
    server is restarted on the same port and store, ``gen-keras sync`` delivers every epoch
    exactly once and closes the run."""
    import logging

    from gen_keras.cli import main as cli
    from gen_keras.training import train

    out, name = tmp_path / "out", "gan-outage"
    cfg = load_config(GAN_CONFIG, overrides(out, name))
    sync = ["sync", "--run-name", name, "--outputs-dir", str(out), "--tracking-uri", server.uri]

    def stop_after_epoch_1():
        while ((read_state(out / "checkpoints" / name) or {}).get("epochs_done") or 0) < 1:
            time.sleep(0.01)
        server.stop()

    stopper = threading.Thread(target=stop_after_epoch_1, daemon=True)
    stopper.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gen_keras.training"), \
                pytest.warns(RuntimeWarning, match="MLflow is unreachable"):
            train(cfg, tracking_uri=server.uri, verbose=0)
        stopper.join(60)
        assert cli(sync) == 1  # still down: nothing lost, still pending
        assert (out / "checkpoints" / name / "pending.json").exists()
    finally:
        stopper.join(60)
        server.start()  # back on the same port and store for what follows
    assert f"gen-keras sync --run-name {name} --checkpoint-dir {out / 'checkpoints'}" in caplog.text
    ckpt_dir = out / "checkpoints" / name
    state = read_state(ckpt_dir)
    assert state["finished"] and state["epochs_done"] == 3
    assert (ckpt_dir / "pending.json").exists()
    model = load_model(out / "models" / name / "model.keras")  # the model is never lost
    assert model.config.kind == "gan"

    client = MlflowClient(server.uri)
    assert epochs_logged(client, state["run_id"], "epoch/d_loss") in ([], [1])  # before the stop
    assert client.get_run(state["run_id"]).info.status == "RUNNING"

    assert cli(sync) == 0
    assert not (ckpt_dir / "pending.json").exists()
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED"
    for metric in ("epoch/d_loss", "epoch/g_loss", "epoch/val_d_loss"):
        assert epochs_logged(client, run.info.run_id, metric) == [1, 2, 3], metric
    assert "test/d_loss" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/model.keras", "model/model.keras.sha256"}
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/epoch_002.png", "samples/epoch_003.png"} <= samples
    # Nothing left to send: a second sync is a no-op that still succeeds.
    assert cli(sync) == 0


def test_kill_between_checkpoint_and_state_resumes_from_the_state(tmp_path):
    """``ckpt-N`` is written before ``state.json``: a kill between the two must resume from the
    epoch the state vouches for (N-1), not from the orphan ``ckpt-N`` whose logs are unknown."""
    from gen_keras.models import build_model
    from gen_keras.training.checkpoint import EpochCheckpoint

    cfg = load_config(VAE_CONFIG, ["model.filters=8", "model.hidden=32"])

    def fresh():
        model = build_model(cfg.model)
        model.compile_for_training(resolve_plan(cfg))
        return model, EpochCheckpoint(tmp_path / "ckpt", model, "run-1", {"c": 1})

    model, ckpt = fresh()
    ckpt.on_epoch_end(0, {"loss": 3.0})  # epoch 1 committed
    model.optimizer.iterations.assign(7)
    ckpt.manager.save(checkpoint_number=2)  # epoch 2's checkpoint, then SIGKILL: no state
    model, ckpt = fresh()
    assert ckpt.restore() == 1 and int(model.optimizer.iterations.numpy()) == 0
    for epoch in (1, 2, 3):  # epochs 2..4 trained again; the manager keeps rotating cleanly
        model.optimizer.iterations.assign(10 * (epoch + 1))
        ckpt.on_epoch_end(epoch, {"loss": 1.0})
    model, ckpt = fresh()
    assert ckpt.restore() == 4 and int(model.optimizer.iterations.numpy()) == 40
    assert sorted(p.name for p in (tmp_path / "ckpt" / "tf").glob("*.index")) == [
        "ckpt-3.index", "ckpt-4.index"]


def test_mlflow_outage_during_training_is_retried_at_epoch_end(server, tmp_path, data_cache,
                                                               caplog):
    """The server is unreachable from the end of epoch 1 to the end of epoch 3: training goes on
    with a warning, and the buffered records reach the server at the next epoch end after it is
    back, in order, each epoch once; no sync needed."""
    import logging

    from gen_keras.training import train

    plug, name, out = Plug(server.port), "gan-flaky", tmp_path / "out"
    cfg = load_config(GAN_CONFIG, overrides(out, name))
    ckpt_dir = out / "checkpoints" / name
    seen = []

    def flaky_network():  # pulled out as epoch 2 starts, back once epoch 3 is checkpointed
        for epochs_done, action in ((1, plug.pull_out), (3, plug.plug_in)):
            while ((read_state(ckpt_dir) or {}).get("epochs_done") or 0) < epochs_done:
                time.sleep(0.01)
            action()
            seen.append(epochs_done)

    watcher = threading.Thread(target=flaky_network, daemon=True)
    watcher.start()
    with caplog.at_level(logging.WARNING, logger="gen_keras.tracking"), \
            pytest.warns(RuntimeWarning, match="MLflow is unreachable"):
        result = train(cfg, tracking_uri=plug.uri, verbose=0)
    watcher.join(5)
    assert seen == [1, 3]
    assert "MLflow is reachable again" in caplog.text
    assert not (ckpt_dir / "pending.json").exists()
    client = MlflowClient(server.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for metric in ("epoch/d_loss", "epoch/g_loss", "epoch/val_d_loss"):
        assert epochs_logged(client, run.info.run_id, metric) == [1, 2, 3], metric
    assert {"samples/epoch_001.png", "samples/epoch_002.png", "samples/epoch_003.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "samples")}
