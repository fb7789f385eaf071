"""Pix2Pix and super-resolution (sr_l1, srgan) for real: a short training of each kind through
the pipeline on a slice of the digit tasks (real MLflow server), the translation metrics on the
run, the preview grid, save/load with every optimizer, the exported ``translate`` operation
(ONNX parity, shapes and ranges in the manifest, the reader's checks), SRGAN's content network
being the digit evaluator, and serving a trained translator beside a generator."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.data.translation import load_translation_split
from gen_keras.exported.reader import ExportReader
from gen_keras.precision import float32_twin
from gen_keras.tracking import logged_config
from gen_keras.training import train

from conftest import ROOT

CONFIGS = ROOT / "pipelines" / "configs"
# Small networks on 128 training pairs (4 steps of 32): every kind's whole path in seconds.
KINDS = {
    "pix2pix": ("pix2pix_inpaint", ["model.g_filters=8", "model.d_filters=8"], True),
    "sr_l1": ("sr_l1_sr4", ["model.g_filters=8", "model.residual_blocks=1"], True),
    "srgan": ("srgan_sr4", ["model.g_filters=8", "model.residual_blocks=1", "model.d_filters=8",
                            "model.d_dense=16"], False),
}
STEPS = 128 // 32
TASKS = {"pix2pix": "pairs:inpaint", "sr_l1": "pairs:sr4", "srgan": "pairs:sr4"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_cache, mlflow_server):
    out = tmp_path_factory.mktemp("translation_runs")
    results = {}
    for kind, (config, small, evaluate) in KINDS.items():
        cfg = load_config(CONFIGS / f"{config}.yaml", [
            f"tracking.outputs_dir={out}", f"tracking.run_name={kind}-smoke", "train.epochs=1",
            "train.progress=false", "data.limit_train=128", "data.limit_test=64", "train.batch_size=32",
            f"train.evaluate_at_end={str(evaluate).lower()}", *small])
        results[kind] = train(cfg, tracking_uri=mlflow_server.uri)
    return results


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_through_the_pipeline_and_shows_its_translations(kind, runs, mlflow_server):
    result = runs[kind]
    model = result.model
    assert set(model.tracker_names) <= set(result.history)
    for key, values in result.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    for name, optimizer in model.optimizers_to_track().items():
        assert int(optimizer.iterations) == STEPS, name
    # input / output / target rows, 10 test examples in columns: 28-pixel cells (pad 2, scale 2).
    grid = Image.open(result.samples_dir / "translations" / "epoch_001.png")
    assert grid.size == ((10 * 30 + 2) * 2, (3 * 30 + 2) * 2)
    run = MlflowClient(mlflow_server.uri).get_run(result.run_id)
    assert {f"epoch/{n}" for n in model.tracker_names} <= set(run.data.metrics)
    assert logged_config(MlflowClient(mlflow_server.uri), result.run_id)["data.dataset"] in ("pairs:inpaint", "pairs:sr4")


def eval_metrics(run) -> dict:
    """The end-of-training evaluation, logged under ``eval/``."""
    return {k[len("eval/"):]: v for k, v in run.data.metrics.items() if k.startswith("eval/")}


def test_super_resolution_metrics_against_the_upsampling_baselines(runs, mlflow_server):
    metrics = eval_metrics(MlflowClient(mlflow_server.uri).get_run(runs["sr_l1"].run_id))
    for name in ("psnr", "ssim", "evaluator_accuracy", "fid_64", "bicubic_psnr", "bicubic_ssim",
                 "bicubic_evaluator_accuracy", "nearest_psnr", "nearest_fid_64", "target_evaluator_accuracy"):
        assert name in metrics and np.isfinite(metrics[name]), name
    # Bicubic on the first 64 test digits: about the 14.5 dB / 85% the issue measured on all.
    assert 12.0 < metrics["bicubic_psnr"] < 17.0 and 0.6 < metrics["bicubic_evaluator_accuracy"] < 0.97
    assert metrics["nearest_psnr"] < metrics["bicubic_psnr"]
    assert metrics["target_evaluator_accuracy"] > 0.9 and 0.0 < metrics["ssim"] <= 1.0


def test_inpainting_metrics_are_logged(runs, mlflow_server):
    metrics = eval_metrics(MlflowClient(mlflow_server.uri).get_run(runs["pix2pix"].run_id))
    for name in ("l1_in_mask", "evaluator_accuracy", "psnr", "ssim", "fid_64", "masked_input_l1_in_mask",
                 "masked_input_evaluator_accuracy", "target_evaluator_accuracy"):
        assert name in metrics and np.isfinite(metrics[name]), name
    # The mid-grey hole differs from the digit by about |0.5 - pixel| on average.
    assert 0.3 < metrics["masked_input_l1_in_mask"] < 0.5
    tags = MlflowClient(mlflow_server.uri).get_run(runs["pix2pix"].run_id).data.tags
    assert "gen_keras.eval.translation" in tags


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_and_load_restore_outputs_and_every_optimizer(kind, runs):
    result = runs[kind]
    model, loaded = result.model, load_model(result.model_path)
    assert loaded.compiled and set(loaded.get_compile_config()) >= set(model.optimizer_names)
    for name in model.optimizer_names:
        a, b = getattr(model, name), getattr(loaded, name)
        assert int(b.iterations) == int(a.iterations) == STEPS
        assert len(a.variables) == len(b.variables) > 2  # iterations, lr, Adam moments
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=f"{name} {va.path}")
    x = np.random.default_rng(0).uniform(-1, 1, (5, *model.config.input_shape)).astype("float32")
    np.testing.assert_allclose(loaded.translate(x), model.translate(x), atol=1e-6)
    for wa, wb in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_translate_operation(kind, runs):
    result = runs[kind]
    reader = ExportReader(result.export_dir)
    assert reader.operations == ["translate"] and reader.translations == ["translate"]
    assert reader.latent_dim == 0 and reader.manifest["kind"] == kind
    entry = reader.manifest["endpoints"]["translate"]
    assert entry["onnx_parity_max_abs_diff"] <= 1e-4
    op = reader.operation("translate")
    c = result.model.config
    assert op.input("x").shape == (None, *c.input_shape) and op.input("x").value_range == (-1.0, 1.0)
    assert op.output("image").shape == (None, *c.image_shape) and op.output("image").value_range == (-1.0, 1.0)
    split = load_translation_split(TASKS[kind], "test", c.image_shape, limit=6)
    x = split.inputs.astype("float32") / 127.5 - 1.0
    out = reader.translate(x)
    assert out.shape == (6, *c.image_shape) and out.min() >= -1.0 and out.max() <= 1.0
    # The export is the float32 twin (training may run in bfloat16): the same weights in float32.
    np.testing.assert_allclose(out, float32_twin(result.model).translate(x), atol=1e-4)
    np.testing.assert_allclose(reader.translate(x[0]), out[:1], atol=1e-6)  # one image = a batch of one
    with pytest.raises(ValueError, match="takes"):
        reader.translate(np.zeros((2, 9, 9, 1), np.float32))
    with pytest.raises(ValueError, match=r"values in \[-1, 1\]"):
        reader.translate(x * 255.0)


def test_srgan_content_network_is_the_digit_evaluator(runs):
    from gen_keras.eval.translation import digit_evaluator

    result = runs["srgan"]
    model = result.model
    evaluator = digit_evaluator(load_config(CONFIGS / "srgan_sr4.yaml"), model.image_shape)
    layers = [layer for layer in model.content_network.layers if layer.weights]
    assert [layer.name for layer in layers] == ["conv0", "conv1"]  # up to content_layer = conv1
    for layer in layers:
        for mine, theirs in zip(layer.get_weights(), evaluator.classifier.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert not model.content_network.trainable_weights  # frozen
    assert result.history["content"][0] > 0.0


def test_serving_loads_a_trained_translator_beside_a_generator(runs, tmp_path):
    from gen_keras.export import export_model
    from gen_keras.models import build_model
    from serving.registry import load_store

    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(runs["sr_l1"].export_dir, models / "upscaler")
    gan = load_config(CONFIGS / "gan_mnist10k.yaml", ["model.g_hidden=[16]", "model.d_hidden=[16]"])
    export_model(build_model(gan.model), models / "digits")
    store = load_store(models)
    assert sorted(store.models) == ["digits", "upscaler"] and not store.refused
    assert store.models["upscaler"].operations == ["translate", "predict"]
    (t,) = store.models["upscaler"].describe()["translations"]
    assert t["input"]["shape"] == [None, 7, 7, 1] and t["output"]["shape"] == [None, 28, 28, 1]


def test_translation_bench_smoke_prints_a_line_with_the_bars(tmp_path, data_cache, capsys):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_translation", ROOT / "bench" / "translation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    code = bench.main(["--smoke", "--configs", "sr_l1_sr4", "--outputs", str(tmp_path),
                       "--set", "model.g_filters=8", "--set", "model.residual_blocks=1",
                       "--set", "data.limit_train=64", "--set", "data.limit_test=32"])
    assert code == 0
    (line,) = [json.loads(s) for s in capsys.readouterr().out.splitlines() if s.startswith("{")]
    assert line["model"] == "sr_l1" and line["task"] == "pairs:sr4" and line["epochs"] == 1
    assert {"psnr", "bicubic_psnr", "evaluator_accuracy"} <= set(line["metrics"])
    assert set(line["targets"]) == {"evaluator_accuracy", "psnr", "run_minutes"}
    assert line["targets"]["psnr"]["bar"] == ">= 20.5"
