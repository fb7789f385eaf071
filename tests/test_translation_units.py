"""Image-to-image translation, piece by piece (no training): the losses, PSNR and SSIM on
hand-computed values, depth-to-space, the history pool against the reference algorithm, the
U-Net's skips, the PatchGAN's output size and receptive field, the digit tasks, config errors
and the manifest's per-operation specs (old manifests still parse)."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import tensorflow as tf

from gen_keras import translation_losses as tl
from gen_keras.config_loader import load_config, model_config_from_dict
from gen_keras.data import make_datasets, mnist10k
from gen_keras.data.translation import (
    LUMA,
    area_downsample,
    load_translation_split,
    split_indices,
    task_shapes,
)
from gen_keras.errors import ArtifactIntegrityError, ConfigError
from gen_keras.eval.translation import gaussian_window, masked_l1, psnr, ssim, upsample
from gen_keras.exported.manifest import parse_manifest
from gen_keras.models.cyclegan import HistoryPool, history_pool_choices
from gen_keras.models.translation_networks import (
    DepthToSpace,
    patchgan_discriminator,
    patchgan_receptive_field,
    unet_generator,
)

from conftest import ROOT

CONFIGS = ROOT / "pipelines" / "configs"


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=tol, rtol=0)


# ----------------------------------------------------------------------------------------------
# Losses (hand values)
# ----------------------------------------------------------------------------------------------
def sp(v):  # softplus, by hand
    return math.log1p(math.exp(v))


def test_l1_cycle_and_identity_losses_are_per_example_pixel_means():
    x = np.array([[0.5, -0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32).reshape(2, 2, 2, 1)
    y = np.zeros_like(x)
    y[1] = 0.25
    want = [(0.5 + 0.5 + 1.0 + 0.0) / 4, 0.25]
    for fn in (tl.mean_absolute_error_per_example, tl.cycle_consistency_loss, tl.identity_loss):
        close(fn(x, y), want)


def test_patch_cross_entropy_losses_average_over_patches():
    real = np.array([1.0, -1.0], np.float32).reshape(1, 1, 2, 1)
    fake = np.array([0.0, 2.0], np.float32).reshape(1, 1, 2, 1)
    close(tl.patch_discriminator_loss(real, fake), [(sp(-1) + sp(1)) / 2 + (sp(0) + sp(2)) / 2])
    close(tl.patch_discriminator_loss(np.zeros((1, 3, 3, 1)), np.zeros((1, 3, 3, 1))), [2 * math.log(2)])
    close(tl.patch_generator_loss(fake), [(sp(0) + sp(-2)) / 2])
    # [batch, 1] scores (a whole-image D) are one patch.
    close(tl.patch_generator_loss(np.array([[0.0], [3.0]])), [math.log(2), sp(-3)])


def test_least_squares_patch_losses_follow_zhu_et_al():
    close(tl.least_squares_patch_discriminator_loss([[1.0, 0.0]], [[0.0, 1.0]]), [0.5 * (0.5 + 0.5)])
    close(tl.least_squares_patch_discriminator_loss([[0.5]], [[0.5]]), [0.5 * (0.25 + 0.25)])
    close(tl.least_squares_patch_discriminator_loss([[1.0]], [[0.0]]), [0.0])  # D perfect
    close(tl.least_squares_patch_generator_loss([[0.0, 2.0], [1.0, 0.5]]), [1.0, 0.125])


def test_feature_content_loss_is_the_mean_squared_feature_distance():
    close(tl.feature_content_loss([[1.0, 2.0]], [[1.0, 0.0]]), [2.0])
    a = np.arange(24, dtype=np.float32).reshape(2, 2, 3, 2)
    close(tl.feature_content_loss(a, a + 3.0), [9.0, 9.0])


def test_cyclegan_total_generator_loss_is_the_weighted_sum():
    from gen_keras.models.cyclegan import CycleGAN

    cfg = model_config_from_dict({"kind": "cyclegan", "g_filters": 4, "residual_blocks": 1, "d_filters": 4,
                                  "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 0})
    model = CycleGAN(cfg)
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (2, 28, 28, 3)).astype("float32") for _ in range(2))
    _, _, t = model.generator_terms(a, b, training=False)
    want = t["adv_ab"] + t["adv_ba"] + 10.0 * (t["cycle_a"] + t["cycle_b"]) + 0.5 * 10.0 * t["identity"]
    close(t["g_loss"], want)
    # The cycle term really is |F(G(a)) - a|.
    cyc = np.abs(model.translate(model.translate(a, "translate_a2b"), "translate_b2a") - a).mean(axis=(1, 2, 3))
    close(t["cycle_a"], cyc, tol=1e-5)


# ----------------------------------------------------------------------------------------------
# PSNR, SSIM, baselines
# ----------------------------------------------------------------------------------------------
def test_psnr_known_values():
    x = np.random.default_rng(0).uniform(0.2, 0.8, (3, 8, 8, 1))
    assert np.all(np.isinf(psnr(x, x)))
    close(psnr(x, x + 0.1), [20.0] * 3)  # MSE = 0.01
    close(psnr(x, x - 0.01), [40.0] * 3)
    # Four pixels, one off by 1: MSE 1/4, 10 log10(4) = 6.0206 dB.
    close(psnr(np.array([0, 0, 0, 1.0]).reshape(1, 2, 2, 1), np.zeros((1, 2, 2, 1))), [10 * math.log10(4)])
    close(psnr(np.full((1, 2, 2, 1), 255.0), np.full((1, 2, 2, 1), 230.0), data_range=255), [20 * math.log10(255 / 25)])


def test_ssim_known_values():
    c1 = 0.01 ** 2
    x = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3))
    close(ssim(x, x), [1.0, 1.0], tol=1e-12)
    # Two constant images a, b: only the luminance term is left: (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.5, 0.6
    close(ssim(np.full((1, 11, 11, 1), a), np.full((1, 11, 11, 1), b)), [(2 * a * b + c1) / (a * a + b * b + c1)])
    close(ssim(np.ones((1, 12, 12, 1)), np.zeros((1, 12, 12, 1))), [c1 / (1 + c1)])


def test_ssim_by_hand_on_one_window():
    """One 11x11 window (the image's size): the Gaussian-weighted statistics computed directly
    from eq. 13's definitions, for y = 0.5 x + 0.2 (so sigma_y = 0.5 sigma_x, sigma_xy = 0.5 sigma_x^2)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    t = np.arange(11) - 5.0
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    close(np.outer(gaussian_window(), gaussian_window()), w, tol=1e-15)
    x = np.random.default_rng(2).uniform(0, 1, (11, 11))
    y = 0.5 * x + 0.2
    mx, my = (w * x).sum(), (w * y).sum()
    vx = (w * (x - mx) ** 2).sum()
    vy, cov = 0.25 * vx, 0.5 * vx
    want = (2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    close(ssim(x[None, ..., None], y[None, ..., None]), [want], tol=1e-10)
    # A 12x12 image has 2x2 window positions: the mean of the four single-window values.
    big = np.random.default_rng(3).uniform(0, 1, (2, 12, 12, 1))
    each = [ssim(big[:, i:i + 11, j:j + 11], big[:, i:i + 11, j:j + 11][::-1]) for i in (0, 1) for j in (0, 1)]
    close(ssim(big, big[::-1]), np.mean(each, axis=0), tol=1e-12)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(np.zeros((1, 7, 7, 1)), np.zeros((1, 7, 7, 1)))


def test_upsampling_baselines_and_masked_l1():
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1) / 3
    near = upsample(x, (8, 8), "nearest")
    assert near.shape == (1, 8, 8, 1) and np.all(near[0, :4, :4] == x[0, 0, 0]) and np.all(near[0, 4:, 4:] == x[0, 1, 1])
    cubic = upsample(x, (8, 8), "bicubic")
    assert cubic.shape == (1, 8, 8, 1) and cubic.min() >= 0 and cubic.max() <= 1
    flat = np.full((1, 2, 2, 1), 0.3, np.float32)
    close(upsample(flat, (8, 8), "bicubic"), np.full((1, 8, 8, 1), 0.3))  # a flat image stays flat
    mask = np.zeros((1, 2, 2, 1), bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True
    assert masked_l1(x, np.zeros_like(x), mask) == pytest.approx((0 + 1.0) / 2)


# ----------------------------------------------------------------------------------------------
# Layers and networks
# ----------------------------------------------------------------------------------------------
def test_depth_to_space_moves_channels_to_pixels():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    close(DepthToSpace(2)(x)[0, ..., 0], [[0, 1], [2, 3]])
    # Two output channels: out[r*h + i, r*w + j, c] = in[h, w, (r*i + j)*C + c].
    x = np.arange(2 * 2 * 8, dtype=np.float32).reshape(1, 2, 2, 8)
    out = np.asarray(DepthToSpace(2)(x))
    assert out.shape == (1, 4, 4, 2)
    for h in range(2):
        for w in range(2):
            for i in range(2):
                for j in range(2):
                    for c in range(2):
                        assert out[0, 2 * h + i, 2 * w + j, c] == x[0, h, w, (2 * i + j) * 2 + c]


@pytest.mark.parametrize("side,levels", [(28, 5), (64, 6)])
def test_unet_skips_join_mirrored_resolutions(side, levels):
    net = unet_generator((side, side, 1), 1, 8)
    assert net.output.shape[1:] == (side, side, 1)
    downs = [net.get_layer(f"down{i}_act").output for i in range(levels)]
    assert [d.shape[1] for d in downs] == [2 ** (levels - 1 - i) for i in range(levels)]  # down to 1x1
    assert [d.shape[-1] for d in downs] == [8 * min(2 ** i, 8) for i in range(levels)]
    for i in range(levels - 1):  # decoder level (levels - 2 - i) is joined to encoder level i
        skip = net.get_layer(f"skip{i}")
        up, enc = skip.input
        assert up.shape[1:3] == enc.shape[1:3] == downs[i].shape[1:3]
        assert enc is downs[i] or enc.name == downs[i].name
        assert skip.output.shape[-1] == up.shape[-1] + enc.shape[-1]


@pytest.mark.parametrize("side,strided,field", [(28, 1, 16), (64, 2, 34)])
def test_patchgan_output_size_and_receptive_field(side, strided, field):
    assert patchgan_receptive_field(strided) == field
    assert patchgan_receptive_field(3) == 70  # the paper's 70x70 PatchGAN
    d = patchgan_discriminator((side, side, 1), 8, strided_layers=strided, condition_shape=(side, side, 1))
    grid = side // 2 ** strided
    assert d.output.shape[1:] == (grid, grid, 1)
    # Empirically: the input pixels one central patch's logit depends on span `field` rows.
    x = tf.random.normal([1, side, side, 1], seed=1)
    y = tf.random.normal([1, side, side, 1], seed=2)
    with tf.GradientTape() as tape:
        tape.watch(y)
        logit = d([x, y], training=False)[0, grid // 2, grid // 2, 0]
    rows = np.nonzero(np.abs(tape.gradient(logit, y).numpy()[0, :, :, 0]).sum(axis=1))[0]
    assert rows.max() - rows.min() + 1 == field


# ----------------------------------------------------------------------------------------------
# The history pool
# ----------------------------------------------------------------------------------------------
class ReferencePool:
    """The CycleGAN reference ImagePool.query, in plain Python, fed the same random numbers."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images, uniforms, slots):
        out = []
        for image, u, slot in zip(images, uniforms, slots):
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif u > 0.5:
                out.append(self.images[slot])
                self.images[slot] = image
            else:
                out.append(image)
        return out


def test_history_pool_bookkeeping_by_hand():
    # Size 3, empty: three images are stored and used; the 4th (u > 0.5) swaps with slot 2
    # (image 2 of this very batch); the 5th (u <= 0.5) is used itself.
    used, contents, count = history_pool_choices(0, 3, [0.9, 0.9, 0.9, 0.9, 0.1], [0, 0, 0, 2, 1], 5)
    assert used.numpy().tolist() == [3, 4, 5, 5, 7]
    assert contents.numpy().tolist() == [3, 4, 6] and int(count) == 3


def test_history_pool_matches_the_reference_over_many_batches():
    rng = random.Random(0)
    size, ref = 5, ReferencePool(5)
    pool = HistoryPool(size, (2, 2, 1))
    serial = 0
    for _ in range(12):
        n = rng.randint(1, 4)
        images = np.stack([np.full((2, 2, 1), serial + i, np.float32) for i in range(n)])
        serial += n
        uniforms = [rng.random() for _ in range(n)]
        slots = [rng.randrange(size) for _ in range(n)]
        got = pool.query(images, tf.constant(uniforms, tf.float32), tf.constant(slots, tf.int32)).numpy()
        want = ref.query(list(images), uniforms, slots)
        close(got, np.stack(want), tol=0)
    close(pool.images.numpy(), np.stack(ref.images), tol=0)
    assert int(pool.count.numpy()) == size
    # Some answers were older images: the pool is doing something.
    assert serial > size


def test_pool_of_size_zero_passes_images_through():
    pool = HistoryPool(0, (2, 2, 1))
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype("float32")
    close(pool.query(x, tf.ones([3]), tf.zeros([3], tf.int32)), x, tol=0)


# ----------------------------------------------------------------------------------------------
# The digit tasks
# ----------------------------------------------------------------------------------------------
def test_super_resolution_pairs():
    s = load_translation_split("pairs:sr4", "test", (28, 28, 1))
    images, labels = mnist10k.load_arrays()
    assert s.inputs.shape == (2000, 7, 7, 1) and s.targets.shape == (2000, 28, 28, 1)
    np.testing.assert_array_equal(s.targets, images[8000:])
    np.testing.assert_array_equal(s.input_labels, labels[8000:])
    block = images[8000, 4:8, 8:12, 0].astype(np.float64).mean()
    assert s.inputs[0, 1, 2, 0] == int(np.round(block))
    np.testing.assert_array_equal(area_downsample(s.targets, 4), s.inputs)
    assert len(load_translation_split("pairs:sr4", "train", (28, 28, 1)).inputs) == 8000
    assert task_shapes("pairs:sr4", (64, 64, 1)) == ((16, 16, 1), (64, 64, 1))


def test_inpainting_holes_are_seeded_per_image():
    s = load_translation_split("pairs:inpaint", "test", (28, 28, 1))
    for k in range(20):
        rows, cols = np.nonzero(s.masks[k, ..., 0])
        assert rows.max() - rows.min() + 1 == 12 and cols.max() - cols.min() + 1 == 12 and len(rows) == 144
        assert rows.min() >= 4 and rows.max() <= 23 and cols.min() >= 4 and cols.max() <= 23
    assert np.all(s.inputs[s.masks] == 128)
    np.testing.assert_array_equal(s.inputs[~s.masks], s.targets[~s.masks])
    positions = {tuple(np.argwhere(m[..., 0])[0]) for m in s.masks[:50]}
    assert len(positions) > 10  # the holes move
    # The same image has the same hole whatever the limit, and in every call.
    np.testing.assert_array_equal(load_translation_split("pairs:inpaint", "test", (28, 28, 1), limit=5).masks,
                                  s.masks[:5])


def test_unpaired_domains_are_disjoint_and_colour_strokes_are_brighter():
    a_idx, b_idx = split_indices("unpaired:mnistm", "train")
    assert set(a_idx).isdisjoint(b_idx) and len(a_idx) == len(b_idx) == 4000 and b_idx.max() < 8000
    a_test, b_test = split_indices("unpaired:mnistm", "test")
    assert a_test.min() == 8000 and b_test.max() == 9999 and set(a_test).isdisjoint(b_test)
    s = load_translation_split("unpaired:mnistm", "test", (28, 28, 3))
    images, labels = mnist10k.load_arrays()
    np.testing.assert_array_equal(s.inputs, np.repeat(images[8000:9000], 3, axis=-1))  # grey, as RGB
    np.testing.assert_array_equal(s.target_labels, labels[9000:])
    digits = images[9000:, ..., 0]
    luma = s.targets.astype(np.float32) @ LUMA
    assert luma[digits == 255].min() >= 0.6 * 255 - 1 and luma[digits == 0].max() <= 0.4 * 255 + 1
    assert np.ptp(s.targets[..., 0] - s.targets[..., 1]) > 50  # colour, not grey
    with pytest.raises(ConfigError, match="3 channels"):
        task_shapes("unpaired:mnistm", (28, 28, 1))


def test_pipelines_batch_pairs_and_unpaired_streams(data_cache):
    cfg = load_config(CONFIGS / "pix2pix_inpaint.yaml", ["train.batch_size=16", "data.limit_train=64",
                                                          "data.limit_test=40"])
    ds = make_datasets(cfg)
    x, y = next(iter(ds.train))
    assert x.shape == y.shape == (16, 28, 28, 1) and x.dtype == tf.float32
    assert float(tf.reduce_min(y)) == -1.0 and float(tf.reduce_max(y)) <= 1.0
    assert np.isclose(x.numpy(), 128 / 255 * 2 - 1, atol=1e-6).any()  # the hole's grey, in [-1, 1]
    assert sum(1 for _ in ds.train) == 4 and sum(len(b[0]) for b in ds.test) == 40
    assert ds.info.paired and ds.info.input_shape == (28, 28, 1) and ds.info.num_train == 8000

    cfg = load_config(CONFIGS / "cyclegan_mnistm.yaml", ["train.batch_size=8", "data.limit_train=32"])
    ds = make_datasets(cfg)
    first = [(a.numpy(), b.numpy()) for a, b in ds.train]
    second = [(a.numpy(), b.numpy()) for a, b in ds.train]
    a0, b0 = first[0]
    assert a0.shape == b0.shape == (8, 28, 28, 3) and not ds.info.paired
    assert np.allclose(a0[..., 0], a0[..., 2]) and not np.allclose(b0[..., 0], b0[..., 2])
    key = lambda im: round(float(im.sum()), 3)
    pairs = lambda epoch: {(key(a), key(b)) for xa, xb in epoch for a, b in zip(xa, xb)}
    assert pairs(first) != pairs(second)  # the two streams are shuffled independently


@pytest.mark.parametrize("overrides,match", [
    (["model.kind=vae", "model.latent_dim=8"], "not a translation model"),
    (["data.dataset=mnist10k"], "not an image-to-image task"),
    (["data.dataset=pairs:sr4"], r"takes inputs of shape \[28, 28, 1\]"),
    (["data.dataset=unpaired:mnistm", "model.image_shape=[28, 28, 3]"], "trains on paired data"),
    (["data.dataset=pairs:scenes"], r"model\.image_shape must be \[64, 64, 3\]"),
])
def test_models_and_tasks_that_do_not_fit_are_refused(overrides, match, data_cache):
    base = CONFIGS / "pix2pix_inpaint.yaml"
    if overrides[0] == "model.kind=vae":  # a VAE config given a translation task
        base, overrides = CONFIGS / "vae_mnist10k.yaml", ["data.dataset=pairs:inpaint"]
    cfg = load_config(base, overrides)
    with pytest.raises(ConfigError, match=match):
        make_datasets(cfg)


@pytest.mark.parametrize("raw,field", [
    ({"kind": "pix2pix", "l1_weight": -1}, "model.l1_weight"),
    ({"kind": "pix2pix", "latent_dim": 8}, "model.latent_dim"),
    ({"kind": "pix2pix", "d_strided_layers": 3}, "model.d_strided_layers"),
    ({"kind": "cyclegan", "pool_size": -1}, "model.pool_size"),
    ({"kind": "sr_l1", "scale": 3}, "model.scale"),
    ({"kind": "srgan", "content_layer": "logits"}, "model.content_layer"),
    ({"kind": "srgan", "adversarial_weight": -0.1}, "model.adversarial_weight"),
])
def test_bad_model_fields_are_named(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        model_config_from_dict(raw)


def test_unknown_task_names_are_refused_at_load():
    with pytest.raises(ConfigError, match="not a known image-to-image task"):
        load_config(CONFIGS / "pix2pix_inpaint.yaml", ["data.dataset=pairs:colourize"])


# ----------------------------------------------------------------------------------------------
# The manifest: per-operation specs, and old manifests
# ----------------------------------------------------------------------------------------------
def translator_manifest():
    shape_in, shape_out = [None, 7, 7, 1], [None, 28, 28, 1]
    return {"name": "sr", "kind": "sr_l1", "latent_dim": 0, "image_shape": [28, 28, 1], "value_range": [-1.0, 1.0],
            "num_classes": 0, "conditional": False, "files": {},
            "endpoints": {"translate": {
                "onnx": "translate.onnx", "inputs": [{"name": "x", "shape": shape_in, "dtype": "float32",
                                                      "value_range": [-1.0, 1.0]}],
                "outputs": ["image"], "output_specs": [{"name": "image", "shape": shape_out, "dtype": "float32",
                                                        "value_range": [-1.0, 1.0]}]}}}


def test_manifest_carries_each_operations_shapes_and_ranges():
    spec = parse_manifest(translator_manifest(), "here")
    op = spec.operation("translate")
    assert op.input("x").shape == (None, 7, 7, 1) and op.input("x").value_range == (-1.0, 1.0)
    assert op.output("image").shape == (None, 28, 28, 1) and op.output("image").value_range == (-1.0, 1.0)
    assert spec.latent_dim == 0


def test_old_manifests_still_parse_and_bad_specs_are_refused():
    old = {"name": "gan", "kind": "dcgan", "latent_dim": 64, "image_shape": [28, 28, 1], "value_range": [-1, 1],
           "num_classes": 0, "conditional": False, "files": {},
           "endpoints": {"generate": {"onnx": "generate.onnx", "signature": "generate", "aliases": [],
                                      "inputs": [{"name": "z", "shape": [None, 64], "dtype": "float32"}],
                                      "outputs": ["image"]}}}
    op = parse_manifest(old, "old").operation("generate")
    assert op.output_specs == () and op.input("z").value_range is None
    no_latent = copy.deepcopy(old)
    no_latent["latent_dim"] = 0
    with pytest.raises(ArtifactIntegrityError, match="'generate' operation"):
        parse_manifest(no_latent, "x")
    bad = translator_manifest()
    bad["endpoints"]["translate"]["inputs"][0]["value_range"] = [1.0, -1.0]
    with pytest.raises(ArtifactIntegrityError, match="value_range"):
        parse_manifest(bad, "x")
    bad = translator_manifest()
    bad["endpoints"]["translate"]["output_specs"][0]["name"] = "picture"
    with pytest.raises(ArtifactIntegrityError, match="output_specs"):
        parse_manifest(bad, "x")
