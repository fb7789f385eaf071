"""CycleGAN for real: a short training through the pipeline on the unpaired grey <-> colour
digits (real MLflow server) with its metrics, save/load with all four optimizers and both
pools, the two exported directions, the 2-replica step (pool under the strategy) against the
1-device step (the SIGKILL resume is tests/test_cyclegan_resume.py)."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from gen_keras import distribute
from gen_keras.artifacts import load_model
from gen_keras.config import DistributeConfig
from gen_keras.config_loader import load_config, model_config_from_dict
from gen_keras.exported.reader import ExportReader
from gen_keras.models.cyclegan import CycleGAN
from gen_keras.precision import float32_twin
from gen_keras.training import train

from conftest import ROOT

CONFIG = ROOT / "pipelines" / "configs" / "cyclegan_mnistm.yaml"
SMALL = ["model.g_filters=4", "model.residual_blocks=1", "model.d_filters=4"]
OPTIMIZERS = ("g_ab_optimizer", "g_ba_optimizer", "d_a_optimizer", "d_b_optimizer")


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache, mlflow_server):
    out = tmp_path_factory.mktemp("cyclegan_run")
    cfg = load_config(CONFIG, [f"tracking.outputs_dir={out}", "tracking.run_name=cyclegan-smoke",
                               "train.epochs=1", "train.progress=false", "data.limit_train=64",
                               "data.limit_test=48", "train.batch_size=16", "model.pool_size=8", *SMALL])
    return train(cfg, tracking_uri=mlflow_server.uri)


def test_trains_through_the_pipeline_with_four_optimizers_and_two_pools(run, mlflow_server):
    model = run.model
    for key, values in run.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    assert set(model.optimizers_to_track()) == set(OPTIMIZERS)
    for name in OPTIMIZERS:
        assert int(getattr(model, name).iterations) == 64 // 16, name
    for pool in (model.pool_a, model.pool_b):  # 64 fakes went through a pool of 8
        assert int(pool.count.numpy()) == 8 and np.abs(pool.images.numpy()).sum(axis=(1, 2, 3)).min() > 0
    # rows a / G(a) / F(G(a)) / b / F(b) / G(F(b)), 10 test pairs in columns.
    from PIL import Image

    assert Image.open(run.samples_dir / "translations" / "epoch_001.png").size == ((10 * 30 + 2) * 2, (6 * 30 + 2) * 2)
    logged = MlflowClient(mlflow_server.uri).get_run(run.run_id).data.metrics
    metrics = {k.split("/", 1)[1] if k.startswith("eval/") else k.replace("/", "_", 1): v
               for k, v in logged.items()}  # eval/fid_a_48 -> fid_a_48, epoch/cycle_a -> epoch_cycle_a
    for name in ("class_preservation_a2b", "class_preservation_b2a", "class_preservation_a2b_greyscale",
                 "cycle_l1_a", "cycle_l1_b", "fid_a_48", "fid_b_48", "real_a_evaluator_accuracy",
                 "real_b_colour_evaluator_accuracy", "real_b_greyscale_evaluator_accuracy",
                 "colour_evaluator_test_accuracy", "epoch_cycle_a", "epoch_identity", "epoch_d_a_loss"):
        assert name in metrics and np.isfinite(metrics[name]), name
    # Each domain's evaluator reads real digits of its domain (the ceilings the scores are read against).
    assert metrics["real_a_evaluator_accuracy"] > 0.9 and metrics["real_b_colour_evaluator_accuracy"] > 0.85
    assert metrics["colour_evaluator_test_accuracy"] > 0.9


def test_save_and_load_restore_four_optimizers_pools_and_outputs(run):
    model, loaded = run.model, load_model(run.model_path)
    for name in OPTIMIZERS:
        a, b = getattr(model, name), getattr(loaded, name)
        assert int(b.iterations) == int(a.iterations) > 0
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=f"{name} {va.path}")
    np.testing.assert_array_equal(loaded.pool_b.images.numpy(), model.pool_b.images.numpy())
    assert int(loaded.pool_a.count.numpy()) == int(model.pool_a.count.numpy())
    x = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 3)).astype("float32")
    for op in ("translate_a2b", "translate_b2a"):
        np.testing.assert_allclose(loaded.translate(x, op), model.translate(x, op), atol=1e-6)


def test_export_has_both_directions_with_parity(run):
    reader = ExportReader(run.export_dir)
    assert reader.operations == ["translate_a2b", "translate_b2a"] == reader.translations
    x = np.random.default_rng(1).uniform(-1, 1, (3, 28, 28, 3)).astype("float32")
    for op in reader.translations:
        assert reader.manifest["endpoints"][op]["onnx_parity_max_abs_diff"] <= 1e-4
        spec = reader.operation(op)
        assert spec.input("x").shape == spec.output("image").shape == (None, 28, 28, 3)
        np.testing.assert_allclose(reader.translate(x, op), float32_twin(run.model).translate(x, op), atol=1e-4)
    with pytest.raises(Exception, match="name one"):
        reader.translate(x)


def _tiny(seed=0):
    cfg = model_config_from_dict({"kind": "cyclegan", "g_filters": 4, "residual_blocks": 1, "d_filters": 4,
                                  "pool_size": 6})
    return CycleGAN(cfg, seed=seed)


def test_mirrored_two_replica_step_equals_one_device_step():
    """Same weights, same global batch (8 = 2 x 4), two steps (the second one meets a pool that
    swaps): the pools gather the global batch, so the pools, the four networks and the losses
    match one device's; both replicas hold the same pool."""
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (16, 28, 28, 3)).astype("float32") for _ in range(2))
    ds = tf.data.Dataset.from_tensor_slices((a, b)).batch(8)
    sgd = {name: (lambda: keras.optimizers.SGD(0.1)) for name in OPTIMIZERS}
    one = _tiny()
    one.compile(**{n: f() for n, f in sgd.items()})
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    with strategy.scope():
        two = _tiny()
        two.compile(**{n: f() for n, f in sgd.items()})
    two.set_weights(one.get_weights())
    before = [w.copy() for w in one.get_weights()]
    logs_one = one.fit(ds, epochs=1, verbose=0).history
    logs_two = two.fit(ds, epochs=1, verbose=0).history
    assert max(np.abs(x - y).max() for x, y in zip(one.get_weights(), before)) > 1e-4
    for x, y in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(y, x, atol=2e-5)
    for key in ("g_loss", "d_a_loss", "d_b_loss", "cycle_a"):
        assert math.isclose(logs_one[key][0], logs_two[key][0], rel_tol=1e-4), key
    replicas = strategy.experimental_local_results(two.pool_a.images.value)
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())
