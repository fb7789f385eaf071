"""The autoencoder family: DAE corruption and loss, beta-VAE objective and schedule, CVAE label
path, linear AE = PCA; each new kind trains for real through gen_keras.training.train, saves,
loads with identical outputs, and exports (the exporter enforces ONNX parity)."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from gen_keras.anomaly import score_export, score_model
from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.data import load_split_arrays
from gen_keras.errors import ConfigError
from gen_keras.exported.manifest import verify_export
from gen_keras.models import build_model
from gen_keras.models.beta_vae import kl_schedule
from gen_keras.plan import resolve_plan
from gen_keras.precision import float32_twin
from gen_keras.training import train
from gen_keras.training.checkpoint import read_state

from conftest import ROOT

CONFIGS = ROOT / "pipelines" / "configs"
SMALL = ["model.filters=8", "model.hidden=32"]  # untrained models for loss checks: fast to build


def config(kind, overrides=()):
    return load_config(CONFIGS / f"{kind}_mnist10k.yaml", list(overrides))


def smoke_run(kind, smoke_overrides, mlflow_server, extra=()):
    cfg = config(kind, [*smoke_overrides, "train.epochs=1", *extra])
    return train(cfg, tracking_uri=mlflow_server.uri)


def assert_exported(result, endpoints):
    manifest = verify_export(result.export_dir).manifest
    assert set(manifest["endpoints"]) == set(endpoints)
    for ep in manifest["endpoints"].values():
        assert ep["onnx_parity_max_rel_diff"] <= 1e-4
    return manifest


def numpy_bce(x, logits):
    """-log Bernoulli(x | sigmoid(l)) summed per example, in the stable form."""
    x, l = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    per_pixel = np.maximum(l, 0) - l * x + np.log1p(np.exp(-np.abs(l)))
    return per_pixel.reshape(len(x), -1).sum(1)


def numpy_kl(mean, log_var):
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    return 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, axis=1)


# ------------------------------------------------------------------------------------------
# Denoising autoencoder
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise,amount", [("gaussian", 0.3), ("masking", 0.25),
                                          ("salt_and_pepper", 0.2)])
def test_dae_corruption_statistics(noise, amount):
    dae = build_model(config("dae", [*SMALL, f"model.noise={noise}",
                                     f"model.noise_amount={amount}"]).model)
    x = np.full((64, 28, 28, 1), 0.5, "float32")  # 50,176 pixels
    assert dae.corrupt(x, training=False) is x  # never at evaluation
    a = dae.corrupt(x, training=True).numpy()
    b = dae.corrupt(x, training=True).numpy()
    assert not np.array_equal(a, b)  # fresh noise each step
    if noise == "gaussian":
        d = a - x
        assert abs(d.mean()) < 0.005 and abs(d.std() - amount) < 0.005
    elif noise == "masking":
        assert set(np.unique(a)) == {0.0, 0.5}
        assert abs((a == 0).mean() - amount) < 0.01
    else:
        assert set(np.unique(a)) == {0.0, 0.5, 1.0}
        assert abs((a == 0).mean() - amount / 2) < 0.01
        assert abs((a == 1).mean() - amount / 2) < 0.01


def test_dae_trains_on_the_clean_target():
    """One step's reported loss = BCE(clean x, decoder(encoder(corrupted x))) by hand, with the
    very noise that step drew; evaluation sees the clean input."""
    dae = build_model(config("dae", [*SMALL, "model.noise=masking", "model.noise_amount=0.5"]).model)
    dae.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: the weights stay put
    # Untrained logits sit near 0, where BCE barely depends on the target: shift them.
    dae.decoder.get_layer("logits").bias.assign(np.full((1,), 3.0, "float32"))
    x = np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    labels = np.zeros(8, "int32")
    state = dae.seed_generator.state.numpy()
    logs = dae.train_step((tf.constant(x), tf.constant(labels)))
    dae.seed_generator.state.assign(state)  # replay the same corruption
    noisy = dae.corrupt(x, training=True).numpy()
    assert 0.4 < (noisy == 0).mean() < 0.6
    want = numpy_bce(x, dae.decoder(dae.encoder(noisy))).mean()
    np.testing.assert_allclose(float(logs["loss"]), want, rtol=1e-5)
    noisy_target = numpy_bce(noisy, dae.decoder(dae.encoder(noisy))).mean()
    assert abs(want - noisy_target) > 10.0  # the target really is the clean x, not the noisy one
    clean_loss = numpy_bce(x, dae.decoder(dae.encoder(x)))
    np.testing.assert_allclose(dae.score(x), clean_loss, rtol=1e-5)
    for tracker in dae.metrics:  # train and test share the trackers; Keras resets them
        tracker.reset_state()
    test_logs = dae.test_step((tf.constant(x), tf.constant(labels)))
    np.testing.assert_allclose(float(test_logs["loss"]), clean_loss.mean(), rtol=1e-5)


def test_dae_smoke_run_save_load_export(smoke_overrides, mlflow_server):
    r = smoke_run("dae", smoke_overrides, mlflow_server, ["model.noise=salt_and_pepper",
                                                         "model.noise_amount=0.3"])
    assert np.isfinite(r.final_metrics["loss"])
    x = np.random.default_rng(1).uniform(0, 1, (6, 28, 28, 1)).astype("float32")
    loaded = load_model(r.model_path)
    np.testing.assert_array_equal(loaded.denoise(x), r.model.denoise(x))
    assert loaded.config == r.model.config
    manifest = assert_exported(r, {"generate", "encode", "reconstruct", "score"})
    assert "denoise" in manifest["endpoints"]["reconstruct"]["aliases"]
    # The anomaly score from the export (onnxruntime) equals the model's own (its float32 twin:
    # the export's weights in float32, whatever precision training used).
    np.testing.assert_allclose(score_export(r.export_dir, x), score_model(float32_twin(r.model), x),
                               rtol=1e-4)


# ------------------------------------------------------------------------------------------
# beta-VAE
# ------------------------------------------------------------------------------------------
def test_kl_schedule_hand_values():
    cases = [  # (step, beta, warmup, c_max, c_steps) -> (w, C)
        ((0, 4.0, 100, 0.0, 0), (0.0, 0.0)),
        ((25, 4.0, 100, 0.0, 0), (1.0, 0.0)),
        ((100, 4.0, 100, 0.0, 0), (4.0, 0.0)),
        ((250, 4.0, 100, 0.0, 0), (4.0, 0.0)),  # stays at beta after the warm-up
        ((7, 4.0, 0, 0.0, 0), (4.0, 0.0)),  # no warm-up
        ((30, 1.0, 0, 25.0, 100), (1.0, 7.5)),
        ((500, 1.0, 0, 25.0, 100), (1.0, 25.0)),
        ((10, 1.0, 0, 25.0, 0), (1.0, 25.0)),  # capacity at once
    ]
    for args, (w, c) in cases:
        got = kl_schedule(*args)
        assert (float(got[0]), float(got[1])) == pytest.approx((w, c)), args


def test_beta_vae_objective_at_given_steps():
    kl = tf.constant([2.0, 10.0])
    m = build_model(config("beta_vae", [*SMALL, "model.beta=4", "model.warmup_steps=100"]).model)
    # Without an optimizer (inference) the schedule is over: 4 * KL.
    np.testing.assert_allclose(m.kl_weight_and_penalty(kl), [8.0, 40.0])
    m.compile(optimizer=keras.optimizers.Adam())
    m.optimizer.iterations.assign(50)  # half-way: w = 2
    np.testing.assert_allclose(m.kl_weight_and_penalty(kl), [4.0, 20.0])
    # The full objective: loss - reconstruction = w * KL, with KL from the encoder by hand.
    x = (np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)) > 0.5).astype("float32")
    terms = m.loss_terms(x)
    mean, log_var = m.encode(x)
    np.testing.assert_allclose(terms["kl"], numpy_kl(mean, log_var), rtol=1e-4)
    np.testing.assert_allclose(terms["loss"] - terms["reconstruction"], 2.0 * terms["kl"],
                               rtol=1e-4, atol=1e-4)

    cap = build_model(config("beta_vae", [*SMALL, "model.beta=10", "model.warmup_steps=0",
                                          "model.capacity_max=25", "model.capacity_steps=100"]).model)
    cap.compile(optimizer=keras.optimizers.Adam())
    cap.optimizer.iterations.assign(30)  # C = 7.5 nats: 10 * |2 - 7.5|, 10 * |10 - 7.5|
    np.testing.assert_allclose(cap.kl_weight_and_penalty(kl), [55.0, 25.0], rtol=1e-6)
    cap.optimizer.iterations.assign(1000)  # C = 25
    np.testing.assert_allclose(cap.kl_weight_and_penalty(kl), [230.0, 150.0], rtol=1e-6)


def test_beta_vae_config_errors():
    with pytest.raises(ConfigError, match="model.beta"):
        config("beta_vae", ["model.beta=-1"])
    with pytest.raises(ConfigError, match="model.capacity_steps"):
        config("beta_vae", ["model.capacity_steps=10", "model.capacity_max=0"])
    with pytest.raises(ConfigError, match="model.noise"):
        config("dae", ["model.noise=speckle"])
    with pytest.raises(ConfigError, match="model.noise_amount"):
        config("dae", ["model.noise=masking", "model.noise_amount=1.5"])
    with pytest.raises(ConfigError, match="model.num_classes"):
        config("cvae", ["model.num_classes=0"])
    with pytest.raises(ConfigError, match="model.latent_dim"):
        config("linear_ae", ["model.latent_dim=784"])


def test_beta_vae_smoke_run_schedule_survives_save_load_and_checkpoint(
        smoke_overrides, mlflow_server):
    r = smoke_run("beta_vae", smoke_overrides, mlflow_server,
                  ["model.warmup_steps=1000", "model.latent_dim=4"])
    steps = 1024 // 64
    assert int(r.model.optimizer.iterations.numpy()) == steps
    kl = tf.constant([3.0])
    want = 4.0 * steps / 1000 * 3.0  # mid-warm-up: w = beta * t / N
    np.testing.assert_allclose(r.model.kl_weight_and_penalty(kl), [want], rtol=1e-5)

    loaded = load_model(r.model_path)
    assert int(loaded.optimizer.iterations.numpy()) == steps
    np.testing.assert_allclose(loaded.kl_weight_and_penalty(kl), [want], rtol=1e-5)
    z = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.generate(z), r.model.generate(z))

    # The epoch checkpoint restores the step into a fresh model too.
    fresh = build_model(r.model.config)
    fresh.compile_for_training(resolve_plan(config("beta_vae")))
    ckpt = read_state(r.model_path.parents[2] / "checkpoints" / r.run_name)["checkpoint"]
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(ckpt).expect_partial()
    assert int(fresh.optimizer.iterations.numpy()) == steps
    np.testing.assert_allclose(fresh.kl_weight_and_penalty(kl), [want], rtol=1e-5)
    assert_exported(r, {"generate", "encode", "reconstruct", "score"})


# ------------------------------------------------------------------------------------------
# Conditional VAE (its real training run is in tests/test_latent.py, whose tools use it)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder,first", [("mlp", "hidden0"), ("conv", "hidden")])
def test_cvae_label_path_by_hand(decoder, first):
    cvae = build_model(config("cvae", [*SMALL, "model.latent_dim=3",
                                       f"model.decoder={decoder}"]).model)
    z = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    y = np.array([0, 3, 9, 3], "int32")
    # The decoder's first dense layer sees concat(z, one_hot(y)): check it by hand.
    hidden = keras.Model(cvae.decoder.inputs, cvae.decoder.get_layer(first).output)
    kernel, bias = (np.asarray(w) for w in cvae.decoder.get_layer(first).weights)
    want = np.maximum(np.concatenate([z, np.eye(10)[y]], 1) @ kernel + bias, 0)
    np.testing.assert_allclose(hidden([z, y]), want, rtol=1e-5, atol=1e-6)
    # The label changes the image; the same label gives the same image.
    a, b = cvae.generate(z, y).numpy(), cvae.generate(z, np.array([1, 3, 9, 3], "int32")).numpy()
    assert not np.allclose(a[0], b[0]) and np.array_equal(a[1:], b[1:])
    # The encoder takes the label too, and the objective is recon + KL of q(z|x, y).
    x = (np.random.default_rng(1).uniform(0, 1, (4, 28, 28, 1)) > 0.5).astype("float32")
    m0, _ = cvae.encode(x, np.zeros(4, "int32"))
    m1, lv1 = cvae.encode(x, np.ones(4, "int32"))
    assert not np.allclose(m0, m1)
    terms = cvae.loss_terms(x, np.ones(4, "int32"))
    np.testing.assert_allclose(terms["kl"], numpy_kl(m1, lv1), rtol=1e-4)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + terms["kl"], rtol=1e-5)


def test_cvae_label_errors():
    cvae = build_model(config("cvae", SMALL).model)
    z = np.zeros((2, cvae.latent_dim), "float32")
    with pytest.raises(ValueError, match="class-conditional"):
        cvae.generate(z)
    with pytest.raises(ValueError, match=r"unknown class\(es\) \[10\].*0\.\.9"):
        cvae.generate(z, np.array([1, 10]))
    with pytest.raises(ValueError, match="unknown class"):
        cvae.generate(z, np.array([-1, 2]))


# ------------------------------------------------------------------------------------------
# Linear autoencoder = PCA
# ------------------------------------------------------------------------------------------
K = 6  # lambda_6 / lambda_7 = 1.27 on mnist10k's train split: the widest gap for 2 <= k <= 16
MAX_ANGLE_DEG = 1.5  # reached: about 0.6 degrees in every seed tried (0, 1, 2, 5)


def test_linear_ae_smoke_run_then_pca_subspace(smoke_overrides, mlflow_server):
    """Baldi & Hornik 1989: trained on the squared error, the linear AE's decoder spans the
    top-k principal subspace. A real 1-epoch run through train() (saved, loaded, exported),
    then the same model trained on with minibatch Adam on all 8,000 training images."""
    keras.utils.set_random_seed(0)
    r = smoke_run("linear_ae", smoke_overrides, mlflow_server, [f"model.latent_dim={K}"])
    model = r.model
    x = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(load_model(r.model_path).reconstruct(x), model.reconstruct(x))
    assert_exported(r, {"generate", "encode", "reconstruct", "score"})

    images, _ = load_split_arrays(config("linear_ae"), "train")
    flat = images.reshape(len(images), -1).astype(np.float64)
    centred = flat - flat.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    pca = vt[:K].T
    eig = s ** 2 / len(flat)
    pca_error = eig[K:].sum()  # the least squared error any rank-k affine map can reach

    before = np.degrees(scipy.linalg.subspace_angles(model.decoder_basis(), pca))
    assert before.max() > 30  # one epoch on 1,024 images is far from PCA: the check can fail
    ds = (tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images), "int32")))
          .cache().shuffle(len(images), seed=0).repeat().batch(500, drop_remainder=True))
    for lr, steps in [(0.01, 500), (0.003, 300), (0.001, 300)]:
        model.optimizer.learning_rate.assign(lr)
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    angles = np.degrees(scipy.linalg.subspace_angles(model.decoder_basis(), pca))
    error = float(np.mean(model.score(images)))
    print(f"linear AE k={K}: principal angles (deg) max {angles.max():.3f} mean "
          f"{angles.mean():.3f}; squared error {error:.4f} vs PCA optimum {pca_error:.4f}")
    assert angles.max() < MAX_ANGLE_DEG
    assert pca_error <= error * (1 + 1e-4) and error < pca_error * 1.01
