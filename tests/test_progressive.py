"""Progressive growing (issue 15, part 2): the schedule and the fade-in on hand values, the
networks at each level, the schedule's config errors, and a SIGKILLed progressive run that
resumes mid-fade with its level and every optimizer restored (a real process, a real MLflow
server, the bundled digits)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient
from test_faults import kill_in_epoch_2, optimizer_iterations, the_run

from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.models import build_model
from gen_keras.models import progressive as pg
from gen_keras.training.checkpoint import read_state

from conftest import ROOT

CONFIG = ROOT / "pipelines" / "configs" / "dcgan_mnist10k.yaml"
SMALL = ["model.g_filters=8", "model.d_filters=8", "model.d_norm=layer"]


@pytest.mark.parametrize("seen, start, expected", [
    # stable 50 images at the first level, then each level: fade over 100, stable 50.
    (0, 0, 0.0), (50, 0, 0.0), (100, 0, 0.5), (150, 0, 1.0), (199, 0, 1.0), (250, 0, 1.5),
    (300, 0, 2.0), (10_000, 0, 2.0),
    (0, 1, 1.0), (100, 1, 1.5), (150, 1, 2.0), (10_000, 1, 2.0)])
def test_growth_level_on_hand_values(seen, start, expected):
    assert pg.growth_level(seen, start, 2, 100, 50) == pytest.approx(expected)
    in_graph = pg.growth_level(tf.constant(float(seen)), start, 2, 100, 50)
    assert float(in_graph) == pytest.approx(expected)


def test_level_weights_and_the_real_image_pyramid_on_hand_values():
    assert [float(w) for w in pg.level_weights(1.25, 2)] == [1.0, 1.0, 0.25]
    assert [float(w) for w in pg.level_weights(0.0, 2)] == [1.0, 0.0, 0.0]
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    blocks = np.array([[2.5, 4.5], [10.5, 12.5]], np.float32)  # 2x2 means of 0..15 laid out 4x4
    up = np.kron(blocks, np.ones((2, 2), np.float32))
    got = {level: pg.images_at_level(x, level, 2).numpy()[0, :, :, 0] for level in (0.0, 1.0, 1.5, 2.0)}
    np.testing.assert_allclose(got[0.0], np.full((4, 4), 7.5))
    np.testing.assert_allclose(got[1.0], up)
    np.testing.assert_allclose(got[1.5], 0.5 * up + 0.5 * x[0, :, :, 0])
    np.testing.assert_allclose(got[2.0], x[0, :, :, 0])
    assert pg.resolution_at(0.0, 7) == 7 and pg.resolution_at(0.3, 7) == 14 and pg.resolution_at(2.0, 7) == 28


def _model(*overrides):
    cfg = load_config(CONFIG, ["model.progressive=[7,14,28]", *SMALL, *overrides])
    return build_model(cfg.model)


def test_generator_output_follows_the_level():
    """Level 0: the 7x7 toRGB picture, each pixel a 4x4 block; level 2: the full-size image
    layer; level 1.5: half the upsampled 14x14 picture and half the full one."""
    model = _model()
    g = model.generator
    heads = keras.Model(g.input, [g.get_layer("to_rgb0").output, g.get_layer("to_rgb1").output,
                                  g.get_layer("image").output])
    z = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    rgb0, rgb1, full = (t.numpy() for t in heads(z))
    up = lambda a, f: np.repeat(np.repeat(a, f, axis=1), f, axis=2)
    outputs = {}
    for level in (0.0, 1.0, 1.5, 2.0):
        pg.set_level([g], level)
        outputs[level] = g(z).numpy()
    np.testing.assert_allclose(outputs[0.0], up(rgb0, 4), atol=1e-6)
    np.testing.assert_allclose(outputs[1.0], up(rgb1, 2), atol=1e-6)
    np.testing.assert_allclose(outputs[1.5], 0.5 * up(rgb1, 2) + 0.5 * full, atol=1e-6)
    np.testing.assert_allclose(outputs[2.0], full, atol=1e-6)


def test_discriminator_reads_the_image_at_the_level_resolution():
    """At level 0 D sees only the 7x7 average of each 4x4 block: an image and its block-mean
    version score the same; at the full level they do not."""
    model = _model()
    d = model.discriminator
    x = np.random.default_rng(1).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
    lowered = pg.images_at_level(x, 0.0, 2).numpy()
    pg.set_level([d], 0.0)
    np.testing.assert_allclose(d(x).numpy(), d(lowered).numpy(), atol=1e-5)
    pg.set_level([d], 2.0)
    assert np.max(np.abs(d(x).numpy() - d(lowered).numpy())) > 1e-3
    # Mid-fade (level 1.25): the 28x28 block's output enters at a quarter under the 14x14 input path.
    inner = keras.Model(d.input, [d.get_layer("fade_in2").input[0], d.get_layer("fade_in2").input[1],
                                  d.get_layer("fade_in2").output])
    pg.set_level([d], 1.25)
    low, high, blended = (t.numpy() for t in inner(x))
    np.testing.assert_allclose(blended, 0.75 * low + 0.25 * high, atol=1e-6)


def test_progressive_networks_save_and_load_with_their_level(tmp_path):
    from gen_keras.artifacts import load_model, save_model

    model = _model()
    pg.set_level(model.growth_networks(), 1.25)
    z = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    path = save_model(model, tmp_path / "m" / "model.keras")
    loaded = load_model(path)
    assert pg.current_level(loaded.generator) == pytest.approx(1.25)
    np.testing.assert_allclose(loaded.generate(z).numpy(), model.generate(z).numpy(), atol=1e-6)


@pytest.mark.parametrize("config, norm", [("dcgan", "batch"), ("dcgan", "none"), ("dcgan", "spectral"),
                                          ("cgan", "batch"), ("wgan_gp", "layer")])
def test_every_convolutional_gan_grows(config, norm):
    """Every D normalization and the conditional / Wasserstein kinds build progressively, and a
    fresh network samples at the schedule's FIRST level (here 14x14: 2x2 blocks)."""
    cfg = load_config(ROOT / "pipelines" / "configs" / f"{config}_mnist10k.yaml",
                      ["model.progressive=[14,28]", "model.g_filters=8", "model.d_filters=8", f"model.d_norm={norm}"])
    model = build_model(cfg.model)
    assert all(pg.current_level(n) == 1.0 for n in model.growth_networks())
    labels = np.array([1, 2, 3, 4], np.int32) if model.conditional else None
    x = model.generate(model.sample_latent(4, seed=0), labels).numpy()
    assert x.shape == (4, 28, 28, 1)
    blocks = x.reshape(4, 14, 2, 14, 2, 1)
    assert np.abs(blocks - blocks[:, :, :1, :, :1]).max() < 1e-6  # 2x2 blocks: 14x14 upsampled
    assert np.isfinite(model.discriminate(x, labels).numpy()).all()


@pytest.mark.parametrize("schedule, words", [
    ("[7,14]", "up to the image size 28"),  # does not reach the image size
    ("[7,28]", "doubling"),                  # skips a resolution
    ("[8,16,28]", "starting from one of [7, 14]"),
    ("[28]", "grows nothing"),
    ("[7.5,14,28]", "must be an integer"),
])
def test_a_schedule_that_does_not_reach_the_image_size_is_a_config_error(schedule, words):
    with pytest.raises(ConfigError, match="model.progressive") as err:
        load_config(CONFIG, [f"model.progressive={schedule}"])
    assert words in str(err.value)


def test_config_error_before_training_from_the_cli(tmp_path, capsys, monkeypatch):
    from gen_keras.cli import main as cli

    monkeypatch.chdir(tmp_path)
    code = cli(["train", "--config", str(CONFIG), "--set", "model.progressive=[7,14]",
                "--set", f"tracking.outputs_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code != 0 and "model.progressive=[7, 14]" in err and "image size 28" in err
    assert not (tmp_path / "out").exists()  # nothing was started


def _growth_variables(ckpt_prefix: str) -> dict[str, float]:
    reader = tf.train.load_checkpoint(ckpt_prefix)
    return {k: float(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()
            if k.endswith("/level/.ATTRIBUTES/VARIABLE_VALUE")}


def test_sigkill_mid_fade_resumes_with_the_level_and_both_optimizers(mlflow_server, tmp_path, data_cache,
                                                                     capfd, monkeypatch):
    """512 images an epoch (8 steps of 64); the first resolution stable for 128 images, each
    next one faded in over 512 and stable for 128. The level is set at the start of each step,
    so after epoch e it is that of 64 * (8e - 1) images: 0.625 (fading in 14x14), 1.375 (fading
    in 28x28), 2.0. Killed in epoch 2, the resumed run reproduces the uninterrupted levels."""
    out, name, steps = tmp_path / "out", "progressive-killed", 8
    args = ["--config", str(CONFIG), "--tracking-uri", mlflow_server.uri]
    for item in ["train.epochs=3", "data.limit_train=512", "data.limit_test=64", "train.batch_size=64",
                 "model.progressive=[7,14,28]", "model.progressive_fade_images=512",
                 "model.progressive_stable_images=128", f"tracking.outputs_dir={out}",
                 f"tracking.run_name={name}", "train.export_at_end=false", "train.evaluate_at_end=false", *SMALL]:
        args += ["--set", item]
    expected = [pg.growth_level(64 * (8 * e - 1), 0, 2, 512, 128) for e in (1, 2, 3)]
    assert expected == pytest.approx([0.625, 1.375, 2.0])
    ckpt_dir = out / "checkpoints" / name
    killed = kill_in_epoch_2(args, tmp_path, data_cache, ckpt_dir)
    prefix = str(ckpt_dir / "tf" / "ckpt-1")
    assert optimizer_iterations(prefix) == {"d_optimizer": steps, "g_optimizer": steps}
    levels = _growth_variables(prefix)  # G, D and the weight average of G each hold the level
    assert len(levels) == 3 and all(v == pytest.approx(0.625) for v in levels.values()), levels

    from gen_keras.cli import main as cli

    monkeypatch.chdir(tmp_path)
    assert cli(["train", *args]) == 0
    output = capfd.readouterr().out
    assert "Epoch 1/3" not in output and "Epoch 2/3" in output
    done = read_state(ckpt_dir)
    assert done["finished"] and done["run_id"] == killed["run_id"]
    assert optimizer_iterations(str(ckpt_dir / "tf" / "ckpt-3")) == {"d_optimizer": 3 * steps,
                                                                     "g_optimizer": 3 * steps}
    client = MlflowClient(mlflow_server.uri)
    run = the_run(client, name)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "epoch/growth_level"))
    assert [s for s, _ in history] == [1, 2, 3]
    assert [v for _, v in history] == pytest.approx(expected)
    assert run.data.tags["gen_keras.resumed_from_epoch"] == "1"
    grids = sorted(p.name for p in (out / "samples" / name / "samples").glob("epoch_*.png"))
    assert grids[-2:] == ["epoch_002.png", "epoch_003.png"]  # the growth: one grid an epoch


def test_export_of_a_mid_fade_generator_matches_in_onnx(tmp_path):
    """The export carries the level it was written at: ONNX and Keras give the same images at
    level 1.5 (half-grown 28x28), within 1e-4."""
    import onnxruntime as ort

    from gen_keras.export import export_model
    from gen_keras.exported.manifest import verify_export

    model = _model("model.g_ema_decay=0")
    pg.set_level(model.growth_networks(), 1.5)
    export_dir = export_model(model, tmp_path / "export")
    ep = verify_export(export_dir).manifest["endpoints"]["generate"]
    assert ep["onnx_parity_max_abs_diff"] <= 1e-4
    z = model.sample_latent(4, seed=5)
    out = ort.InferenceSession(str(export_dir / ep["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"z": z})[0]
    np.testing.assert_allclose(out, model.generate(z).numpy(), atol=1e-4)
    pg.set_level(model.growth_networks(), 2.0)
    assert np.abs(model.generate(z).numpy() - out).max() > 1e-3  # the level is live, not constant


def test_the_shipped_progressive_config_grows_7_14_28():
    cfg = load_config(ROOT / "pipelines" / "configs" / "dcgan_progressive_mnist10k.yaml")
    assert cfg.model.growth_schedule() == (0, 2) and cfg.model.d_norm == "layer"
    # 28x28 fully grown after 160,000 images (20 of the 35 epochs of 8,000 digits).
    assert pg.growth_level(159_999, 0, 2, 40_000, 40_000) < 2.0 == pg.growth_level(160_000, 0, 2, 40_000, 40_000)


def test_growth_under_mirrored_strategy_on_two_cpus(data_cache):
    """Two replicas: the level is set in replica context (one write, mirrored), counts the
    GLOBAL batch, and both replicas hold the same level after the epoch."""
    from test_distribute import MIRRORED, build_in

    from gen_keras import distribute
    from gen_keras.data import make_datasets

    cfg = load_config(CONFIG, ["model.progressive=[7,14,28]", *SMALL, *MIRRORED, "train.mixed_precision=none",
                               "model.progressive_fade_images=64", "model.progressive_stable_images=32",
                               "train.batch_size=32", "data.limit_train=96", "data.limit_test=32", "train.epochs=1"])
    strategy = distribute.make_strategy(cfg.distribute)
    assert strategy.num_replicas_in_sync == 2
    model = build_in(strategy, cfg)
    history = model.fit(make_datasets(cfg).train, epochs=1, verbose=0).history
    # 3 global steps of 32: the third starts after 64 images: (64 - 32) / 64 = 0.5.
    assert history["growth_level"] == [pytest.approx(0.5)]
    for network in model.growth_networks():
        level = next(layer.level for layer in network.layers if isinstance(layer, pg.GrowthLevel))
        copies = [float(c.numpy()) for c in strategy.experimental_local_results(level.value)]
        assert copies == [pytest.approx(0.5)] * 2, (network.name, copies)
