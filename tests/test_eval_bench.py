"""bench/quality.py --smoke as a real process: the floor line, then one JSON line per kind with
the metrics that fit it and the product targets."""
from __future__ import annotations

import json
import os
import subprocess

from gen_keras.config import load_config

from conftest import PYTHON, ROOT


def test_quality_bench_smoke_prints_one_json_line_per_kind(tmp_path, data_cache):
    env = {**os.environ, "GEN_KERAS_CACHE": str(data_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "quality.py"), "--smoke", "--kinds", "cvae",
         "--outputs", str(tmp_path / "bench")],
        capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_model = {line["model"]: line for line in lines}
    assert [line["model"] for line in lines] == ["real_data_floor", "cvae", "total"]

    floor = by_model["real_data_floor"]
    assert floor["num_samples"] == 256 and floor["classes_covered"] == 10
    assert floor["evaluator_test_accuracy"] >= 0.98

    cvae = by_model["cvae"]
    assert "error" not in cvae, cvae.get("error")
    assert cvae["iwae_k"] == 10 and cvae["nll_test_images"] == 256
    assert cvae["test_nll_k10_nats"] <= cvae["test_neg_elbo_nats"] + 1e-6
    assert "binarized" in cvae["notes"]["gen_keras.eval.likelihood_data"]
    assert 0 <= cvae["conditional_accuracy_256"] <= 1
    assert set(cvae["targets"]) == {"classes_covered", "conditional_accuracy_256"}



def test_targets_follow_the_issue_bars():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from gen_keras.models.dcgan import DCGANConfig

    class Model:  # only the config is read
        config = DCGANConfig()

    floor = {"fid_2000": 4.0}
    good = {"fid_2000": 5.9, "class_kl_2000": 0.04, "classes_covered": 10.0, "classes_total": 10.0}
    t = bench.targets_for("dcgan", Model(), good, 15.0, 2000, 5000, floor)
    assert all(v["met"] for v in t.values()) and set(t) == {
        "classes_covered", "fid_2000", "class_kl_2000", "train_minutes"}
    bad = {**good, "fid_2000": 6.1, "classes_covered": 9.0}  # 6.1 > 1.5 x 4.0
    t = bench.targets_for("dcgan", Model(), bad, 17.0, 2000, 5000, floor)
    assert not any(v["met"] for k, v in t.items() if k != "class_kl_2000")

    class Autoencoder:  # no prior: its samples are reported, not held to class coverage
        has_prior = False
        config = load_config(ROOT / "pipelines" / "configs" / "autoencoder_mnist10k.yaml").model

    assert bench.targets_for("autoencoder", Autoencoder(), bad, 1.0, 2000, 5000, floor) == {}


def test_throughput_bench_smoke_prints_speedups_peak_and_memory(data_cache):
    """bench/throughput.py as a real process (VAE, 1,024 images, two configurations): every line
    carries the figures the scale issue asks for, and the losses show the same computation."""
    env = {**os.environ, "GEN_KERAS_CACHE": str(data_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "throughput.py"), "--smoke", "--configs", "reference,default_f32"],
        capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(x["kind"], x["config"]) for x in lines] == [
        ("vae", "reference"), ("vae", "default_f32"), ("vae", "memory")]
    ref, f32, memory = lines
    assert ref["speedup"] == 1.0 and ref["loss_rel_diff"] == 0.0
    assert f32["start"] == ref["start"]  # same initial weights and first batch
    # default_f32 differs from the reference only in speed options: the same float32 math.
    assert f32["loss_rel_diff"] < 1e-3 and f32["settings"]["mixed_precision"] == "none"
    for line in (ref, f32):
        assert line["train_images_per_s"] > 0 and line["pipeline_ratio"] > 0
        assert 0 < line["fraction_of_matmul_peak"] < 1.5
        assert line["bf16_matmul_peak_gflops"] > 0 and line["images_per_epoch"] == 1024
        assert line["cpu_ms_per_image"] > 0 and line["cpu_speedup"] > 0
    assert ref["cpu_speedup"] == 1.0 and ref["best_round_speedup"] == 1.0
    assert memory["peak_rss_mb"] > 0 and len(memory["rss_after_epoch_mb"]) == 4
