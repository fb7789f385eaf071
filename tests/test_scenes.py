"""Label map -> colour scene (``pairs:scenes``): the palette and its inverse on hand values, the
task's pairs (shapes, ranges, input and target showing the same layout), the FCN score's
segmenter (high on real test scenes, low on a grey image), and a short real Pix2Pix training
on the task through the pipeline that logs the FCN score, draws its preview grid and exports.

Everything runs on ``pairs:scenes:1000`` (the prepared subset ``shapes3d:1000``: 901 train / 99
test scenes), prepared once per session into the session's cache with the segmenter trained on
its train scenes."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from gen_keras.config_loader import load_config
from gen_keras.data import make_datasets
from gen_keras.data.render_shapes3d import BACKGROUND, OBJECT, SKY_RGB
from gen_keras.data.scenes import PALETTE, label_map_to_palette, palette_to_label_map
from gen_keras.data.translation import load_translation_split, task_shapes
from gen_keras.errors import ConfigError
from gen_keras.eval.segmenter import confusion_matrix, segmentation_scores
from gen_keras.exported.reader import ExportReader
from gen_keras.training import train

from conftest import ROOT

CONFIG = ROOT / "pipelines" / "configs" / "pix2pix_scenes.yaml"
TASK = "pairs:scenes:1000"


def test_palette_round_trip_on_hand_values():
    ids = np.array([[[0], [1]], [[2], [3]]], np.uint8)  # a 2x2 label map, one pixel per class
    image = label_map_to_palette(ids)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [70, 130, 180] and image[1, 1].tolist() == [220, 20, 60]
    np.testing.assert_array_equal(palette_to_label_map(image), ids)
    # A drawn image is read by the nearest palette colour: off colours, antialiased edges, and
    # the model's [-1, 1] range.
    drawn = np.array([[[80, 120, 170], [120, 70, 120]], [[255, 160, 40], [200, 0, 70]]], np.uint8)
    np.testing.assert_array_equal(palette_to_label_map(drawn), ids)
    np.testing.assert_array_equal(palette_to_label_map(image / 127.5 - 1.0, value_range=(-1, 1)), ids)
    distances = np.linalg.norm(PALETTE[:, None].astype(float) - PALETTE[None].astype(float), axis=-1)
    assert distances[~np.eye(4, dtype=bool)].min() >= 100
    with pytest.raises(ValueError, match="class ids 0..3"):
        label_map_to_palette(np.array([[4]]))


def test_segmentation_scores_on_a_hand_confusion_matrix():
    truth = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2])
    c = confusion_matrix(truth, predicted, 4)
    assert c.tolist() == [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    s = segmentation_scores(c, ("a", "b", "c", "d"))
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["class_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)  # class d is absent
    assert s["iou_a"] == pytest.approx(1 / 2) and s["iou_b"] == pytest.approx(2 / 4)
    assert s["iou_c"] == pytest.approx(1 / 2) and s["iou_d"] == 1.0
    assert s["mean_iou"] == pytest.approx(1 / 2)


def test_scene_pairs_show_the_same_layout(data_cache):
    split = load_translation_split(TASK, "test", (64, 64, 3))
    n = len(split.inputs)
    assert n == 99 and split.inputs.shape == split.targets.shape == (n, 64, 64, 3)
    assert split.label_maps.shape == (n, 64, 64, 1) and set(np.unique(split.label_maps)) == {0, 1, 2, 3}
    # The input IS the label map, in colour; the target is the scene it was drawn from: sky
    # exactly where the map says background, and every object pixel in the target's colour
    # differs from the floor's and wall's (the object is drawn where the map says object).
    np.testing.assert_array_equal(palette_to_label_map(split.inputs), split.label_maps)
    sky = np.all(split.targets == np.array(SKY_RGB, np.uint8), axis=-1)
    np.testing.assert_array_equal(sky, split.label_maps[..., 0] == BACKGROUND)
    obj = split.label_maps[..., 0] == OBJECT
    assert 0.05 < obj.mean() < 0.2 and np.all(split.inputs[obj] == PALETTE[OBJECT])
    assert len(load_translation_split(TASK, "train", (64, 64, 3)).inputs) == 901
    assert task_shapes("pairs:scenes", (64, 64, 3)) == ((64, 64, 3), (64, 64, 3))

    cfg = load_config(CONFIG, [f"data.dataset={TASK}", "train.batch_size=16", "data.limit_train=32",
                               "data.limit_test=20"])
    ds = make_datasets(cfg)
    x, y = next(iter(ds.train))
    assert x.shape == y.shape == (16, 64, 64, 3)
    assert float(np.min(x)) >= -1.0 and float(np.max(y)) <= 1.0 and float(np.min(y)) < -0.5
    np.testing.assert_array_equal(np.unique(np.round((x.numpy() + 1) * 127.5)),
                                  np.unique(PALETTE))  # palette colours only
    assert ds.info.input_shape == (64, 64, 3) and ds.info.num_train == 901 and ds.info.num_test == 99
    assert "gen_keras_shapes3d_n1000" in ds.info.source_uri


@pytest.mark.parametrize("name,match", [
    ("pairs:scenes:50", r"data\.dataset='pairs:scenes:50': after 'pairs:scenes:' comes the subset size"),
    ("pairs:sr4:1000", "takes no argument"),
])
def test_bad_scene_task_names_are_refused(name, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIG, [f"data.dataset={name}"])


def test_fcn_score_is_high_on_real_scenes_and_low_on_grey(data_cache):
    from gen_keras.eval.translation import scene_segmenter

    segmenter = scene_segmenter(load_config(CONFIG, [f"data.dataset={TASK}"]))
    split = load_translation_split(TASK, "test", (64, 64, 3))
    real = segmenter.score(split.targets, (0, 255), split.label_maps)
    assert real["pixel_accuracy"] >= 0.9 and real["mean_iou"] >= 0.75, real
    assert segmenter.test_pixel_accuracy == pytest.approx(real["pixel_accuracy"])
    grey = segmenter.score(np.full_like(split.targets, 128), (0, 255), split.label_maps)
    assert grey["pixel_accuracy"] <= 0.5 and grey["mean_iou"] <= 0.25, grey
    # The label image itself is not a scene.
    assert segmenter.score(split.inputs, (0, 255), split.label_maps)["pixel_accuracy"] <= 0.5


def test_pix2pix_trains_on_scenes_and_logs_the_fcn_score(tmp_path, data_cache, mlflow_server):
    cfg = load_config(CONFIG, [
        f"tracking.outputs_dir={tmp_path}", "tracking.run_name=scenes-smoke", "train.epochs=1",
        "train.progress=false", f"data.dataset={TASK}", "data.limit_train=64", "data.limit_test=32",
        "train.batch_size=16", "model.g_filters=8", "model.d_filters=8"])
    result = train(cfg, tracking_uri=mlflow_server.uri)
    assert int(result.model.g_optimizer.iterations) == 4
    run = MlflowClient(mlflow_server.uri).get_run(result.run_id)
    metrics = {k[len("eval/"):]: v for k, v in run.data.metrics.items() if k.startswith("eval/")}
    for name in ("fcn_pixel_accuracy", "fcn_mean_iou", "fcn_iou_object", "real_fcn_pixel_accuracy",
                 "mismatched_real_fcn_pixel_accuracy", "fid_32", "segmenter_test_pixel_accuracy"):
        assert name in metrics and np.isfinite(metrics[name]), name
    # Real scenes with their own maps beat real scenes with another scene's map, which beat 4
    # steps of a tiny generator.
    assert metrics["real_fcn_pixel_accuracy"] > metrics["mismatched_real_fcn_pixel_accuracy"]
    assert metrics["real_fcn_pixel_accuracy"] > metrics["fcn_pixel_accuracy"]
    assert "scene segmenter" in run.data.tags["gen_keras.eval.translation"]
    # input / output / target rows, 10 test scenes of 64 px in columns (pad 2, scale 2).
    grid = Image.open(result.samples_dir / "translations" / "epoch_001.png")
    assert grid.size == ((10 * 66 + 2) * 2, (3 * 66 + 2) * 2) and grid.mode == "RGB"
    # The export translates a palette image in [-1, 1] to a scene in [-1, 1].
    reader = ExportReader(result.export_dir)
    op = reader.operation("translate")
    assert op.input("x").shape == (None, 64, 64, 3) and op.input("x").value_range == (-1.0, 1.0)
    assert op.output("image").shape == (None, 64, 64, 3) and op.output("image").value_range == (-1.0, 1.0)
    x = load_translation_split(TASK, "test", (64, 64, 3), limit=3).inputs / 127.5 - 1.0
    out = reader.translate(x.astype(np.float32))
    assert out.shape == (3, 64, 64, 3) and out.min() >= -1.0 and out.max() <= 1.0


def test_bench_judges_scenes_by_the_fcn_score():
    spec = importlib.util.spec_from_file_location("bench_translation", ROOT / "bench" / "translation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "pix2pix_scenes" in bench.DEFAULT
    t = bench.targets("pix2pix", {"fcn_pixel_accuracy": 0.93, "evaluator_accuracy": 0.1}, 12.0, None,
                      "pairs:scenes")
    assert set(t) == {"fcn_pixel_accuracy", "run_minutes"}
    assert t["fcn_pixel_accuracy"] == {"value": 0.93, "bar": ">= 0.9", "met": True}
    assert json.loads(json.dumps(t))["run_minutes"]["met"]
