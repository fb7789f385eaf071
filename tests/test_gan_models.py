"""The adversarial models, for real: short training runs of every kind through the pipeline
(real mnist10k slice, real MLflow server), save/load with both optimizers, export with ONNX
parity, the mirrored 2-replica step against the 1-device step, the planted-NaN stop and the
collapse guards."""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from gen_keras import distribute
from gen_keras.artifacts import load_model
from gen_keras.config import DistributeConfig
from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError, NonFiniteLossError
from gen_keras.exported.manifest import verify_export
from gen_keras.models import build_model
from gen_keras.models.gan import GAN, GANConfig
from gen_keras.plan import resolve_plan
from gen_keras.tracking import TrackingSink
from gen_keras.training import train
from gen_keras.training.callbacks import HealthGuard
from gen_keras.training.checkpoint import EpochCheckpoint
from gen_keras.training.guards import DiscriminatorCollapseGuard, ModeCollapseGuard, sample_diversity

CONFIGS = str(Path(__file__).resolve().parents[1] / "pipelines/configs/{}_mnist10k.yaml")
# Small networks and a 512-image slice: every kind's whole path in a few seconds of compute.
SMALL = {
    "gan": ["model.g_hidden=[64]", "model.d_hidden=[64]", "train.batch_size=64"],
    "dcgan": ["model.g_filters=8", "model.d_filters=8", "train.batch_size=64"],
    "cgan": ["model.g_filters=8", "model.d_filters=8", "train.batch_size=64"],
    # n_critic = 5: the batch splits into 5 chunks of 16, one per critic step.
    "wgan_gp": ["model.g_filters=8", "model.d_filters=8", "train.batch_size=80"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_cache, mlflow_server):
    """One real 1-epoch run of every kind (dcgan and cgan also save and export)."""
    out = tmp_path_factory.mktemp("gan_runs")
    results = {}
    for kind, small in SMALL.items():
        export = kind in ("dcgan", "cgan")
        cfg = load_config(CONFIGS.format(kind), [
            f"tracking.outputs_dir={out}", f"tracking.run_name={kind}-smoke", "train.epochs=1",
            "train.progress=false", "data.limit_train=512", "data.limit_test=128",
            "train.evaluate_at_end=false", f"train.export_at_end={str(export).lower()}", *small])
        results[kind] = train(cfg, tracking_uri=mlflow_server.uri)
    return results


@pytest.mark.parametrize("kind", list(SMALL))
def test_each_kind_trains_one_epoch_through_the_pipeline(kind, runs, mlflow_server):
    result = runs[kind]
    want = {"d_loss", "g_loss", "d_real", "d_fake"} | ({"gp"} if kind == "wgan_gp" else set())
    assert want <= set(result.history), result.history.keys()
    for key, values in result.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    model = result.model
    assert int(model.g_optimizer.iterations) == 512 // int(SMALL[kind][-1].split("=")[1])
    assert int(model.d_optimizer.iterations) == model.config.d_steps * int(model.g_optimizer.iterations)
    if kind != "wgan_gp":  # probabilities for the cross-entropy game
        assert 0.0 < result.history["d_real"][0] < 1.0 and 0.0 < result.history["d_fake"][0] < 1.0
    run = MlflowClient(mlflow_server.uri).get_run(result.run_id)
    assert {"epoch/d_loss", "epoch/g_loss", "guard/sample_diversity"} <= set(run.data.metrics)
    assert (result.samples_dir / "samples" / "epoch_001.png").is_file()
    # The pipeline scaled the data to the tanh range: samples live in [-1, 1].
    samples = np.asarray(model.generate(model.sample_latent(8),
                                        np.arange(8) % 10 if kind == "cgan" else None))
    assert samples.min() >= -1.0 and samples.max() <= 1.0 and samples.min() < 0.0


def test_save_and_load_restore_the_model_compiled_with_both_optimizers(runs):
    result = runs["dcgan"]
    model, loaded = result.model, load_model(result.model_path)
    assert loaded.compiled and loaded.get_compile_config()["d_loss"] == "bce"
    for name in ("d_optimizer", "g_optimizer"):
        a, b = getattr(model, name), getattr(loaded, name)
        assert int(b.iterations) == int(a.iterations) > 0
        assert len(a.variables) == len(b.variables) > 2  # iterations, lr, Adam moments
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=va.path)
    # Adam's moments really are non-zero (so equality above means something).
    assert any(np.abs(np.asarray(v)).max() > 0 for v in loaded.g_optimizer.variables[2:])
    z = model.sample_latent(6, seed=3)
    np.testing.assert_allclose(np.asarray(loaded.generate(z)), np.asarray(model.generate(z)), atol=1e-6)


@pytest.mark.parametrize("kind", ["dcgan", "cgan"])
def test_export_manifest_and_onnx_generator(kind, runs):
    import onnxruntime as ort

    export_dir = runs[kind].export_dir
    manifest = verify_export(export_dir).manifest  # verifies every file's sha256
    assert manifest["kind"] == kind and manifest["value_range"] == [-1.0, 1.0]
    assert manifest["num_classes"] == (10 if kind == "cgan" else 0)
    assert manifest["conditional"] is (kind == "cgan")
    ep = manifest["endpoints"]["generate"]
    assert [i["name"] for i in ep["inputs"]] == (["z", "label"] if kind == "cgan" else ["z"])
    assert ep["onnx_parity_max_abs_diff"] <= 1e-4 and ep["outputs"] == ["image"]
    sess = ort.InferenceSession(str(export_dir / ep["onnx"]), providers=["CPUExecutionProvider"])
    z = runs[kind].model.sample_latent(4, seed=5)
    feeds = {"z": z}
    if kind == "cgan":  # the label path is live: same z, different class → different image
        feeds["label"] = np.array([1, 1, 7, 7], np.int32)
        zz = np.repeat(z[:1], 4, 0)
        out = sess.run(None, {"z": zz, "label": feeds["label"]})[0]
        assert np.abs(out[0] - out[2]).max() > 1e-3 and np.abs(out[0] - out[1]).max() < 1e-6
    out = sess.run(None, feeds)[0]
    assert out.shape == (4, 28, 28, 1) and out.min() >= -1 and out.max() <= 1


def test_cgan_samples_the_requested_class(runs):
    model = runs["cgan"].model
    z = model.sample_latent(5, seed=9)
    threes = np.asarray(model.generate(z, 3))  # one int → the whole batch
    np.testing.assert_allclose(threes, np.asarray(model.generate(z, np.full(5, 3))), atol=1e-6)
    assert threes.shape == (5, 28, 28, 1)
    assert np.abs(threes - np.asarray(model.generate(z, 8))).max() > 1e-3
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        model.generate(z, 10)
    with pytest.raises(ValueError, match="needs labels"):
        model.generate(z)


def _small_gan(seed=0, **kw):
    return GAN(GANConfig(latent_dim=8, g_hidden=[16], d_hidden=[16], image_shape=(28, 28, 1), **kw),
               seed=seed)


def _mnist_batch(n=16):
    from gen_keras.data.mnist10k import load_arrays

    images, labels = load_arrays()
    x = images[:n].astype("float32").reshape(n, 28, 28, 1) / 127.5 - 1.0
    return x, labels[:n].astype("int32")


def test_mirrored_two_replica_step_equals_one_device_step(data_cache):
    """Same initial weights, same global batch, one step each (SGD: Adam's first step is about
    sign(g) and would hide a gradient-scale error); the generator's weight average too."""
    x, y = _mnist_batch(16)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    sgd = lambda: keras.optimizers.SGD(0.5)  # noqa: E731
    one = _small_gan(g_ema_decay=0.5)
    one.compile(d_optimizer=sgd(), g_optimizer=sgd())
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))  # one per device set
    with strategy.scope():
        two = _small_gan(g_ema_decay=0.5)
        two.compile(d_optimizer=sgd(), g_optimizer=sgd())
    two.set_weights(one.get_weights())
    before = [w.copy() for w in one.get_weights()]
    g_before = one.generator.get_weights()[0].copy()
    logs_one = one.fit(ds, epochs=1, verbose=0).history
    logs_two = two.fit(ds, epochs=1, verbose=0).history
    moved = max(np.abs(a - b).max() for a, b in zip(one.get_weights(), before))
    assert moved > 1e-3  # the step did something
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-5)
    # After 1 step the average has moved (1 - min(0.5, 2/11)) of the way to G's new weights.
    g_moved = one.generator.get_weights()[0] - g_before
    np.testing.assert_allclose(one.generator_ema.get_weights()[0] - g_before, (9 / 11) * g_moved,
                               atol=1e-6)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert math.isclose(logs_one[key][0], logs_two[key][0], abs_tol=1e-5), key


def test_two_replicas_draw_different_noise():
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))  # one per device set
    with strategy.scope():
        model = _small_gan()

    @tf.function
    def draw():
        return strategy.run(lambda: model.replica_normal(4, [8]))

    a, b = strategy.experimental_local_results(draw())
    assert a.shape == b.shape == (4, 8)
    assert not np.allclose(a.numpy(), b.numpy())


class PlantedNaNGAN(GAN):
    """Turns the generator loss into NaN from the G step number ``nan_at`` (1-based) on."""

    nan_at = 6

    def generator_terms(self, labels, m, training=True):
        terms = super().generator_terms(labels, m, training)
        step = self.g_optimizer.iterations + 1
        poison = tf.where(step >= self.nan_at, tf.constant(np.nan, tf.float32), 1.0)
        return {"g_loss": terms["g_loss"] * poison}


def test_planted_nan_stops_training_with_the_loss_and_step_and_keeps_the_good_checkpoint(tmp_path, data_cache):
    x, y = _mnist_batch(64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 4 steps per epoch
    cfg = GANConfig(latent_dim=8, g_hidden=[16], d_hidden=[16])
    model = PlantedNaNGAN(cfg)
    model.compile()
    ckpt = EpochCheckpoint(tmp_path / "ckpt", model, None, {})
    with pytest.raises(NonFiniteLossError, match=r"non-finite g_loss .* epoch 2, step 6") as err:
        model.fit(ds, epochs=3, verbose=0, callbacks=[HealthGuard(), ckpt])
    assert "training stopped" in str(err.value)
    # Stopped at once: 6 steps, not the 12 of three epochs; only epoch 1's checkpoint exists.
    assert int(model.g_optimizer.iterations) == 6 and int(model.d_optimizer.iterations) == 6
    assert ckpt.manager.latest_checkpoint.endswith("ckpt-1")
    fresh = GAN(cfg)
    fresh.compile()
    restored = EpochCheckpoint(tmp_path / "ckpt", fresh, None, {}).restore()
    assert restored == 1 and int(fresh.g_optimizer.iterations) == 4
    assert all(np.all(np.isfinite(w)) for w in fresh.get_weights())


@pytest.fixture
def sink(mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("gan-guards") or client.get_experiment(
        client.create_experiment("gan-guards"))
    run = client.create_run(exp.experiment_id)
    return TrackingSink(client, run.info.run_id)


def test_discriminator_collapse_guard_tags_the_run_after_n_pinned_steps(sink):
    guard = DiscriminatorCollapseGuard(epsilon=0.05, steps=3, sink=sink)
    guard.on_epoch_begin(0)
    # Per-step means: step 1 healthy (0.7 / 0.3), steps 2-4 pinned (0.99 / 0.01). Keras hands
    # the guard running means: (0.7), (0.7+0.99)/2, (0.7+2*0.99)/3, (0.7+3*0.99)/4.
    steps = [(0.7, 0.3), (0.99, 0.01), (0.99, 0.01), (0.99, 0.01)]
    for t in range(len(steps)):
        real = np.mean([s[0] for s in steps[:t + 1]])
        fake = np.mean([s[1] for s in steps[:t + 1]])
        guard.on_train_batch_end(t, {"d_real": real, "d_fake": fake})
        if t == 2:  # only two pinned steps so far
            assert not guard.flagged
    assert guard.flagged and guard.streak == 3
    guard.on_epoch_end(0)
    run = sink.client.get_run(sink.run_id)
    tag = run.data.tags["gen_keras.warning.discriminator_collapse"]
    assert "3 consecutive steps" in tag and "at step 4" in tag
    assert run.data.metrics["guard/collapse_streak"] == 3


def test_mode_collapse_guard_flags_a_constant_generator_and_not_real_digits(sink, data_cache):
    x, _ = _mnist_batch(64)
    real = sample_diversity(x)
    model = _small_gan()
    # The default threshold sits far below real digits' diversity (about 0.77 in [-1, 1]).
    assert real > 3 * model.config.mode_collapse_threshold, real
    guard = ModeCollapseGuard(model, threshold=0.05, n=16, sink=sink)  # this tiny untrained G: ~0.1
    guard.set_model(model)
    guard.on_epoch_end(0)
    healthy = guard.last
    assert "gen_keras.warning.mode_collapse" not in sink.client.get_run(sink.run_id).data.tags
    # Zero the last hidden layer: every z now gives the same image (tanh of the output bias).
    layer = model.generator.get_layer("pixels")
    layer.kernel.assign(tf.zeros_like(layer.kernel))
    guard.on_epoch_end(1)
    assert guard.last < 1e-6 < healthy
    run = sink.client.get_run(sink.run_id)
    assert "near-identical" in run.data.tags["gen_keras.warning.mode_collapse"]
    assert run.data.metrics["guard/sample_diversity"] < 1e-6


def test_bad_gan_configs_name_the_field():
    with pytest.raises(ConfigError, match="model.g_loss='wasserstein'"):
        load_config(None, ["model.kind=dcgan", "model.g_loss=wasserstein"])
    with pytest.raises(ConfigError, match="model.d_norm='batch'"):
        load_config(None, ["model.kind=wgan_gp", "model.d_norm=batch"])
    with pytest.raises(ConfigError, match="model.label_smoothing"):
        load_config(None, ["model.kind=wgan_gp", "model.label_smoothing=0.1"])
    cfg = load_config(None, ["model.kind=gan", "model.d_steps=3", "train.batch_size=64"])
    with pytest.raises(ConfigError, match=r"model.d_steps=3"):
        build_model(cfg.model).compile_for_training(resolve_plan(cfg))


@pytest.mark.parametrize("shape", [(32, 32, 3), (64, 64, 3)])
def test_dcgan_builds_for_color_images(shape):
    cfg = load_config(None, ["model.kind=dcgan", f"model.image_shape={list(shape)}",
                             "model.g_filters=8", "model.d_filters=8"]).model
    model = build_model(cfg)
    images = np.asarray(model.generate(model.sample_latent(2)))
    assert images.shape == (2, *shape) and np.abs(images).max() <= 1.0
    assert np.asarray(model.discriminate(images)).shape == (2,)
    # Radford et al.'s layout: the resolution doubles from 4x4 at every transposed convolution.
    assert model.generator.get_layer("project").units == 4 * 4 * 8 * 2 ** (int(np.log2(shape[0] // 4)) - 1)
