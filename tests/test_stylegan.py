"""The style-based GAN and the data-efficient recipe, for real: a short training run through the
pipeline (mnist10k slice), save/load with the tracked average w and both optimizers, the four
exported operations with ONNX parity, truncation and style mixing on the model, a bf16 model
exporting float32, the 2-replica step against the 1-device step (stylegan, and a DCGAN with
DiffAugment + R1 + spectral norm), lazy R1, and the config errors."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gen_keras import distribute
from gen_keras.artifacts import load_model
from gen_keras.config import DistributeConfig
from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.models import build_model
from gen_keras.models import style_layers as sl
from gen_keras.models.spectral_norm import SpectralConv2D, SpectralDense
from gen_keras.models.stylegan import StyleGAN, StyleGANConfig
from gen_keras.plan import resolve_plan
from gen_keras.training import train

CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "configs"
# A tiny style-based GAN: every piece is there (mapping, mixing, noise, R1, EMA).
TINY = ["model.g_filters=4", "model.d_filters=4", "model.max_filters=16", "model.w_dim=16",
        "model.latent_dim=16", "model.mapping_layers=2"]
ENDPOINTS = {"generate", "generate_truncated", "mapping", "synthesis", "mix"}


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache):
    out = tmp_path_factory.mktemp("stylegan_run")
    cfg = load_config(CONFIGS / "stylegan_mnist10k.yaml", [
        f"tracking.outputs_dir={out}", "tracking.run_name=stylegan-smoke", "train.epochs=1",
        "train.progress=false", "data.limit_train=256", "data.limit_test=64", "train.batch_size=32",
        "train.evaluate_at_end=false", "train.mixed_precision=none", *TINY])
    return train(cfg, tracking_uri=f"sqlite:///{out / 'mlflow.db'}")


def tiny_model(precision="float32", **fields) -> StyleGAN:
    cfg = load_config(None, ["model.kind=stylegan", *TINY]).model
    for k, v in fields.items():
        setattr(cfg, k, v)
    return build_model(cfg, precision=precision)


def test_stylegan_trains_one_epoch_through_the_pipeline(run):
    model = run.model
    assert set(run.history) >= {"d_loss", "g_loss", "d_real", "d_fake", "r1", "val_r1"}
    for key, values in run.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 256 // 32
    assert run.history["r1"][0] > 0  # computed on the due steps (1, 5 of 8), averaged over them
    assert (run.samples_dir / "samples" / "epoch_001.png").is_file()
    # The average w moved away from its zero start, and the EMA generator holds the same value.
    assert np.abs(model.w_avg).max() > 0
    np.testing.assert_array_equal(
        model.generator.get_layer("truncation").w_avg.numpy(),
        model.generator_ema.get_layer("truncation").w_avg.numpy())
    samples = np.asarray(model.generate(model.sample_latent(8)))
    assert samples.shape == (8, 28, 28, 1) and samples.min() >= -1 and samples.max() <= 1


def test_save_and_load_keep_the_average_w_the_fixed_noise_and_both_optimizers(run):
    model, loaded = run.model, load_model(run.model_path)
    assert isinstance(loaded, StyleGAN) and loaded.compiled
    for a, b in zip(model.get_weights(), loaded.get_weights()):  # w_avg and noise maps included
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.w_avg, model.w_avg)
    for name in ("d_optimizer", "g_optimizer"):
        a, b = getattr(model, name), getattr(loaded, name)
        assert int(b.iterations) == int(a.iterations) > 0 and len(a.variables) > 2
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=va.path)
    z = model.sample_latent(5, seed=2)
    np.testing.assert_array_equal(np.asarray(loaded.generate(z)), np.asarray(model.generate(z)))
    np.testing.assert_array_equal(np.asarray(loaded.generate(z, psi=0.5)),
                                  np.asarray(model.generate(z, psi=0.5)))


def test_export_has_the_five_operations_with_onnx_parity(run):
    import onnxruntime as ort

    from gen_keras.exported.reader import ExportReader

    model, export_dir = run.model, run.export_dir
    reader = ExportReader(export_dir)  # verifies every sha256
    manifest = reader.manifest
    assert set(manifest["endpoints"]) == ENDPOINTS
    inputs = {name: [(i["name"], i["shape"]) for i in ep["inputs"]]
              for name, ep in manifest["endpoints"].items()}
    assert inputs == {"generate": [("z", [None, 16])],
                      "generate_truncated": [("z", [None, 16]), ("psi", [None])],
                      "mapping": [("z", [None, 16])],
                      "synthesis": [("ws", [None, 6, 16])],
                      "mix": [("z", [None, 16]), ("z_mix", [None, 16]), ("crossover", [None])]}
    for ep in manifest["endpoints"].values():
        assert ep["onnx_parity_max_abs_diff"] <= 1e-4

    def onnx(op, **feeds):
        sess = ort.InferenceSession(str(export_dir / f"{op}.onnx"), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    z = model.sample_latent(4, seed=7)
    want = np.asarray(model.generate(z))
    # Existing consumers call generate with z only; it is the untruncated sample.
    np.testing.assert_allclose(reader.generate(z), want, atol=1e-4)
    np.testing.assert_allclose(onnx("generate_truncated", z=z, psi=np.ones(4, np.float32)), want, atol=1e-4)
    w = np.asarray(model.mapping(z))
    np.testing.assert_allclose(onnx("mapping", z=z), w, atol=1e-4)
    ws = np.repeat(w[:, None], 6, axis=1)
    np.testing.assert_allclose(onnx("synthesis", ws=ws), want, atol=1e-4)
    # mix: the styles of z before the crossover layer, those of z_mix from it on (style_mix).
    z2 = model.sample_latent(4, seed=8)
    crossover = model.default_crossover
    np.testing.assert_allclose(onnx("mix", z=z, z_mix=z2, crossover=np.full(4, crossover, np.int32)),
                               np.asarray(model.style_mix(z, z2, crossover)), atol=1e-4)
    # psi = 0: every code gives the image of the tracked average w.
    at_mean = reader.run("generate_truncated", z=z, psi=np.zeros(4, np.float32))["image"]
    mean_image = np.asarray(model.synthesis(model.w_avg[None]))
    np.testing.assert_allclose(at_mean, np.repeat(mean_image, 4, axis=0), atol=1e-4)


def test_truncation_at_psi_zero_gives_the_image_of_the_average_w():
    model = tiny_model()
    truncation = model.sampler.get_layer("truncation")
    truncation.w_avg.assign(np.random.default_rng(0).standard_normal(16).astype(np.float32))
    z = model.sample_latent(3, seed=1)
    at_mean = np.asarray(model.generate(z, psi=0.0))
    want = np.asarray(model.synthesis(model.w_avg[None]))[0]
    for image in at_mean:
        np.testing.assert_allclose(image, want, atol=1e-6)
    # psi = 1 is no truncation; psi between moves w on the line to w_avg.
    np.testing.assert_allclose(np.asarray(model.generate(z, psi=1.0)), np.asarray(model.generate(z)), atol=1e-6)
    w = np.asarray(model.mapping(z))
    np.testing.assert_allclose(np.asarray(model.truncate(w, [0.25, 0.5, 1.0])),
                               model.w_avg + np.array([0.25, 0.5, 1.0])[:, None] * (w - model.w_avg), atol=1e-6)
    with pytest.raises(ValueError, match=r"psi must be in \[0, 1\]"):
        model.generate(z, psi=1.5)
    with pytest.raises(ValueError, match="give one number or 3"):
        model.generate(z, psi=[0.5, 0.5])


def _style_index_of_each_layer(synthesis) -> dict[str, int]:
    """Which TakeStyle(i) feeds each StyleConv in the functional graph."""
    out = {}
    for layer in synthesis.layers:
        if isinstance(layer, sl.StyleConv):
            inbound = layer._inbound_nodes[0].parent_nodes
            out[layer.name] = next(n.operation.index for n in inbound if isinstance(n.operation, sl.TakeStyle))
    return out


def test_style_mixing_crossover_takes_coarse_layers_from_the_first_code():
    model = tiny_model()
    # Styles are consumed coarse to fine, so a crossover c gives the layers at and below some
    # resolution w1's style and the rest w2's (a toRGB shares its style with the next conv).
    assert _style_index_of_each_layer(model.sampler.get_layer("synthesis")) == {
        "conv7": 0, "to_rgb7": 1, "conv14_up": 1, "conv14": 2, "to_rgb14": 3,
        "conv28_up": 3, "conv28": 4, "to_rgb28": 5}
    z1, z2 = model.sample_latent(2, seed=3), model.sample_latent(2, seed=4)
    w1, w2 = np.asarray(model.mapping(z1)), np.asarray(model.mapping(z2))
    for crossover in (1, 3, 5):
        ws = np.concatenate([np.repeat(w1[:, None], crossover, 1),
                             np.repeat(w2[:, None], 6 - crossover, 1)], axis=1)
        np.testing.assert_allclose(np.asarray(model.style_mix(z1, z2, crossover)),
                                   np.asarray(model.synthesis(ws)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.style_mix(z1, z1, 3)), np.asarray(model.generate(z1)), atol=1e-6)
    # Every layer's style matters: changing any one of the six changes the image.
    base = np.repeat(w1[:1, None], 6, axis=1)
    for i in range(6):
        changed = base.copy()
        changed[:, i] = w2[0]
        assert np.abs(np.asarray(model.synthesis(changed)) - np.asarray(model.synthesis(base))).max() > 1e-6, i
    with pytest.raises(ValueError, match=r"crossover=6 must be in 1..5"):
        model.style_mix(z1, z2, 6)


def test_training_fakes_mix_styles_and_draw_fresh_noise():
    model = tiny_model(style_mixing=1.0)
    model.compile()
    model.generator.get_layer("synthesis").get_layer("conv28").noise_strength.assign(1.0)
    a = np.asarray(model.fake_images(4, None, training=True))
    b = np.asarray(model.fake_images(4, None, training=True))
    assert a.shape == (4, 28, 28, 1) and np.abs(a - b).max() > 1e-3  # fresh z and noise per call


def test_a_mixed_bfloat16_stylegan_exports_float32(tmp_path):
    from gen_keras.export import export_model
    from gen_keras.exported.reader import ExportReader
    from gen_keras.precision import float32_twin

    model = tiny_model(precision="mixed_bfloat16")
    syn = model.sampler.get_layer("synthesis")
    assert syn.get_layer("conv14").compute_dtype == "bfloat16"
    export_model(model, tmp_path / "export", run_id="test", name="bf16")
    reader = ExportReader(tmp_path / "export")
    assert set(reader.operations) == ENDPOINTS
    # float32 throughout; the one integer input is mix's crossover layer index
    assert {(i["name"], i["dtype"]) for ep in reader.manifest["endpoints"].values() for i in ep["inputs"]
            if i["dtype"] != "float32"} == {("crossover", "int32")}
    z = model.sample_latent(3, seed=5)
    np.testing.assert_allclose(reader.generate(z), np.asarray(float32_twin(model).generate(z)), atol=1e-4)
    # The bf16 model itself differs by its rounding only (the untrained tanh output is steep: mean).
    assert float(np.mean(np.abs(reader.generate(z) - np.asarray(model.generate(z))))) < 0.05


# ------------------------------------------------------------------------------------------------
# Two replicas = one device, lazy R1
# ------------------------------------------------------------------------------------------------
RECIPES = {
    "stylegan": ["model.kind=stylegan", *TINY, "model.augment=[color,translation,cutout]"],
    # The MLP GAN: the DCGAN's generator has batch norm, whose statistics are per replica.
    "gan_recipe": ["model.kind=gan", "model.g_hidden=[16]", "model.d_hidden=[16]", "model.r1_gamma=1.0",
                   "model.augment=[color,translation,cutout]"],
}


def _mnist_batch(n=16):
    from gen_keras.data.mnist10k import load_arrays

    images, labels = load_arrays()
    return images[:n].astype("float32").reshape(n, 28, 28, 1) / 127.5 - 1.0, labels[:n].astype("int32")


def _sgd_model(overrides, strategy=None, **compile_kwargs):
    cfg = load_config(None, [*overrides, "train.mixed_precision=none"]).model
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(cfg)
        model.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1),
                      **compile_kwargs)
    return model


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_two_replica_step_equals_one_device_step(recipe, data_cache):
    """SGD (Adam's first step hides gradient-scale errors); augmentation, R1, style mixing,
    noise, minibatch stddev, the average w and the spectral-norm estimates all included."""
    x, y = _mnist_batch(16)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    one = _sgd_model(RECIPES[recipe])
    two = _sgd_model(RECIPES[recipe], distribute.make_strategy(
        DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"])))
    two.set_weights(one.get_weights())
    before = [w.copy() for w in one.get_weights()]
    logs_one = one.fit(ds, epochs=1, verbose=0).history
    logs_two = two.fit(ds, epochs=1, verbose=0).history
    moved = max(float(np.abs(a - b).max()) for a, b in zip(one.get_weights(), before))
    assert moved > 1e-3
    for a, b, v in zip(one.get_weights(), two.get_weights(), one.weights):
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=v.path)
    assert "r1" in logs_one
    for key in logs_one:
        assert logs_two[key][0] == pytest.approx(logs_one[key][0], abs=1e-5), key
    if recipe == "stylegan":
        assert np.abs(one.w_avg).max() > 0


def test_spectral_norm_estimates_stay_identical_on_both_replicas(data_cache):
    x, y = _mnist_batch(16)
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    model = _sgd_model(["model.kind=dcgan", "model.g_filters=4", "model.d_filters=4", "model.d_norm=spectral",
                        "model.r1_gamma=1.0", "model.augment=[translation]"], strategy)
    u_before = [layer.u.numpy().copy() for layer in model.discriminator.layers if hasattr(layer, "u")]
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0).history
    assert all(np.isfinite(v[0]) for v in history.values())
    estimates = [layer.u for layer in model.discriminator.layers if hasattr(layer, "u")]
    assert len(estimates) == len(u_before) == 3  # two convolutions and the score
    for u, before in zip(estimates, u_before):
        copies = [c.numpy() for c in strategy.experimental_local_results(u.value)]
        np.testing.assert_array_equal(copies[0], copies[1])
        assert np.abs(copies[0] - before).max() > 0  # updated in the training calls


def test_r1_is_lazy_every_interval_steps_and_reaches_the_discriminator(data_cache):
    x, y = _mnist_batch(8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    base = ["model.kind=dcgan", "model.g_filters=4", "model.d_filters=4", "model.d_norm=none",
            "model.r1_interval=2"]

    def d_after_one_step(r1_gamma, start_iteration):
        model = _sgd_model([*base, f"model.r1_gamma={r1_gamma}"])
        model.set_weights(reference.get_weights())
        model.d_optimizer.iterations.assign(start_iteration)
        logs = model.fit(ds, epochs=1, verbose=0).history
        return model.discriminator.get_weights(), logs

    reference = _sgd_model(base)
    for iteration, want in [(0, True), (1, False), (2, True), (5, False)]:
        reference.d_optimizer.iterations.assign(iteration)
        assert bool(reference.r1_due()) is want, iteration
    plain, _ = d_after_one_step(0.0, 1)
    skipped, logs = d_after_one_step(5.0, 1)  # iteration 1 of interval 2: no R1 this step
    for a, b in zip(plain, skipped):
        np.testing.assert_array_equal(a, b)
    assert logs["r1"][0] == 0.0  # no computed value in the mean
    plain, _ = d_after_one_step(0.0, 2)
    applied, logs = d_after_one_step(5.0, 2)
    assert max(float(np.abs(a - b).max()) for a, b in zip(plain, applied)) > 1e-4
    assert logs["r1"][0] > 0


# ------------------------------------------------------------------------------------------------
# Configs: defaults unchanged, the recipe's fields, errors naming the field
# ------------------------------------------------------------------------------------------------
def test_existing_gan_configs_train_as_before():
    cfg = load_config(CONFIGS / "dcgan_mnist10k.yaml", []).model
    assert cfg.augment == [] and cfg.r1_gamma == 0.0 and cfg.d_norm == "batch"
    model = build_model(cfg)
    assert model.tracker_names == ("d_loss", "g_loss", "d_real", "d_fake")
    images = tf.zeros([2, 28, 28, 1])
    assert model.augment(images) is images


def test_dcgan_recipe_config_and_the_spectral_norm_option():
    cfg = load_config(CONFIGS / "dcgan_aug_mnist10k.yaml", []).model
    assert cfg.kind == "dcgan" and cfg.d_norm == "none" and cfg.r1_gamma > 0 and cfg.augment
    model = build_model(cfg)
    assert "r1" in model.tracker_names
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.discriminator.layers)
    spectral = build_model(load_config(CONFIGS / "dcgan_aug_mnist10k.yaml", ["model.d_norm=spectral"]).model)
    kinds = {type(layer) for layer in spectral.discriminator.layers}
    assert {SpectralConv2D, SpectralDense} <= kinds and keras.layers.Conv2D not in kinds


@pytest.mark.parametrize("overrides, field", [
    (["model.kind=dcgan", "model.augment=[blur]"], "model.augment"),
    (["model.kind=dcgan", "model.augment=[cutout,cutout]"], "model.augment"),
    (["model.kind=gan", "model.augment_cutout=1.5"], "model.augment_cutout"),
    (["model.kind=dcgan", "model.r1_gamma=-1"], "model.r1_gamma"),
    (["model.kind=dcgan", "model.r1_gamma=1", "model.r1_interval=0"], "model.r1_interval"),
    (["model.kind=dcgan", "model.r1_gamma=1", "model.d_norm=batch"], "model.d_norm='batch'"),
    (["model.kind=stylegan", "model.style_mixing=1.5"], "model.style_mixing"),
    (["model.kind=stylegan", "model.w_avg_decay=1"], "model.w_avg_decay"),
    (["model.kind=stylegan", "model.mapping_layers=0"], "model.mapping_layers"),
    (["model.kind=stylegan", "model.mapping_lr_multiplier=0"], "model.mapping_lr_multiplier"),
    (["model.kind=stylegan", "model.num_classes=10"], "model.num_classes"),
    (["model.kind=stylegan", "model.image_shape=[48,48,1]"], "model.image_shape"),
])
def test_bad_recipe_and_stylegan_configs_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace(".", r"\.")):
        load_config(None, overrides)


def test_stylegan_config_round_trips_and_compiles_from_its_plan():
    cfg = load_config(CONFIGS / "stylegan_mnist10k.yaml", ["model.g_filters=4", "model.d_filters=4"])
    model = build_model(cfg.model)
    again = StyleGAN.from_config(model.get_config())
    assert isinstance(again.config, StyleGANConfig) and again.config == model.config
    model.compile_for_training(resolve_plan(cfg))
    compile_config = model.get_compile_config()
    assert compile_config["d_loss"] == "bce" and compile_config["g_loss"] == "non_saturating"
    assert float(model.g_optimizer.beta_1) == 0.0 and float(model.g_optimizer.beta_2) == 0.99


@pytest.mark.parametrize("shape", [(32, 32, 3), (64, 64, 3)])
def test_stylegan_builds_for_colour_images(shape):
    model = tiny_model(image_shape=shape)
    images = np.asarray(model.generate(model.sample_latent(2)))
    assert images.shape == (2, *shape) and np.abs(images).max() <= 1.0
    assert model.num_ws == (8 if shape[0] == 32 else 10)
    assert np.asarray(model.discriminate(images)).shape == (2,)
