"""The spatial broadcast decoder (`model.decoder: broadcast`, issue 26): its two layers by hand,
its config errors, and a beta-TCVAE with it trained a few steps, saved, loaded and exported with
ONNX parity."""
import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.export import export_model
from gen_keras.exported.manifest import verify_export
from gen_keras.models import build_model
from gen_keras.models.networks import CellsToImage, CoordinateBroadcast

SBD = ["model.kind=beta_tcvae", "model.image_shape=[64,64,1]", "model.latent_dim=4", "model.encoder=mlp",
       "model.hidden=32", "model.decoder=broadcast", "model.broadcast_grid=16", "model.broadcast_units=8",
       "model.decoder_layers=2", "model.binarize=none", "model.dataset_size=1000"]


def test_cells_to_image_places_each_cell_block_by_hand():
    # 2 x 2 cells of 2 x 3 pixel blocks, 1 channel: cell (r, c), block pixel (i, j) is pixel (2r + i, 3c + j)
    cells = np.zeros((1, 4, 6), "float32")
    for r in range(2):
        for c in range(2):
            cells[0, 2 * r + c] = [100 * r + 10 * c + 3 * i + j for i in range(2) for j in range(3)]
    image = np.asarray(CellsToImage((4, 6, 1), 2)(cells))[0, :, :, 0]
    expected = [[100 * (y // 2) + 10 * (x // 3) + 3 * (y % 2) + x % 3 for x in range(6)] for y in range(4)]
    np.testing.assert_array_equal(image, expected)


def test_coordinate_broadcast_adds_the_cell_centres_map_by_hand():
    layer = CoordinateBroadcast(2)
    features = np.array([[1.0, -2.0, 0.5]], "float32")
    out = np.asarray(layer(features))
    kernel = np.asarray(layer.coordinate_kernel)  # [2, 3]: rows x, y
    # cells row-major: (x, y) centres (-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)
    centres = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]], "float32")
    np.testing.assert_allclose(out[0], features + centres @ kernel, rtol=1e-6)
    assert out.shape == (1, 4, 3)


def test_bad_broadcast_settings_are_refused():
    with pytest.raises(ConfigError, match=r"model.broadcast_grid=24 must divide the image's height and width \(64 x 64\)"):
        load_config(None, [*SBD, "model.broadcast_grid=24"])
    with pytest.raises(ConfigError, match="model.broadcast_units=0"):
        load_config(None, [*SBD, "model.broadcast_units=0"])
    with pytest.raises(ConfigError, match=r"model.encoder='broadcast' is not one of \['conv', 'mlp'\]"):
        load_config(None, [*SBD, "model.encoder=broadcast"])


def test_broadcast_beta_tcvae_trains_saves_loads_and_exports(tmp_path):
    cfg = load_config(None, SBD)
    model = build_model(cfg.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = (np.random.default_rng(0).uniform(size=(32, 64, 64, 1)) > 0.9).astype("float32")
    before = float(np.mean(model.loss_terms(x)["loss"]))
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), "int64"))).batch(32)
    model.fit(data, epochs=5, verbose=0, shuffle=False)
    assert float(np.mean(model.loss_terms(x)["loss"])) < before
    assert model.decoder.get_layer("cells_to_image").output.shape[1:] == (64, 64, 1)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.reconstruct(x[:4]), model.reconstruct(x[:4]), atol=0, rtol=0)
    out = export_model(model, tmp_path / "exp", run_id="t")
    manifest = verify_export(out).manifest
    assert all(e["onnx_parity_max_rel_diff"] <= 1e-4 for e in manifest["endpoints"].values())
    z = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    ops = {e: manifest["endpoints"][e] for e in manifest["endpoints"]}
    decode = next(name for name in ops if name in ("decode", "generate"))
    sess = ort.InferenceSession(str(out / f"{decode}.onnx"), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: z}
    np.testing.assert_allclose(sess.run(None, feed)[0], np.asarray(model.decode(z)), atol=1e-5)
