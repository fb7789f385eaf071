"""The scheduled retrain job against a REAL MLflow server and registry, on mnist10k slices.

The tests form one schedule, in order: two jobs start at once (one runs and promotes v1 as the
first champion, the other is refused by the lock); the next slot keeps the champion (its margin
cannot be met); a better-trained slot replaces it; a re-run of a finished slot changes nothing;
a slot whose loss turns non-finite fails and leaves the champion and the serving folder alone;
a publish that fails half way leaves the previous export serving.
"""
from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import time
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.eval import gate_score
from gen_keras.exported.manifest import verify_export
from gen_keras.files import lock_is_held
from gen_keras.models.registry import register_model
from gen_keras.models.vae import VAE, VAEConfig
from gen_keras.retrain import (
    EXIT_BUSY,
    EXIT_KEPT,
    EXIT_PROMOTED,
    RetrainError,
    decide,
    job_lock_path,
    publish_champion,
    retrain,
    served_version,
    slot_run_name,
)
from gen_keras.training.checkpoint import read_state

from conftest import PYTHON, ROOT

BIN = Path(PYTHON).parent
NAME = "digits"
SAMPLES = 64  # test images the gate's NLL uses (IWAE, k = 100)
CONFIG = """\
model: {kind: KIND, image_shape: [28, 28, 1], latent_dim: 8, filters: 8, hidden: 64}
data: {dataset: mnist10k, limit_train: 512, limit_test: 128}
train: {epochs: 1, batch_size: 64, progress: false, evaluate_at_end: false}
tracking: {experiment: retrain-tests, outputs_dir: OUT}
"""


# A VAE whose learning rate jumps to 1e30 when epoch 2 starts (step 8: 512 images / 64 per
# step): Adam then moves every weight by ~1e30, and the next forward pass overflows float32 --
# a real divergence, planted on purpose.
@dataclasses.dataclass
class LrSpikeVAEConfig(VAEConfig):
    kind: str = "vae_lr_spike_test"


class SpikeAtEpoch2(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return tf.where(step >= 8, 1e30, 1e-3)


@register_model("vae_lr_spike_test", LrSpikeVAEConfig)
class LrSpikeVAE(VAE):
    def compile_for_training(self, plan):
        super().compile_for_training(plan)
        self.compile(optimizer=keras.optimizers.Adam(SpikeAtEpoch2()))
        self.optimizer.build(self.trainable_variables)


@pytest.fixture(scope="module")
def job(mlflow_server, tmp_path_factory, data_cache):
    root = tmp_path_factory.mktemp("retrain")
    config = root / "retrain.yaml"
    config.write_text(CONFIG.replace("KIND", "vae").replace("OUT", str(root / "outputs")))
    return {"uri": mlflow_server.uri, "root": root, "config": config, "serve": root / "serving",
            "client": MlflowClient(mlflow_server.uri, registry_uri=mlflow_server.uri)}


def gate_tags(client, version: str) -> dict:
    return {k[len("gate."):]: v for k, v in client.get_model_version(NAME, version).tags.items()
            if k.startswith("gate.")}


def versions(client) -> list[str]:
    return sorted((v.version for v in client.search_model_versions(f"name='{NAME}'")), key=int)


def assert_serving(job, version: str) -> dict:
    assert served_version(job["serve"], NAME) == version
    manifest = verify_export(job["serve"] / NAME).manifest  # every file matches its sha256
    assert manifest["source_run_id"] == job["client"].get_model_version(NAME, version).run_id
    return manifest


# ----------------------------------------------------------------------------------------------
def test_decide_is_lower_is_better_with_a_margin():
    assert decide(10.0, None, 0.0)[0] == "promoted"
    assert decide(9.0, 10.0, 0.0) == ("promoted", "challenger 9 < champion 10 - margin 0")
    assert decide(10.0, 10.0, 0.0)[0] == "kept"  # a tie keeps the champion
    assert decide(9.5, 10.0, 0.5)[0] == "kept"  # exactly at the margin: not better BY the margin
    assert decide(9.4, 10.0, 0.5)[0] == "promoted"
    assert decide(-3.0, -2.0, 0.5)[0] == "promoted"  # absolute margin: fine for negative scores


def test_bad_names_and_metrics_are_config_errors(job, capsys):
    from gen_keras.cli import main as cli

    assert slot_run_name("digits", "2026-11-22") == "digits-2026-11-22"
    with pytest.raises(ConfigError, match="--slot"):
        slot_run_name("digits", "../etc")
    base = ["retrain", "--config", str(job["config"]), "--tracking-uri", job["uri"],
            "--serve-dir", str(job["serve"])]
    assert cli([*base, "--model-name", "bad/name"]) == 2
    assert "--model-name='bad/name'" in capsys.readouterr().err
    gan = job["root"] / "gan.yaml"
    gan.write_text("model: {kind: gan}\ntracking: {outputs_dir: %s}\n" % job["root"])
    assert cli(["retrain", "--config", str(gan), "--model-name", NAME, "--metric", "nll",
                "--tracking-uri", job["uri"], "--serve-dir", str(job["serve"])]) == 2
    assert "needs a VAE-family model" in capsys.readouterr().err
    assert not (job["serve"] / NAME).exists()  # refused before anything was trained or locked


def test_server_script_refuses_basic_auth_without_a_real_password(tmp_path):
    script = str(ROOT / "mlflow" / "server.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    for password, message in [(None, "needs the admin password in MLFLOW_AUTH_ADMIN_PASSWORD"),
                              ("", "needs the admin password"),
                              ("password1234", "known default"), ("short", "shorter than 12")]:
        e = dict(env) if password is None else {**env, "MLFLOW_AUTH_ADMIN_PASSWORD": password}
        r = subprocess.run(["bash", script, "--app-name", "basic-auth", "--port", "1",
                            "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}"],
                           env=e, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and message in r.stderr, (password, r.stderr)
    r = subprocess.run(["bash", script, "--backend-store-uri", str(tmp_path / "m.db")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a database URI" in r.stderr
    assert not (tmp_path / "m.db").exists()


def test_1_two_jobs_at_once_only_one_runs_and_promotes(job):
    """The MLflow Project entry point and the CLI start together for the same model name: the
    first holds the lock and promotes v1 (no champion yet); the second exits 4 having done
    nothing."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": job["uri"], "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [str(BIN / "mlflow"), "run", str(ROOT / "mlflow"), "-e", "retrain", "--env-manager", "local",
         "-P", f"config={job['config']}", "-P", f"model_name={NAME}", "-P", "slot=day1",
         "-P", f"num_samples={SAMPLES}", "-P", f"serve_dir={job['serve']}"],
        env=env, cwd=job["root"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = job_lock_path(NAME, job["uri"])
    deadline = time.time() + 240
    while not lock_is_held(lock):
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.time() < deadline, "the first job never took the lock"
        time.sleep(0.2)
    second = subprocess.run(
        [str(BIN / "gen-keras"), "retrain", "--config", str(job["config"]), "--model-name", NAME,
         "--slot", "day1-again", "--num-samples", str(SAMPLES), "--serve-dir", str(job["serve"]),
         "--tracking-uri", job["uri"]], env=env, capture_output=True, text=True, timeout=300)
    out_first, _ = first.communicate(timeout=600)
    assert second.returncode == EXIT_BUSY, second.stderr[-2000:]
    assert f"a retrain of '{NAME}' (registry {job['uri']}) is already running" in second.stderr
    assert first.returncode == EXIT_PROMOTED, out_first[-3000:]
    assert "PROMOTED" in out_first and "no champion yet" in out_first

    client = job["client"]
    assert versions(client) == ["1"]
    assert not (job["root"] / "outputs" / "checkpoints" / f"{NAME}-day1-again").exists()
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert client.get_model_version_by_alias(NAME, "challenger").version == "1"
    tags = gate_tags(client, "1")
    assert tags["decision"] == "promoted" and tags["reason"] == "no champion yet"
    assert tags["metric"] == "nll" and tags["num_samples"] == str(SAMPLES)
    assert tags["champion_score"] == "none"
    v1 = client.get_model_version(NAME, "1")
    run = client.get_run(v1.run_id)
    assert run.info.run_name == f"{NAME}-day1" and run.info.status == "FINISHED"
    # The version is the run's logged MLflow Model (what MLflow's own tools load).
    assert v1.source == f"models:/{run.data.tags['gen_keras.model_id']}"
    assert math.isclose(float(tags["challenger_score"]), run.data.metrics["gate/nll"], rel_tol=1e-6)
    assert 50 < float(tags["challenger_score"]) < 600  # nats per MNIST digit after one short epoch
    assert_serving(job, "1")
    # The run `mlflow run` opened carries the job's outcome.
    project = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                 filter_string=f"tags.`gen_keras.retrain_run_id` = '{v1.run_id}'")
    assert len(project) == 1 and project[0].data.tags["gate.decision"] == "promoted"


def test_2_next_slots_keep_then_replace_the_champion(job):
    """day2 cannot beat v1 by a huge margin: kept (v1 re-scored from its model artifact because
    the sample count differs). day3 trains 4 epochs: better than v1, promoted, and served."""
    client, uri = job["client"], job["uri"]
    cfg = load_config(job["config"])
    kept = retrain(cfg, NAME, slot="day2", margin=1e6, num_samples=SAMPLES // 2, tracking_uri=uri,
                   serve_dir=job["serve"], verbose=0)
    assert (kept.decision, kept.exit_code, kept.version, kept.champion_version) == (
        "kept", EXIT_KEPT, "2", "1")
    tags = gate_tags(client, "2")
    assert tags["decision"] == "kept" and tags["champion_version"] == "1"
    assert tags["champion_score_source"] == "re-scored"
    # The champion was scored under the same evaluator, sample count and seed as the challenger.
    v1_model = load_model(job["root"] / "outputs" / "models" / f"{NAME}-day1" / "model.keras")
    assert math.isclose(kept.champion_score, gate_score(v1_model, cfg, "nll", SAMPLES // 2, 0),
                        rel_tol=1e-6)
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert client.get_model_version_by_alias(NAME, "challenger").version == "2"
    assert_serving(job, "1")

    better = load_config(job["config"], ["train.epochs=4"])
    promoted = retrain(better, NAME, slot="day3", num_samples=SAMPLES, tracking_uri=uri,
                       serve_dir=job["serve"], verbose=0)
    v1_score = float(gate_tags(client, "1")["challenger_score"])
    assert promoted.champion_score == v1_score  # same evaluator as v1's: its recorded score
    assert gate_tags(client, "3")["champion_score_source"] == "recorded"
    assert promoted.challenger_score < v1_score, "4 epochs should beat 1 epoch on NLL"
    assert (promoted.decision, promoted.exit_code, promoted.version) == ("promoted", EXIT_PROMOTED, "3")
    assert client.get_model_version_by_alias(NAME, "champion").version == "3"
    assert_serving(job, "3")
    assert (job["serve"] / ".versions" / f"{NAME}-v1").is_dir()  # the previous one, for rollback

    # Running the finished slot again neither retrains, nor registers, nor re-gates.
    again = retrain(better, NAME, slot="day3", num_samples=SAMPLES, tracking_uri=uri,
                    serve_dir=job["serve"], verbose=0)
    assert (again.version, again.decision, again.challenger_score) == (
        "3", "promoted", promoted.challenger_score)
    assert versions(client) == ["1", "2", "3"]


def test_3_non_finite_loss_fails_the_job_and_leaves_the_champion(job, capsys):
    from gen_keras.cli import main as cli

    client = job["client"]
    spike = job["root"] / "spike.yaml"
    spike.write_text(job["config"].read_text().replace("kind: vae", "kind: vae_lr_spike_test")
                     .replace("epochs: 1", "epochs: 2"))
    code = cli(["retrain", "--config", str(spike), "--model-name", NAME, "--slot", "day4",
                "--num-samples", str(SAMPLES), "--serve-dir", str(job["serve"]),
                "--tracking-uri", job["uri"]])
    err = capsys.readouterr().err
    assert code == 1 and "FAILED" in err and "non-finite" in err and "at epoch 2" in err
    ckpt = job["root"] / "outputs" / "checkpoints" / f"{NAME}-day4"
    state = read_state(ckpt)
    assert state["epochs_done"] == 1 and not state["finished"]  # the last good checkpoint
    assert sorted(p.name for p in (ckpt / "tf").glob("ckpt-*.index")) == ["ckpt-1.index"]
    run = client.get_run(state["run_id"])
    assert run.info.status == "FAILED" and "NonFiniteLossError" in run.data.tags["gen_keras.error"]
    assert versions(client) == ["1", "2", "3"]  # nothing registered
    assert client.get_model_version_by_alias(NAME, "champion").version == "3"
    assert_serving(job, "3")


def test_4_publish_failing_half_way_keeps_the_previous_export(job):
    client = job["client"]
    before = assert_serving(job, "3")
    with pytest.raises(RetrainError, match="previous export still serves"):
        publish_champion(client, NAME, client.get_model_version(NAME, "2"), job["serve"],
                         tracking_uri=job["uri"], _fail_after="download")
    assert assert_serving(job, "3") == before
    leftovers = [p.name for p in (job["serve"] / ".versions").iterdir() if "-v2" in p.name]
    assert leftovers == []  # the half-written copy is gone, never visible under its final name
    # The same publish without the fault swaps the link in one step.
    publish_champion(client, NAME, client.get_model_version(NAME, "2"), job["serve"],
                     tracking_uri=job["uri"])
    assert_serving(job, "2")
