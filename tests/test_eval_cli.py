"""End to end: a real short training run evaluates itself at the end (metrics + notes in MLflow),
``gen-keras evaluate`` re-scores it from the run and from its export folder and logs to that run,
and ``gate_score`` gives the numbers the retraining gate compares."""
from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient

from gen_keras import cli
from gen_keras.config_loader import load_config
from gen_keras.eval import END_OF_TRAINING_IWAE_K, evaluate_model, gate_score
from gen_keras.training import train

N_TEST = 256  # smoke_overrides: data.limit_test=256


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_server, data_cache):
    out = tmp_path_factory.mktemp("eval_cli")
    cfg = load_config("pipelines/configs/vae_mnist10k.yaml", [
        f"tracking.outputs_dir={out / 'outputs'}", "train.progress=false", "train.epochs=1",
        "data.limit_train=1024", f"data.limit_test={N_TEST}", "train.batch_size=64",
        "tracking.experiment=eval-cli"])
    result = train(cfg, tracking_uri=mlflow_server.uri)
    return cfg, result, MlflowClient(tracking_uri=mlflow_server.uri)


def test_training_evaluates_the_model_at_the_end_and_logs_it(trained):
    cfg, result, client = trained
    k = END_OF_TRAINING_IWAE_K
    m = result.final_metrics
    for name in (f"test_nll_k{k}_nats", f"test_nll_k{k}_bpd", "test_neg_elbo_nats",
                 f"fid_{N_TEST}", f"kid_{N_TEST}", f"precision_{N_TEST}", f"recall_{N_TEST}",
                 f"coverage_{N_TEST}", "classes_covered", f"class_kl_{N_TEST}"):
        assert name in m and math.isfinite(m[name]), name
    # An importance-weighted bound is never above the ELBO's negative (same draws).
    assert 50 < m[f"test_nll_k{k}_nats"] <= m["test_neg_elbo_nats"] + 1e-6
    assert m[f"test_nll_k{k}_bpd"] == pytest.approx(m[f"test_nll_k{k}_nats"] / (784 * math.log(2)))
    run = client.get_run(result.run_id)
    assert run.data.metrics[f"eval/fid_{N_TEST}"] == pytest.approx(m[f"fid_{N_TEST}"])
    assert "binarized" in run.data.tags["gen_keras.eval.likelihood_data"]
    assert "test accuracy" in run.data.tags["gen_keras.eval.evaluator"]


def test_evaluate_command_rescores_the_run_and_its_export(trained, capsys):
    cfg, result, client = trained
    uri = client.tracking_uri
    assert cli.main(["evaluate", "--run-id", result.run_id, "--tracking-uri", uri,
                     "--num-samples", "200", "--iwae-k", "20"]) == 0
    printed = capsys.readouterr().out
    assert "test_nll_k20_nats" in printed and "fid_200" in printed
    metrics = client.get_run(result.run_id).data.metrics
    assert "eval/test_nll_k20_nats" in metrics and "eval/fid_200" in metrics
    from_run = metrics["eval/fid_200"]

    # The export holds only the generate signature: sample metrics, the same latent draws,
    # so the same FID as the Keras model up to float error; logged to the source run.
    assert cli.main(["evaluate", "--export", str(result.export_dir), "--tracking-uri", uri,
                     "--num-samples", "200", "--no-log"]) == 0
    printed = capsys.readouterr().out
    assert "test_nll" not in printed
    fid_line = next(line for line in printed.splitlines() if line.strip().startswith("fid_200:"))
    assert float(fid_line.split(":")[1]) == pytest.approx(from_run, rel=1e-3)


def test_evaluate_command_names_a_missing_run(trained, capsys):
    _, _, client = trained
    assert cli.main(["evaluate", "--run-id", "0123456789abcdef0123456789abcdef",
                     "--tracking-uri", client.tracking_uri]) == 2
    assert "--run-id 0123456789abcdef0123456789abcdef" in capsys.readouterr().err


def test_gate_scores_are_lower_is_better_numbers(trained):
    cfg, result, _ = trained
    model = result.model
    nll = gate_score(model, cfg, "nll", 64, 0)
    assert nll == gate_score(model, cfg, "nll", 64, 0)  # seeded: repeatable
    assert 50 < nll < 800
    fid = gate_score(model, cfg, "fid", 200, 0)
    full = evaluate_model(model, cfg, num_samples=200, seed=0, likelihood=False)
    assert fid == pytest.approx(full["fid_200"]) and fid > 0
    assert gate_score(model, cfg, "kid", 200, 0) == pytest.approx(full["kid_200"])
    assert gate_score(model, cfg, "fid", 200, 1) != fid  # another seed, other samples
    with pytest.raises(ValueError, match="not one of"):
        gate_score(model, cfg, "inception_score", 200, 0)
