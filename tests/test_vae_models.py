"""The autoencoder and the VAE: losses inside the step, save/load, export, a real short fit."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from gen_keras import losses
from gen_keras.artifacts import load_model, save_model
from gen_keras.config_loader import load_config
from gen_keras.data import make_datasets
from gen_keras.errors import ArtifactIntegrityError, ExportError
from gen_keras.export import export_model
from gen_keras.exported.manifest import verify_export
from gen_keras.models import build_model
from gen_keras.plan import resolve_plan

from conftest import ROOT

VAE = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"


def _batch(n=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 28, 28, 1)).astype("float32")


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_vae_shapes(shape):
    cfg = load_config(VAE, [f"model.image_shape={list(shape)}", "model.latent_dim=8"]).model
    vae = build_model(cfg)
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    mean, log_var = vae.encode(x)
    assert mean.shape == (2, 8) and log_var.shape == (2, 8)
    assert vae.decode(mean).shape == (2, *shape)


def test_vae_loss_terms_are_the_elbo_parts():
    vae = build_model(load_config(VAE).model)
    x = (_batch() > 0.5).astype("float32")
    terms = vae.loss_terms(x)
    mean, log_var = vae.encode(x)
    np.testing.assert_allclose(terms["kl"], losses.kl_divergence(mean, log_var), rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + terms["kl"], rtol=1e-5)
    assert np.all(terms["reconstruction"].numpy() > 0)


def test_reparameterization_moments():
    vae = build_model(load_config(VAE, ["model.latent_dim=4"]).model)
    mean = tf.fill([20000, 4], 2.0)
    log_var = tf.fill([20000, 4], float(np.log(0.25)))
    z = vae.reparameterize(mean, log_var).numpy()
    assert abs(z.mean() - 2.0) < 0.02 and abs(z.std() - 0.5) < 0.02
    z2 = vae.reparameterize(mean, log_var).numpy()
    assert not np.allclose(z, z2)  # the seed generator advances


def test_dynamic_binarization_is_binary_with_the_right_mean():
    vae = build_model(load_config(VAE).model)
    x = np.full((64, 28, 28, 1), 0.3, "float32")
    b = vae.binarize_input(x).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01


@pytest.mark.parametrize("kind", ["vae", "autoencoder"])
def test_save_load_identical_outputs_and_optimizer_state(tmp_path, kind, data_cache):
    cfg = load_config(None, [f"model.kind={kind}", "data.limit_train=256", "train.batch_size=64"])
    model = build_model(cfg.model)
    model.compile_for_training(resolve_plan(cfg))
    model.fit(make_datasets(cfg).train, epochs=1, verbose=0)
    path = save_model(model, tmp_path / "m" / "model.keras")
    loaded = load_model(path)
    x = _batch(8)
    np.testing.assert_allclose(model.reconstruct(x), loaded.reconstruct(x), atol=0, rtol=0)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loaded.get_config() == model.get_config()


def test_load_refuses_altered_or_unsigned_model(tmp_path):
    model = build_model(load_config(VAE).model)
    path = save_model(model, tmp_path / "model.keras")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_model(path)
    path.with_name("model.keras.sha256").unlink()
    with pytest.raises(ArtifactIntegrityError, match="did not write"):
        load_model(path)


def test_export_signatures_onnx_and_manifest(tmp_path):
    model = build_model(load_config(VAE, ["model.latent_dim=8"]).model)
    out = export_model(model, tmp_path / "exp", run_id="abc")
    manifest = verify_export(out).manifest
    assert manifest["kind"] == "vae" and manifest["latent_dim"] == 8
    assert manifest["value_range"] == [0.0, 1.0] and manifest["image_shape"] == [28, 28, 1]
    assert set(manifest["endpoints"]) == {"generate", "encode", "reconstruct", "score"}
    assert manifest["endpoints"]["encode"]["outputs"] == ["mean", "log_var"]
    assert all(e["onnx_parity_max_rel_diff"] <= 1e-4 for e in manifest["endpoints"].values())
    # onnxruntime with the manifest's shapes gives Keras' numbers.
    z = np.random.default_rng(1).standard_normal((4, 8)).astype("float32")
    sess = ort.InferenceSession(str(out / "generate.onnx"), providers=["CPUExecutionProvider"])
    (img,) = sess.run(None, {"z": z})
    np.testing.assert_allclose(img, model.decode(z), atol=1e-5)
    # The SavedModel has the named signatures.
    sm = tf.saved_model.load(str(out / "saved_model"))
    assert {"generate", "decode", "encode", "reconstruct"} <= set(sm.signatures)
    enc = sm.signatures["encode"](x=tf.constant(_batch(3)))
    np.testing.assert_allclose(enc["mean"], model.encode(_batch(3))[0], atol=1e-5)
    # An altered file is detected.
    (out / "generate.onnx").write_bytes((out / "generate.onnx").read_bytes() + b"x")
    with pytest.raises(ArtifactIntegrityError, match="generate.onnx"):
        verify_export(out).manifest


def test_failed_export_leaves_nothing_and_keeps_the_previous_one(tmp_path):
    model = build_model(load_config(VAE, ["model.latent_dim=4"]).model)
    target = export_model(model, tmp_path / "exp")
    before = json.loads((target / "manifest.json").read_text())
    with pytest.raises(ExportError, match="planted"):
        export_model(model, target, overwrite=True, _fail_after="files")
    with pytest.raises(ExportError, match="already exists"):
        export_model(model, target)
    assert json.loads((target / "manifest.json").read_text()) == before
    verify_export(target).manifest  # still whole
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temp folder left behind
