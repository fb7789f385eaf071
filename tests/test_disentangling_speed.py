"""Issue 26's options for the disentangling models: the dense (MLP) encoder, the rendered factor
stream, and beta-TCVAE's KL warm-up — hand values, a few real steps on rendered dsprites through
``gen_keras.training.train``, save/load and export with ONNX parity."""
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.data.factor_render import RenderedFactorSet
from gen_keras.data.factor_sets import flat_index
from gen_keras.data.factor_specs import parse_factor_spec, split_indices
from gen_keras.errors import ConfigError
from gen_keras.export import export_model
from gen_keras.exported.manifest import verify_export
from gen_keras.models import build_model
from gen_keras.training import train

MLP = ["model.image_shape=[64,64,1]", "model.latent_dim=5", "model.encoder=mlp", "model.decoder=mlp",
       "model.hidden=64", "model.encoder_layers=2", "model.decoder_layers=2"]


def test_rendered_stream_is_the_split_rendered():
    spec = parse_factor_spec("dsprites:2000")
    rendered = RenderedFactorSet(spec, seed=3)
    split = split_indices(spec)
    assert rendered.num_examples("train") == len(split["train"]) and rendered.num_examples("test") == len(split["test"])
    # Each epoch of the training split is a permutation of it, a different one each epoch;
    # the test split comes in one fixed order.
    first, second = rendered.order("train", 0), rendered.order("train", 1)
    assert sorted(first) == sorted(split["train"]) and not np.array_equal(first, second)
    np.testing.assert_array_equal(rendered.order("test", 0), RenderedFactorSet(spec, 3).order("test", 0))
    elements = list(rendered.elements("test").take(20).as_numpy_iterator())
    fs = spec.factor_set
    indices = np.stack([e["factors"] for e in elements])
    np.testing.assert_array_equal(np.stack([e["image"] for e in elements]), fs.render(indices)["image"])
    assert [e["label"] for e in elements] == list(indices[:, fs.label_index])
    np.testing.assert_allclose(np.stack([e["factor_values"] for e in elements]), fs.factor_values(indices))
    assert set(flat_index(indices, fs.factor_sizes)) <= set(split["test"])


def test_bad_stream_and_encoder_refused():
    with pytest.raises(ConfigError, match="data.factor_stream"):
        load_config(None, ["data.factor_stream=disk"])
    with pytest.raises(ConfigError, match="model.encoder"):
        load_config(None, ["model.encoder=resnet"])
    with pytest.raises(ConfigError, match="model.encoder_layers"):
        load_config(None, ["model.encoder=mlp", "model.encoder_layers=0"])
    with pytest.raises(ConfigError, match="model.warmup_steps"):
        load_config(None, ["model.kind=beta_tcvae", "model.warmup_steps=-1"])


def compiled_with_batch(cfg):
    """The model compiled with its optimizer built (its step can be set), and 6 sparse images."""
    m = build_model(cfg.model)
    m.compile(optimizer="adam")
    m.optimizer.build(m.trainable_variables)
    return m, (np.random.default_rng(0).uniform(size=(6, 64, 64, 1)) > 0.9).astype("float32")


def test_beta_tcvae_warmup_scales_the_kl_part_by_hand():
    """loss = reconstruction + min(1, t / W) x (alpha mi + beta tc + gamma dim_kl)."""
    cfg = load_config(None, ["model.kind=beta_tcvae", "model.dataset_size=100", "model.warmup_steps=8",
                             "model.beta=5", *MLP])
    m, x = compiled_with_batch(cfg)
    for step, weight in [(0, 0.0), (2, 0.25), (8, 1.0), (20, 1.0)]:
        m.optimizer.iterations.assign(step)
        terms = m.loss_terms(x)
        penalty = terms["mi"] + 5.0 * terms["tc"] + terms["dim_kl"]
        np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + weight * penalty, rtol=1e-5, atol=1e-4)


def test_capacity_tc_penalty_by_hand():
    from gen_keras import disentanglement_losses as dl

    # (beta - 1) tc + w |kl - C|: 5 * 2 + 3 * |10 - 4| = 28; 5 * (-1) + 3 * |1 - 4| = 4
    np.testing.assert_allclose(dl.capacity_tc_penalty([2.0, -1.0], [10.0, 1.0], 6.0, 4.0, 3.0), [28.0, 4.0])
    # beta = 1, C = 0, weight 1: the KL itself
    np.testing.assert_allclose(dl.capacity_tc_penalty([7.0], [3.5], 1.0, 0.0), [3.5])


def test_beta_tcvae_capacity_schedule_by_hand():
    """With capacity: loss = reconstruction + (beta - 1) tc + w |KL - C(t)|, C(t) = C_max min(1, t / T)."""
    cfg = load_config(None, ["model.kind=beta_tcvae", "model.dataset_size=100", "model.beta=4",
                             "model.capacity_max=20", "model.capacity_steps=10", "model.capacity_weight=2", *MLP])
    m, x = compiled_with_batch(cfg)
    for step, capacity in [(0, 0.0), (5, 10.0), (10, 20.0), (30, 20.0)]:
        m.optimizer.iterations.assign(step)
        t = m.loss_terms(x)
        expected = t["reconstruction"] + 3.0 * t["tc"] + 2.0 * np.abs(t["kl"] - capacity)
        np.testing.assert_allclose(t["loss"], expected, rtol=1e-5, atol=1e-3)
    with pytest.raises(ConfigError, match="alpha and gamma"):
        load_config(None, ["model.kind=beta_tcvae", "model.capacity_max=5", "model.gamma=2"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """beta-TCVAE with the MLP networks and warm-up, 2 short epochs on rendered dsprites."""
    tmp = tmp_path_factory.mktemp("speed")
    cfg = load_config(None, [
        "model.kind=beta_tcvae", *MLP, "model.warmup_steps=10", "model.binarize=none",
        "data.dataset=dsprites:2000", "data.factor_stream=render", "data.limit_train=512", "data.limit_test=64",
        "train.epochs=2", "train.batch_size=64", "train.steps_per_execution=1", "train.progress=false",
        "train.mixed_precision=none", "train.evaluate_at_end=false", "train.export_at_end=false",
        "tracking.run_name=speed", f"tracking.outputs_dir={tmp / 'outputs'}",
        f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}"])
    return train(cfg), tmp


def test_mlp_beta_tcvae_trains_on_rendered_dsprites(run):
    result, _ = run
    loss = result.history["loss"]
    assert len(loss) == 2 and np.isfinite(loss).all(), loss
    assert result.model.config.dataset_size == 512
    assert int(result.model.optimizer.iterations) == 16
    assert [layer.name for layer in result.model.encoder.layers if "hidden" in layer.name] == ["hidden0", "hidden1"]


def test_mlp_beta_tcvae_save_load_and_onnx_export(run):
    result, tmp = run
    model, loaded = result.model, load_model(result.model_path)
    assert loaded.get_config() == model.get_config()
    x = (np.random.default_rng(1).uniform(size=(4, 64, 64, 1)) > 0.9).astype("float32")
    np.testing.assert_allclose(loaded.reconstruct(x), model.reconstruct(x), atol=0, rtol=0)
    out = export_model(loaded, tmp / "exp", run_id="t")
    manifest = verify_export(out).manifest
    assert all(e["onnx_parity_max_rel_diff"] <= 1e-4 for e in manifest["endpoints"].values())
    sess = ort.InferenceSession(str(out / "encode.onnx"), providers=["CPUExecutionProvider"])
    mean = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(mean, model.encode(tf.constant(x))[0], atol=1e-5)


def test_code_factors_order_and_labels_by_hand():
    from gen_keras.eval.factor_codes import CodeFactors

    mi = np.array([[0.0, 0.0, 0.7],    # z0: y (0.7)
                   [0.01, 0.02, 0.0],  # z1: nothing
                   [0.3, 0.6, 0.1],    # z2: x (0.6)
                   [0.9, 0.0, 0.0],    # z3: shape (0.9)
                   [0.0, 0.2, 0.0]])   # z4: x (0.2), weaker than z2
    t = CodeFactors(("shape", "x", "y"), mi)
    assert t.factor_of == ["y", None, "x", "shape", "x"]
    assert t.order() == [3, 2, 4, 0, 1] and t.order([1, 0, 4]) == [4, 0, 1]
    assert t.label(2) == "z2: x (0.60)" and t.label(1) == "z1: -"
    d = t.as_dict()
    assert d["factors"] == ["shape", "x", "y"] and d["dimensions"][3] == {
        "dim": 3, "factor": "shape", "active": True, "mi": 0.9, "mi_per_factor": [0.9, 0.0, 0.0]}
    # z4's codes hardly move over the data (variance 0.005 against z0's 1.0, below 1%): a VAE's
    # unused dimension, whose faint MI with x names nothing; 0.02 (2%) still counts
    t = CodeFactors(("shape", "x", "y"), mi, np.array([1.0, 0.5, 0.02, 0.9, 0.005]))
    assert list(t.active) == [True, True, True, True, False]
    assert t.factor_of == ["y", None, "x", "shape", None] and t.label(4) == "z4: -"
    assert t.order() == [3, 2, 0, 1, 4] and t.as_dict()["dimensions"][4]["active"] is False


def test_latent_traverse_labels_rows_by_factor(run, tmp_path, capsys):
    from PIL import Image

    from gen_keras.cli import main

    result, _ = run
    export = export_model(result.model, tmp_path / "exp", run_id="t")
    out = tmp_path / "t.png"
    assert main(["latent", "traverse", "--export", str(export), "--factors", "dsprites", "--steps", "5",
                 "--out", str(out), "--scale", "1"]) == 0
    printed = capsys.readouterr().out
    assert "rows: z" in printed and printed.count("z") >= 5
    im = Image.open(out)
    assert im.height == 5 * (64 + 2) + 2 and im.width == 150 + 5 * (64 + 2) + 2
    assert main(["latent", "traverse", "--export", str(export), "--factors", "mnist10k",
                 "--out", str(out)]) == 2
