"""bench/quality.py --smoke as a real process: the floor line, then one JSON line per kind with
the metrics that fit it and the product targets; the time-to-quality clock and --curve."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from gen_keras.config_loader import load_config

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


def test_quality_clock_measures_at_training_minutes_and_stops_after_the_last():
    """A real tiny Keras fit: the clock's points sit at their marks of TRAINING time (its own
    measuring, here 0.5 s each, is not counted), training stops after the last mark, and a run
    whose epochs end first gets one final point marked as such."""
    import time

    import keras
    import numpy as np

    from gen_keras.eval.curve import QualityClock

    x = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")

    def fit(marks, epochs):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        seen = []

        def measure(m):
            time.sleep(0.5)
            return {"weights": len(m.weights)}

        clock = QualityClock(marks, measure, seen.append)

        class Slow(keras.callbacks.Callback):  # ~20 ms of "training" per step
            def on_train_batch_end(self, batch, logs=None):
                time.sleep(0.02)

        model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)  # traced now, not in the clocked fit
        started = time.perf_counter()
        history = model.fit(x, x[:, :1], batch_size=8, epochs=epochs, verbose=0, callbacks=[Slow(), clock])
        return clock, seen, history, time.perf_counter() - started

    clock, seen, history, wall = fit([0.02, 0.04], epochs=1000)
    assert seen == clock.points and [p["mark_minutes"] for p in clock.points] == [0.02, 0.04]
    for p in clock.points:  # each point just past its mark (a loaded machine: within 3 s), measuring not counted
        assert p["mark_minutes"] <= p["train_minutes"] < p["mark_minutes"] + 0.05
        assert p["weights"] == 2 and p["measure_seconds"] >= 0.5
    assert len(history.history["loss"]) < 1000  # stopped after the last mark
    assert wall >= 0.04 * 60 + 1.0  # 2.4 s of training plus the two measurements
    # measuring is not training: the second point comes 0.02 min of training after the first,
    # although 0.5 s (0.008 min) of measuring lies between them
    assert clock.points[1]["train_minutes"] - clock.points[0]["train_minutes"] < 0.02 + 0.05
    clock, _, history, _ = fit([10.0], epochs=2)  # the epochs end long before the mark
    assert len(history.history["loss"]) == 2 and len(clock.points) == 1
    assert clock.points[0]["ended_before_mark"] is True
    assert clock.points[0]["mark_minutes"] == 10.0 and clock.points[0]["train_minutes"] < 1


def test_quality_bench_curve_smoke_prints_points_and_draws_the_curve(tmp_path, data_cache):
    env = {**os.environ, "GEN_KERAS_CACHE": str(data_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "quality.py"), "--smoke", "--curve", "gan", "--marks", "0.02,0.04",
         "--outputs", str(tmp_path / "bench")],
        capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    points = [line for line in lines if "mark_minutes" in line]
    assert [p["mark_minutes"] for p in points] == [0.02, 0.04] and all(p["curve"] == "gan" for p in points)
    assert all(p["fid_256"] > 0 and p["classes_covered"] >= 1 for p in points)
    (summary,) = [line for line in lines if "points" in line]
    assert summary["points"] == [{k: v for k, v in p.items() if k not in ("curve", "config")} for p in points]
    assert (tmp_path / "bench" / "curve_fid.png").stat().st_size > 1000


def test_disentanglement_bench_mean_curves_and_plot(tmp_path):
    """The MIG curve is the mean over seeds at each mark, per model; the PNG is drawn from the
    JSON lines a run printed (--plot-from)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("bench_dis", ROOT / "bench" / "disentanglement.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    runs = [{"model": "vae", "seed": s, "curve": [{"mark_minutes": 1.0, "train_minutes": 1.0 + s / 100, "mig": 0.1 * (s + 1)},
                                                  {"mark_minutes": 2.0, "train_minutes": 2.0, "mig": 0.2}]}
            for s in (0, 1)]
    curves = bench.mean_curves(runs)
    assert [p["mig"] for p in curves["vae"]] == [pytest.approx(0.15), pytest.approx(0.2)]
    assert curves["vae"][0]["train_minutes"] == pytest.approx(1.005)
    lines = tmp_path / "out.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in runs) + "\n| a table |\n")
    assert bench.main(["--plot-from", str(lines), "--outputs", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "mig_curve.png").size == (720, 420)


def test_backends_bench_times_every_operation_and_names_the_faster_runtime(tmp_path, capsys):
    """bench/backends.py on a real (untrained, small) DCGAN export: one line per operation and
    batch size, three timings each (the split runs' equality is tests/test_hardening.py's), and "faster" is the runtime with the smaller median."""
    import importlib.util

    from gen_keras.export import export_model
    from gen_keras.models import build_model

    cfg = load_config(ROOT / "pipelines" / "configs" / "dcgan_mnist10k.yaml", ["model.g_filters=4", "model.d_filters=4"])
    export_dir = export_model(build_model(cfg.model), tmp_path / "export")
    spec = importlib.util.spec_from_file_location("bench_backends", ROOT / "bench" / "backends.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([str(export_dir), "--sizes", "1,3", "--reps", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(line["operation"], line["batch"]) for line in lines] == [("generate", 1), ("generate", 3)]
    for line in lines:
        assert set(line["ms"]) == {"onnx", "onnx_operator_threads", "tf"} and min(line["ms"].values()) > 0
        assert line["ms"][line["faster"]] == min(line["ms"]["onnx"], line["ms"]["tf"])


def test_curve_grids_stacks_the_last_grid_of_each_recipe(tmp_path):
    """bench/curve_grids.py: for each recipe the top rows of its curve run's LAST epoch grid (grids
    as the training callback writes them), one band per recipe, labelled with the last mark's FID."""
    import importlib.util

    import numpy as np
    from PIL import Image

    from gen_keras.images import image_grid, save_png

    for recipe, shade in (("dcgan", 0.25), ("stylegan", 0.75)):
        folder = tmp_path / "samples" / f"bench-{recipe}-full-20261203-1" / "samples"
        for epoch, value in ((1, 0.0), (12, shade)):  # the band must come from epoch 12, not 1
            save_png(image_grid(np.full((16, 28, 28, 1), value, np.float32), 4), folder / f"epoch_{epoch:03d}.png")
    lines = tmp_path / "curve.jsonl"
    lines.write_text(json.dumps({"curve": "dcgan", "points": [{"mark_minutes": 16.0, "fid_2000": 12.34}]}) + "\n")
    spec = importlib.util.spec_from_file_location("bench_curve_grids", ROOT / "bench" / "curve_grids.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.last_points(lines) == {"dcgan": {"mark_minutes": 16.0, "fid_2000": 12.34}}
    out = tmp_path / "grids.png"
    assert bench.main(["--outputs", str(tmp_path), "--recipes", "dcgan,stylegan", "--rows", "2",
                       "--jsonl", str(lines), "--out", str(out)]) == 0
    canvas = np.asarray(Image.open(out))
    band = 2 * (2 * 30) + 2 + 2  # two rows of 28-pixel cells with 2-pixel padding, saved at scale 2
    assert canvas.shape == (2 * band, 210 + 2 * (4 * 30 + 2))
    cells = canvas[:, 210:]
    assert np.median(cells[10:band - 10][cells[10:band - 10] < 255]) == round(0.25 * 255)
    assert np.median(cells[band + 10:2 * band - 10][cells[band + 10:2 * band - 10] < 255]) == round(0.75 * 255)
    assert (canvas[:band, :210] < 128).any()  # the label is drawn
    with pytest.raises(SystemExit, match="no sample grids of 'gan'"):
        bench.main(["--outputs", str(tmp_path), "--recipes", "gan", "--out", str(out)])
