"""A REAL two-process MultiWorkerMirroredStrategy run on localhost: two ``gen-keras train``
processes with their own TF_CONFIG and free ports, logging to a real MLflow server.

What it shows: the run finishes (Keras 3 ``fit`` is broken under MWMS upstream,
keras-team/keras#20585; gen_keras/models/base.py works around it), MLflow holds exactly ONE
run, only the chief writes (MLflow, checkpoints, model, export), and the chief's final weights
equal a single-process run with the same global batch and seed.

Why not bit-for-bit equal: the workers' gradients are summed by an all-reduce, a different
floating-point summation order than one device's reduction over the whole batch (~1e-7
relative). Everything else is identical by construction: the same examples per global batch
(DATA sharding), the same noise (per-replica slices of one global draw), the same initial
weights. The run uses SGD: its update is lr * g, so those rounding differences stay tiny and a
wrongly scaled gradient (e.g. a loss averaged per worker instead of over the global batch)
would show in full. Adam is the wrong probe here: it normalizes the gradient, so it hides a
scale error, and for weights whose gradient is ~0 (units behind a dead ReLU) it turns rounding
noise into +-lr steps (seen: 190 of 800k weights off by up to 2e-4 after 8 steps, the rest
<= 6e-6). With SGD, seen here: max |dw| = 1.5e-8. Asserted: <= 1e-6, while the weights move
by > 0.1 over the run.
"""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gen_keras.tracking import logged_config

from conftest import PYTHON, ROOT, free_port

VAE = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"
RUN = ["train.epochs=2", "data.limit_train=256", "data.limit_test=64", "train.batch_size=64",
       "train.optimizer=sgd", "train.learning_rate=0.0003",
       # float32: under mixed_bfloat16 each worker's partial weight gradient leaves its matmul
       # rounded to bfloat16 (8 bits) before the all-reduce, so exact equality cannot hold.
       "train.mixed_precision=none",
       "train.progress=false", "train.evaluate_at_end=false", "tracking.run_name=two-workers"]


class RecordingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to the MLflow server and records who sent it (the bearer token
    each worker's MLflow client sends, from its own MLFLOW_TRACKING_TOKEN)."""

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.seen: list[tuple[str, str, str]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def senders(self) -> set[str]:
        return {who for who, _, _ in self.seen}


class _Forward(http.server.BaseHTTPRequestHandler):
    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append((self.headers.get("Authorization", ""), self.command, self.path))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        request = urllib.request.Request(self.server.upstream + self.path, data=body,
                                         method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                status, reply_headers, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, reply_headers, data = e.code, e.headers, e.read()
        self.send_response(status)
        for k, v in reply_headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, *args):
        pass


def start_worker(index: int, ports: list[int], tmp_path: Path, tracking_uri: str) -> subprocess.Popen:
    home = tmp_path / f"worker{index}"
    home.mkdir()
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                 "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_TOKEN": f"worker-{index}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    sets = [*RUN, "distribute.strategy=multi_worker", f"tracking.outputs_dir={home / 'outputs'}",
            "tracking.experiment=multi-worker", "train.intra_op_threads=1",
            "train.inter_op_threads=1"]
    cmd = [str(Path(PYTHON).with_name("gen-keras")), "train", "--config", str(VAE),
           "--tracking-uri", tracking_uri, *[a for s in sets for a in ("--set", s)]]
    return subprocess.Popen(cmd, cwd=home, env=env, stdout=open(home / "log.txt", "wb"),
                            stderr=subprocess.STDOUT)


def test_two_workers_log_one_run_and_match_a_single_process(tmp_path, mlflow_server, data_cache):
    import keras
    from mlflow import MlflowClient

    from gen_keras.artifacts import load_model
    from gen_keras.config_loader import load_config
    from gen_keras.data import mnist10k
    from gen_keras.data.sources import default_data_dir
    from gen_keras.models import build_model
    from gen_keras.training import train

    mnist10k.builder(default_data_dir())  # prepared once here, not raced by two workers
    proxy = RecordingProxy(mlflow_server.uri)
    ports = [free_port(), free_port()]
    workers = [start_worker(i, ports, tmp_path, proxy.uri) for i in range(2)]
    try:
        # Meanwhile, in this process: the same config on one device.
        single = train(load_config(VAE, [*RUN, "train.export_at_end=false",
                                         "tracking.experiment=multi-worker-reference",
                                         f"tracking.outputs_dir={tmp_path / 'single'}"]),
                       tracking_uri=mlflow_server.uri)
        for i, w in enumerate(workers):
            rc = w.wait(timeout=420)
            log = (tmp_path / f"worker{i}" / "log.txt").read_text(errors="replace")
            assert rc == 0, f"worker {i} exited {rc}:\n{log[-4000:]}"
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        proxy.shutdown()

    # Exactly one MLflow run, finished, with the cluster's shape in its params.
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("multi-worker")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = logged_config(client, run.info.run_id)  # the run's config.yaml
    assert (params["derived.workers"], params["derived.replicas"],
            params["derived.per_replica_batch"]) == ("2", "2", "32")
    # tf.distribute.MultiWorkerMirroredStrategy is an alias of this class.
    assert params["derived.strategy"] == "CollectiveAllReduceStrategy"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")] == [1, 2]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model", "export"}

    # Only the chief wrote anything, and the other worker never talked to the tracking server.
    assert proxy.senders() == {"Bearer worker-0"}, sorted(proxy.senders())
    assert not (tmp_path / "worker1" / "outputs").exists()
    assert not (tmp_path / "worker1" / "mlflow").exists()
    chief_out = tmp_path / "worker0" / "outputs"
    for part in ("checkpoints/two-workers/state.json", "models/two-workers/model.keras",
                 "exports/two-workers/manifest.json"):
        assert (chief_out / part).exists(), part

    # The chief's weights equal the single-process run's (see the module docstring).
    chief = load_model(chief_out / "models" / "two-workers" / "model.keras")
    assert int(chief.optimizer.iterations.numpy()) == int(single.model.optimizer.iterations.numpy()) == 8
    fresh = load_config(VAE, RUN)
    keras.utils.set_random_seed(fresh.train.seed)
    initial = build_model(fresh.model).get_weights()
    diff = max(float(np.abs(a - b).max()) for a, b in zip(chief.get_weights(), single.model.get_weights()))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(chief.get_weights(), initial))
    assert moved > 1e-4  # 8 SGD steps changed the weights, far beyond the 1e-6 tolerance below
    assert diff <= 1e-6, f"multi-worker weights differ from the single-process run by {diff}"
    assert run.data.metrics["epoch/loss"] == pytest.approx(
        single.history["loss"][-1], rel=1e-4)
