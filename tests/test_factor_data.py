"""The factor data sets (dsprites, shapes3d): the renderers draw what their factors say, the
split is a deterministic, disjoint hash of the factor tuple, subsets are prepared into sharded
TFRecords that TFDS reads and that reach the model through ``data.dataset``, and an interrupted
or altered preparation never loads."""
import colorsys
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gen_keras.config import DataConfig
from gen_keras.config_loader import load_config
from gen_keras.data import factor_sampler, load_factor_split, make_datasets
from gen_keras.data.factor_prepare import ensure_prepared, prepared_dir, verify
from gen_keras.data.factor_sets import flat_index, is_test, splitmix64, subset_flat_indices, unflatten_index
from gen_keras.data.factor_source import open_prepared
from gen_keras.data.factor_specs import parse_factor_spec, split_indices
from gen_keras.data.pipeline import cache_fits
from gen_keras.data.render_dsprites import DSPRITES
from gen_keras.data.render_shapes3d import OBJECT, SHAPES3D
from gen_keras.data.sources import check_dataset_name, default_data_dir, open_source
from gen_keras.errors import ConfigError, DataIntegrityError

from conftest import ROOT

VAE = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"


def one(factor_set, **fixed):
    """Factor indices of one example: every factor at index 0 unless given by name."""
    idx = np.zeros((1, len(factor_set.factors)), np.int64)
    for name, value in fixed.items():
        idx[0, factor_set.factor_names.index(name)] = value
    return idx


def sweep(factor_set, name, **fixed):
    """One example per value of factor ``name``, the others as in :func:`one`."""
    k = factor_set.factor_names.index(name)
    idx = np.repeat(one(factor_set, **fixed), factor_set.factors[k].size, axis=0)
    idx[:, k] = np.arange(factor_set.factors[k].size)
    return idx


# -- index arithmetic and the split ----------------------------------------------------------------
def test_index_arithmetic_hash_and_split():
    # SplitMix64's published first output for state 0.
    assert int(splitmix64(np.uint64(0))) == 0xE220A8397B1DCDAF
    sizes = DSPRITES.factor_sizes
    assert DSPRITES.num_combinations == 737_280 and SHAPES3D.num_combinations == 480_000
    flat = np.arange(0, 737_280, 7)
    np.testing.assert_array_equal(flat_index(unflatten_index(flat, sizes), sizes), flat)
    np.testing.assert_array_equal(unflatten_index([1], sizes), [[0, 0, 0, 0, 1]])  # last fastest
    full = split_indices(parse_factor_spec("dsprites"))
    again = split_indices(parse_factor_spec("dsprites"))
    np.testing.assert_array_equal(full["test"], again["test"])  # deterministic
    assert np.intersect1d(full["train"], full["test"]).size == 0  # disjoint
    assert full["train"].size + full["test"].size == 737_280  # complete
    assert abs(full["test"].size / 737_280 - 0.1) < 0.003
    # A combination's split does not depend on the subset it is in.
    sub = split_indices(parse_factor_spec("dsprites:5000"))
    assert np.isin(sub["test"], full["test"]).all() and np.isin(sub["train"], full["train"]).all()
    np.testing.assert_array_equal(np.sort(np.concatenate([sub["train"], sub["test"]])),
                                  subset_flat_indices(737_280, 5000))
    # The hash looks at the tuple: a different seed splits differently.
    idx = unflatten_index(np.arange(5000), sizes)
    assert (is_test(idx, seed=0) != is_test(idx, seed=1)).sum() > 500


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="data.dataset='dsprite'.*mnist10k.*dsprites.*shapes3d"):
        load_config(None, ["data.dataset=dsprite"])
    with pytest.raises(ConfigError, match="data.dataset='dsprites:abc'.*subset size"):
        load_config(None, ["data.dataset=dsprites:abc"])
    with pytest.raises(ConfigError, match="from 100 to 480,000"):
        DataConfig(dataset="shapes3d:5").validate(check_dataset=check_dataset_name)
    DataConfig(dataset="shapes3d:480000").validate(check_dataset=check_dataset_name)  # all of it
    assert parse_factor_spec("shapes3d:480000").folder_name == "gen_keras_shapes3d"


# -- the renderers ---------------------------------------------------------------------------------
def test_renderers_are_deterministic():
    idx = unflatten_index(np.arange(0, 737_280, 4099), DSPRITES.factor_sizes)
    a, b = DSPRITES.render(idx)["image"], DSPRITES.render(idx.copy())["image"]
    assert a.tobytes() == b.tobytes() and a.dtype == np.uint8 and set(np.unique(a)) == {0, 255}
    # Rendering in a different batch gives the same pixels (no batch-dependent state).
    assert DSPRITES.render(idx[5:6])["image"].tobytes() == a[5:6].tobytes()
    idx3 = unflatten_index(np.arange(0, 480_000, 9973), SHAPES3D.factor_sizes)
    s1, s2 = SHAPES3D.render(idx3), SHAPES3D.render(idx3)
    assert s1["image"].tobytes() == s2["image"].tobytes()
    assert s1["label_map"].tobytes() == s2["label_map"].tobytes()
    assert s1["image"].shape == (len(idx3), 64, 64, 3) and s1["label_map"].shape == (len(idx3), 64, 64, 1)


def centroid(images):
    mass = images[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    total = mass.sum(axis=(1, 2))
    return (mass * xs).sum(axis=(1, 2)) / total, (mass * ys).sum(axis=(1, 2)) / total


def test_dsprites_factors_move_what_they_name():
    # x / y position: the ellipse's centroid moves right / down in equal steps (40 px over 31).
    x, y = centroid(DSPRITES.render(sweep(DSPRITES, "pos_x", shape=1, scale=5, pos_y=10))["image"])
    assert np.allclose(np.diff(x), 40 / 31, atol=0.35) and np.ptp(y) < 0.3
    x, y = centroid(DSPRITES.render(sweep(DSPRITES, "pos_y", shape=1, scale=5, pos_x=3))["image"])
    assert np.allclose(np.diff(y), 40 / 31, atol=0.35) and np.ptp(x) < 0.3
    # Scale: the square's side is 1.5 * 10 px * scale, to a pixel, and its area grows.
    area = (DSPRITES.render(sweep(DSPRITES, "scale", shape=0, pos_x=16, pos_y=16))["image"] > 0).sum(axis=(1, 2, 3))
    side = 15 * np.array(DSPRITES.factors[1].values)
    assert np.all(np.diff(area) > 0) and np.all((side - 1) ** 2 <= area) and np.all(area <= (side + 1) ** 2)
    # Orientation: the ellipse's long axis turns by theta (counter-clockwise on screen).
    images = DSPRITES.render(sweep(DSPRITES, "orientation", shape=1, scale=5, pos_x=16, pos_y=16))["image"]
    for theta, im in zip(DSPRITES.factors[2].values, images):
        ys, xs = np.nonzero(im[..., 0])
        dx, dy = xs - xs.mean(), -(ys - ys.mean())  # y up
        angle = 0.5 * math.atan2(2 * np.mean(dx * dy), np.mean(dx * dx) - np.mean(dy * dy))
        diff = (angle - theta + math.pi / 2) % math.pi - math.pi / 2  # an ellipse repeats each pi
        assert abs(diff) < 0.08, (theta, angle)
    # Shape: square, ellipse and heart at the same scale are different sprites.
    shapes = DSPRITES.render(sweep(DSPRITES, "shape", scale=5, pos_x=16, pos_y=16))["image"]
    assert len({im.tobytes() for im in shapes}) == 3


def mean_hue(image, mask):
    r, g, b = image[mask].astype(np.float64).mean(axis=0) / 255
    return colorsys.rgb_to_hsv(r, g, b)[0]


def test_shapes3d_factors_change_what_they_name():
    for name, cls in (("floor_hue", 1), ("wall_hue", 2), ("object_hue", OBJECT)):
        out = SHAPES3D.render(sweep(SHAPES3D, name, shape=2))
        for value, image, labels in zip(SHAPES3D.factors[SHAPES3D.factor_names.index(name)].values,
                                        out["image"], out["label_map"][..., 0]):
            hue = mean_hue(image, labels == cls)
            assert min(abs(hue - value), 1 - abs(hue - value)) < 0.01, (name, value, hue)
    # Every pixel is background, floor, wall or object, and every class is present.
    out = SHAPES3D.render(sweep(SHAPES3D, "shape", scale=4, orientation=7))
    assert all(set(np.unique(m)) == {0, 1, 2, 3} for m in out["label_map"])
    # Scale: the object's area grows with scale, for every shape.
    for shape in range(4):
        area = (SHAPES3D.render(sweep(SHAPES3D, "scale", shape=shape))["label_map"] == OBJECT).sum(axis=(1, 2, 3))
        assert np.all(np.diff(area) > 0), (shape, area)
    # Shape: four different object silhouettes.
    assert len({(m == OBJECT).tobytes() for m in out["label_map"]}) == 4
    # Orientation tilts the horizon: the floor starts higher on one side than on the other.
    maps = SHAPES3D.render(sweep(SHAPES3D, "orientation", shape=2))["label_map"][..., 0]
    first_floor_row = lambda m, col: int(np.argmax(m[:, col] == 1))
    tilt = [first_floor_row(m, 60) - first_floor_row(m, 3) for m in maps]
    assert tilt[0] < -4 and tilt[7] == 0 and tilt[-1] > 4 and np.all(np.diff(tilt) >= 0), tilt


# -- preparation and reading -----------------------------------------------------------------------
def test_subset_prepared_read_back_through_tfds_and_data_dataset(data_cache):
    import tensorflow_datasets as tfds

    cfg = load_config(VAE, ["data.dataset=dsprites:1000", "model.image_shape=[64,64,1]",
                            "train.batch_size=32"])
    ds = make_datasets(cfg)
    info = ds.info
    assert (info.num_train, info.num_test) == (886, 114) and info.num_classes == 3
    assert info.image_shape == (64, 64, 1) and info.factors[0] == "shape"
    folder = prepared_dir(parse_factor_spec("dsprites:1000"), default_data_dir())
    assert info.source_uri == str(folder.resolve())
    x, y = next(iter(ds.train))
    assert x.shape == (32, 64, 64, 1) and set(np.unique(x.numpy())) <= {0.0, 1.0}
    assert set(y.numpy()) <= {0, 1, 2}
    # The same examples through plain TFDS, by name, with factors that render to the same pixels.
    builder = tfds.builder("gen_keras_dsprites_n1000", data_dir=str(default_data_dir()))
    assert builder.info.splits["test"].num_examples == 114
    ex = next(iter(builder.as_dataset(split="test")))
    np.testing.assert_array_equal(DSPRITES.render(ex["factors"].numpy()[None])["image"][0], ex["image"].numpy())
    assert int(ex["label"]) == int(ex["factors"][0])
    np.testing.assert_allclose(ex["factor_values"].numpy(), DSPRITES.factor_values(ex["factors"].numpy()[None])[0])
    # load_factor_split: bounded, the test split's hash holds, images match the renderer.
    split = load_factor_split(cfg.data, "test", limit=50, value_range=(0.0, 1.0))
    assert split.images.shape == (50, 64, 64, 1) and split.images.dtype == np.float32
    assert is_test(split.factors).all()
    np.testing.assert_array_equal(DSPRITES.render(split.factors)["image"] / 255.0, split.images)
    assert split.labels.tolist() == split.factors[:, 0].tolist()
    # The elements carry the factors for whoever needs them.
    splits, _ = open_source(cfg.data)
    first = next(iter(splits["train"]))
    assert set(first) == {"image", "label", "factors", "factor_values"}


def test_shapes3d_subset_with_label_maps(data_cache):
    split = load_factor_split(DataConfig(dataset="shapes3d:300"), "train", limit=40, label_maps=True)
    assert split.images.shape == (40, 64, 64, 3) and split.label_maps.shape == (40, 64, 64, 1)
    rendered = SHAPES3D.render(split.factors)
    np.testing.assert_array_equal(rendered["image"], split.images)
    np.testing.assert_array_equal(rendered["label_map"], split.label_maps)
    assert split.labels.tolist() == split.factors[:, 4].tolist()  # label = shape
    assert not is_test(split.factors).any()
    assert load_factor_split(DataConfig(dataset="shapes3d:300"), "train", limit=5).label_maps is None
    with pytest.raises(ConfigError, match="limit=0"):
        load_factor_split(DataConfig(dataset="shapes3d:300"), "train", limit=0)


def test_same_seed_same_bytes(tmp_path):
    spec = parse_factor_spec("shapes3d:200")
    a = verify(ensure_prepared(spec, tmp_path / "a"))
    b = verify(ensure_prepared(spec, tmp_path / "b"))
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    assert a["splits"] == b["splits"] and sum(a["splits"].values()) == 200


def test_interrupted_preparation_never_loads(tmp_path):
    spec = parse_factor_spec("dsprites:12000")
    root = tmp_path / "cache"
    final = prepared_dir(spec, root)
    code = ("from gen_keras.data.factor_prepare import ensure_prepared; "
            "from gen_keras.data.factor_specs import parse_factor_spec; "
            f"ensure_prepared(parse_factor_spec('dsprites:12000'), {str(root)!r}, workers=1)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        # Kill it once the second shard is being written: one complete shard, one partial.
        while time.time() < deadline and not list(final.parent.glob("*.incomplete-*/*-00001-of-*")):
            assert proc.poll() is None, "the preparation ended before it could be interrupted"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = list(final.parent.glob("*.incomplete-*"))
    assert len(leftovers) == 1 and not final.exists()
    # The next use prepares it anew (and clears the leftovers); the set is whole.
    cfg = DataConfig(dataset="dsprites:12000", data_dir=str(root))
    _, info = open_source(cfg)
    assert info.num_train + info.num_test == 12_000
    assert final.is_dir() and not list(final.parent.glob("*.incomplete-*"))
    assert verify(final, spec)["splits"] == {"train": info.num_train, "test": info.num_test}
    # The lean shard reader and TFDS's own reader give the same examples in the same order
    # (two train shards here, so the interleave is exercised).
    prepared = open_prepared("dsprites:12000", root)
    assert len(prepared.shard_files("train")) == 2
    ours = np.concatenate([b["factors"].numpy() for b in prepared.elements("train").batch(4096)])
    theirs = np.concatenate([b["factors"].numpy() for b in
                             prepared.builder.as_dataset(split="train", shuffle_files=False).batch(4096)])
    assert len(ours) == info.num_train
    np.testing.assert_array_equal(ours, theirs)


def test_altered_prepared_set_is_refused(tmp_path):
    spec = parse_factor_spec("dsprites:300")
    folder = ensure_prepared(spec, tmp_path)
    shard = next(folder.glob("*-train.tfrecord-*"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 1
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=f"{shard.name}.*sha256.*delete the folder"):
        ensure_prepared(spec, tmp_path)
    shard.unlink()
    with pytest.raises(DataIntegrityError, match="missing"):
        ensure_prepared(spec, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").unlink()
    with pytest.raises(DataIntegrityError, match="no readable manifest.json"):
        ensure_prepared(spec, tmp_path)
    assert manifest["count"] == 300


# -- the pipeline streams what does not fit ----------------------------------------------------------
def dataset_ops(ds) -> set[str]:
    """Class names of every tf.data dataset in a pipeline's chain."""
    seen, stack = set(), [ds]
    while stack:
        d = stack.pop()
        seen.add(type(d).__name__.lstrip("_"))
        stack.extend(d._inputs())
    return seen


def test_cache_only_what_fits_the_budget(data_cache):
    assert cache_fits(8000, (28, 28, 1), 1024)  # mnist10k: 25 MB, cached as before
    assert not cache_fits(663_083, (64, 64, 1), 1024)  # full dsprites train: 10.9 GB, streams
    base = ["data.dataset=dsprites:1000", "model.image_shape=[64,64,1]", "train.batch_size=32"]
    cached = make_datasets(load_config(VAE, base))
    streamed = make_datasets(load_config(VAE, [*base, "data.cache_budget_mb=1"]))  # 886 x 16 KB > 1 MB
    assert "CacheDataset" in dataset_ops(cached.train)
    assert "CacheDataset" not in dataset_ops(streamed.train)
    # Streaming: shard files read interleaved, then the shuffle buffer, then prefetch.
    assert {"ParallelInterleaveDataset", "ShuffleDataset", "PrefetchDataset"} <= dataset_ops(streamed.train)
    a = np.concatenate([y.numpy() for _, y in cached.train])
    b = np.concatenate([y.numpy() for _, y in streamed.train])
    np.testing.assert_array_equal(a, b)  # same examples, same seeded order, with or without cache
    mnist = make_datasets(load_config(VAE, ["train.batch_size=32"]))
    assert "CacheDataset" in dataset_ops(mnist.train)


def test_ground_truth_sampler_renders_chosen_factors():
    sampler = factor_sampler("shapes3d:1000", value_range=(-1.0, 1.0))
    assert sampler.factor_sizes == (10, 10, 10, 8, 4, 15)
    f = sampler.sample_factors(64, np.random.default_rng(0))
    f[:, 4] = 3  # shape fixed: all capsules
    obs = sampler.observations(f)
    assert obs.shape == (64, 64, 64, 3) and obs.min() >= -1.0 and obs.max() <= 1.0
    np.testing.assert_allclose((obs + 1) / 2 * 255, SHAPES3D.render(f)["image"], atol=1e-3)
    with pytest.raises(ConfigError, match="'folder:/x'.*no ground-truth factors"):
        factor_sampler("folder:/x")
