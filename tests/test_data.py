"""Data sources and the tf.data pipeline, on the real bundled digits."""
import gzip
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from gen_keras.config_loader import load_config
from gen_keras.data import load_split_arrays, make_datasets, mnist10k
from gen_keras.data.pipeline import fit_image, to_model_range
from gen_keras.errors import ConfigError

from conftest import ROOT

VAE = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"


def test_mnist10k_files_verified_and_split_by_protocol():
    images, labels = mnist10k.load_arrays()
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    # Class counts from the data README (digits 0..9).
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x_train, y_train = mnist10k.split_arrays("train")
    x_test, y_test = mnist10k.split_arrays("test")
    assert len(x_train) == 8000 and len(x_test) == 2000
    np.testing.assert_array_equal(x_test[0], images[8000])


def test_corrupted_bundle_is_refused(tmp_path):
    src = mnist10k._file(mnist10k.FILES["labels"][0])
    bad = tmp_path / "labels.gz"
    raw = bytearray(gzip.decompress(src.read_bytes()))
    raw[100] ^= 1
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(mnist10k.DataIntegrityError, match="sha256"):
        mnist10k.load_arrays(labels_path=bad)


def test_tfds_builder_serves_the_same_digits(data_cache):
    b = mnist10k.builder(data_cache)
    first = next(iter(b.as_dataset(split="test", shuffle_files=False)))
    x_test, y_test = mnist10k.split_arrays("test")
    np.testing.assert_array_equal(first["image"].numpy(), x_test[0])
    assert int(first["label"]) == int(y_test[0])


def test_pipeline_batches_scales_and_shuffles_with_seed(data_cache):
    cfg = load_config(VAE, ["train.batch_size=32", "data.limit_train=256"])
    ds = make_datasets(cfg)
    x, y = next(iter(ds.train))
    assert x.shape == (32, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert float(tf.reduce_min(x)) >= 0.0 and float(tf.reduce_max(x)) <= 1.0
    again = next(iter(make_datasets(cfg).train))[1]
    np.testing.assert_array_equal(y.numpy(), again.numpy())  # same seed, same order
    assert sum(1 for _ in ds.train) == 256 // 32  # drop_remainder on the train split
    assert ds.info.num_train == 8000 and ds.info.num_classes == 10


def test_tanh_range_and_resize():
    img = tf.constant((np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28, 1))
    r = to_model_range(img, (-1.0, 1.0))
    assert float(tf.reduce_min(r)) == pytest.approx(-1.0) and float(tf.reduce_max(r)) <= 1.0
    big = fit_image(tf.zeros((40, 60, 3), tf.uint8), (32, 32, 1))
    assert big.shape == (32, 32, 1)
    rgb = fit_image(tf.fill((28, 28, 1), tf.constant(200, tf.uint8)), (32, 32, 3))
    assert rgb.shape == (32, 32, 3) and int(rgb[5, 5, 2]) == 200


def test_npz_source_and_labels(tmp_path, data_cache):
    x, y = mnist10k.split_arrays("train")
    path = tmp_path / "digits.npz"
    np.savez(path, x=x[:300, ..., 0], y=y[:300])
    cfg = load_config(VAE, [f"data.dataset=npz:{path}", "train.batch_size=50", "data.test_fraction=0.2"])
    ds = make_datasets(cfg)
    assert ds.info.num_train == 240 and ds.info.num_test == 60 and ds.info.num_classes == 10
    xb, yb = next(iter(ds.train))
    assert xb.shape == (50, 28, 28, 1) and set(yb.numpy()) <= set(range(10))
    np.savez(tmp_path / "bad.npz", images=x[:10])
    with pytest.raises(ConfigError, match="no array 'x'"):
        make_datasets(load_config(VAE, [f"data.dataset=npz:{tmp_path / 'bad.npz'}"]))


def test_folder_source_skips_and_counts_corrupt_files(tmp_path, data_cache):
    from PIL import Image

    x, y = mnist10k.split_arrays("train")
    for i in range(60):
        d = tmp_path / "imgs" / f"class_{y[i]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, ..., 0]).save(d / f"{i}.png")
    (tmp_path / "imgs" / "class_1" / "garbage.png").write_bytes(b"not a png at all")
    good = tmp_path / "imgs" / "class_1" / "truncated.png"
    shutil.copy(next((tmp_path / "imgs" / "class_1").glob("[0-9]*.png")), good)
    good.write_bytes(good.read_bytes()[:40])
    cfg = load_config(VAE, [f"data.dataset=folder:{tmp_path / 'imgs'}", "train.batch_size=16"])
    ds = make_datasets(cfg)
    assert ds.info.skipped == 2 and any("garbage" in f for f in ds.info.skipped_files)
    assert ds.info.num_train + ds.info.num_test == 60
    assert sum(int(b[0].shape[0]) for b in ds.train) > 0  # iterates without a crash


def test_tfds_without_internet_fails_fast_naming_alternatives(tmp_path):
    cfg = load_config(VAE, ["data.dataset=tfds:mnist", f"data.data_dir={tmp_path}",
                            "data.tfds_timeout_s=3"])
    t0 = time.time()
    with pytest.raises(ConfigError, match="mnist10k") as err:
        make_datasets(cfg)
    assert time.time() - t0 < 15
    assert "cannot be reached" in str(err.value) or "no data set" in str(err.value)


def test_batch_larger_than_data_and_unlabelled_conditional(tmp_path, data_cache):
    with pytest.raises(ConfigError, match="train.batch_size"):
        make_datasets(load_config(VAE, ["train.batch_size=512", "data.limit_train=100"]))
    x, _ = mnist10k.split_arrays("train")
    np.savez(tmp_path / "nolabels.npz", x=x[:100])
    from gen_keras.data import check_compatible
    from gen_keras.data.sources import SourceInfo

    class Conditional:
        conditional, kind, num_classes = True, "cvae", 10

    with pytest.raises(ConfigError, match="no labels"):
        check_compatible(Conditional(), SourceInfo("npz:x", 0, 80, 20, str(tmp_path)))


def test_load_split_arrays_is_the_test_split(data_cache):
    cfg = load_config(VAE)
    x, y = load_split_arrays(cfg, "test")
    assert x.shape == (2000, 28, 28, 1)
    np.testing.assert_array_equal(y, mnist10k.split_arrays("test")[1])


def test_folder_and_npz_sources_follow_the_one_readers_rules(tmp_path, data_cache):
    """Training's folder: source skips what batch jobs skip, for the same reasons (issue #27, 8):
    a decompression bomb and a FIFO named like an image (it must not hang the run); an npz of
    random bytes says it is not an npz archive."""
    import os
    import threading

    from PIL import Image
    from test_image_files import png_claiming

    x, _ = mnist10k.split_arrays("train")
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(x[i, ..., 0]).save(folder / f"{i:02d}.png")
    (folder / "bomb.PNG").write_bytes(png_claiming(20000, 20000))
    os.mkfifo(folder / "x.png")
    cfg = load_config(VAE, [f"data.dataset=folder:{folder}", "train.batch_size=8"])
    out = {}
    t = threading.Thread(target=lambda: out.update(ds=make_datasets(cfg)), daemon=True)
    t.start()
    t.join(300)
    assert not t.is_alive(), "opening the folder source hung"
    info = out["ds"].info
    assert info.skipped == 2 and info.num_train + info.num_test == 40, info.skip_reasons
    kinds = {os.path.basename(p): r.split(":")[0] for p, r in info.skip_reasons.items()}
    assert kinds == {"bomb.PNG": "too_large", "x.png": "not_regular_file"}
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ConfigError, match="not an npz archive"):
        make_datasets(load_config(VAE, [f"data.dataset=npz:{tmp_path / 'random.npz'}"]))
