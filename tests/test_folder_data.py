"""#29: a ``folder:`` data set prepared once into shards and streamed — the resize rules, the colour
modes, what is kept and skipped and why, appending new files, the manifest's checks, the Beam
pipeline's shards against the in-process ones, the errors before any training, and one real
training epoch from a folder. Every folder is a few dozen real files written here."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen_keras.data import resize
from gen_keras.data.folder_decode import decode_png, prepare_file
from gen_keras.data.folder_prepare import PART_FILES, Settings, ensure_prepared, list_folder, set_folder
from gen_keras.data.image_files import Skip
from gen_keras.errors import ConfigError, DataIntegrityError

ROOT = Path(__file__).resolve().parents[1]


def pixels(path, shape, rule="crop"):
    out = prepare_file(str(path), shape, rule)
    assert not isinstance(out, Skip), out
    return decode_png(out[0]), out[1]


def halves(size, left, right, mode="RGB"):
    """A ``size`` image whose left half is ``left`` and right half ``right``."""
    im = Image.new(mode, size, left)
    im.paste(Image.new(mode, (size[0] - size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return im


def photo_folder(root: Path, n_per_class: int = 12, seed: int = 0) -> Path:
    """Two classes of random colour pictures of mixed sizes and formats."""
    rng = np.random.default_rng(seed)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            w, h = (int(v) for v in rng.integers(40, 160, 2))
            im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            im.save(root / c / (f"{i:03d}.jpg" if i % 2 else f"{i:03d}.png"))
    return root


# ---- the resize rules --------------------------------------------------------------------------
def test_rules_geometry_by_hand():
    assert resize.scale_of((200, 100), (32, 32), "crop") == (0.32, 0.32)
    assert resize.crop_box((200, 100), (32, 32)) == (50.0, 0.0, 150.0, 100.0)
    assert resize.scale_of((200, 100), (32, 32), "pad") == (0.16, 0.16)
    assert resize.pad_layout((200, 100), (32, 32)) == ((32, 16), (0, 8))
    assert resize.scale_of((200, 100), (32, 32), "stretch") == (0.16, 0.32)
    assert resize.upscale_of((16, 64), (32, 32), "crop") == 2.0  # the narrow side doubles
    assert resize.upscale_of((16, 64), (32, 32), "pad") == 0.5
    assert resize.max_reachable([(20, 40), (100, 30)], "crop", (32, 32)) == (40, 40)
    with pytest.raises(ConfigError, match="data.resize='squash'.*crop"):
        resize.check_rule("squash")


def test_rules_on_real_pixels(tmp_path):
    red, blue = (255, 0, 0), (0, 0, 255)
    wide = tmp_path / "wide.png"
    im = Image.new("RGB", (120, 40), (0, 255, 0))  # green edges, red | blue centre square
    im.paste(halves((40, 40), red, blue), (40, 0))
    im.save(wide)

    def near(region, colour):  # Lanczos rings a little at edges: compare away from them
        return np.abs(region.astype(float).mean(axis=(0, 1)) - colour).max() < 6

    crop, notes = pixels(wide, (20, 20, 3), "crop")
    assert notes == () and crop.shape == (20, 20, 3)
    assert near(crop[:, 2:8], red) and near(crop[:, 12:18], blue)  # only the centre square
    pad, _ = pixels(wide, (30, 30, 3), "pad")
    assert (pad[:9] == 255).all() and (pad[-10:] == 255).all()  # white bands above and below
    assert near(pad[12:18, 1:8], (0, 255, 0)) and near(pad[12:18, 11:14], red)
    stretch, _ = pixels(wide, (20, 20, 3), "stretch")
    assert near(stretch[:, :5], (0, 255, 0)) and near(stretch[:, -5:], (0, 255, 0))
    assert near(stretch[:, 7:9], red)
    small = tmp_path / "small.png"
    Image.new("RGB", (15, 40)).save(small)
    assert pixels(small, (30, 30, 3), "crop")[1] == ("enlarged",)  # 2x: allowed
    skip = prepare_file(str(small), (31, 31, 3), "crop")
    assert isinstance(skip, Skip) and skip.kind == "too_small" and "2.07x" in skip.reason


# ---- colour modes --------------------------------------------------------------------------------
def test_colour_modes_are_converted(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the viewer turns it 90 degrees clockwise
    halves((40, 20), (255, 0, 0), (0, 0, 255)).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright, notes = pixels(tmp_path / "phone.jpg", (40, 20, 3), "stretch")
    assert "exif_rotated" in notes and upright.shape == (40, 20, 3)
    assert upright[:18, :, 0].mean() > 200 and upright[22:, :, 2].mean() > 200  # red above blue

    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (4, 8), (0, 0, 255, 255)), (4, 0))
    rgba.save(tmp_path / "clear.png")
    out, notes = pixels(tmp_path / "clear.png", (8, 8, 3))
    assert notes == ("alpha_on_background",)
    assert (out[:, :4] == 255).all() and (out[:, 4:] == (0, 0, 255)).all()  # white, not red

    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    pal.save(tmp_path / "pal.png", transparency=1)
    out, notes = pixels(tmp_path / "pal.png", (8, 8, 3))
    assert notes == ("palette",) and (out == (10, 200, 30)).all()

    Image.fromarray(np.full((8, 8), 0x1234, np.uint16)).save(tmp_path / "deep.png")
    out, notes = pixels(tmp_path / "deep.png", (8, 8, 1))
    assert notes == ("16_bit",) and (out == 0x12).all()  # the high byte, not clipped to 255

    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg", quality=95)
    out, notes = pixels(tmp_path / "print.jpg", (16, 16, 3))
    assert notes == ("cmyk",) and abs(out.mean(axis=(0, 1)) - (255, 0, 0)).max() < 8

    Image.new("L", (8, 8), 77).save(tmp_path / "grey.png")
    out, notes = pixels(tmp_path / "grey.png", (8, 8, 3))
    assert notes == ("grey_to_rgb",) and (out == 77).all()
    out, notes = pixels(tmp_path / "clear.png", (8, 8, 1))
    assert "colour_to_grey" in notes and out.shape == (8, 8, 1)


# ---- preparing, reading, appending ---------------------------------------------------------------
def test_prepared_once_streamed_and_summarised(tmp_path):
    folder = photo_folder(tmp_path / "photos")
    (folder / "cats" / "garbage.png").write_bytes(b"not a png at all")
    good = (folder / "dogs" / "000.png").read_bytes()
    (folder / "dogs" / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (10, 10)).save(folder / "dogs" / "tiny.png")
    (folder / "notes.txt").write_text("beside the classes")
    (folder / "cats" / "._000.jpg").write_bytes(b"macOS metadata")
    Image.new("L", (64, 64), 128).save(folder / "dogs" / "grey.png")
    from test_image_files import png_claiming

    (folder / "dogs" / "bomb.png").write_bytes(png_claiming(20000, 20000))  # 140 bytes, 400 MP
    cache = tmp_path / "cache"
    settings = Settings((32, 32, 3), "crop")

    prepared = ensure_prepared(folder, settings, cache, progress=False)
    s = prepared.summary()
    assert (s["files"], s["kept"], s["skipped"]) == (29, 25, 4)
    assert s["skipped_by_kind"] == {"corrupt": 1, "not_an_image": 1, "too_large": 1, "too_small": 1}
    assert s["converted"]["grey_to_rgb"] == 1 and s["classes"] == {"cats": 12, "dogs": 13}
    assert {x.path for x in prepared.skips} == {"cats/garbage.png", "dogs/truncated.png", "dogs/tiny.png",
                                                "dogs/bomb.png"}
    listing = list_folder(folder)
    assert listing.ignored == {"beside the class sub-folders": 1, "hidden": 1}

    _, n_train, n_test = prepared.split(0.2)
    assert (n_train, n_test) == (20, 5)
    train = list(prepared.elements("train", test_fraction=0.2, seed=3))
    test = list(prepared.elements("test", test_fraction=0.2))
    assert len(train) == 20 and len(test) == 5
    # Each example is the file prepared by the one decoder, labelled by its sub-folder.
    by_pixels = {}
    for rel in [e.path for e in listing.entries]:
        out = prepare_file(str(folder / rel), (32, 32, 3), "crop")
        if not isinstance(out, Skip):
            by_pixels[decode_png(out[0]).tobytes()] = rel
    seen = [by_pixels[ex["image"].numpy().tobytes()] for ex in train + test]
    assert len(set(seen)) == 25
    assert all(int(ex["label"]) == ("cats", "dogs").index(rel.split("/")[0])
               for ex, rel in zip(train + test, seen))
    # Deterministic for a seed; another seed reads the shards in another order (several shards).
    again = [ex["image"].numpy().tobytes() for ex in prepared.elements("train", test_fraction=0.2, seed=3)]
    assert again == [ex["image"].numpy().tobytes() for ex in train]

    # Prepared once: a second open decodes nothing (the manifest is not rewritten).
    stamp = (prepared.folder / "manifest.json").stat().st_mtime_ns
    assert ensure_prepared(folder, settings, cache, progress=False).num_kept == 25
    assert (prepared.folder / "manifest.json").stat().st_mtime_ns == stamp


def test_new_files_are_prepared_alone_and_appended(tmp_path):
    folder = photo_folder(tmp_path / "photos", n_per_class=10)
    cache, settings = tmp_path / "cache", Settings((24, 24, 3), "pad")
    first = ensure_prepared(folder, settings, cache, progress=False)
    old_shards = {f: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in first.shard_files()}
    photo_folder(tmp_path / "more", n_per_class=3, seed=1)
    for c in ("cats", "dogs"):
        for p in (tmp_path / "more" / c).iterdir():
            shutil.copy(p, folder / c / f"new_{p.name}")
    (folder / "birds").mkdir()
    Image.new("RGB", (30, 30), (0, 0, 255)).save(folder / "birds" / "b.png")

    second = ensure_prepared(folder, settings, cache, progress=False)
    parts = second.manifest["parts"]
    assert [p["files"] for p in parts] == [20, 7] and second.num_kept == 27
    assert second.classes == ("birds", "cats", "dogs")  # the new class: labels by name, read time
    assert all(hashlib.sha256(Path(f).read_bytes()).hexdigest() == h for f, h in old_shards.items())
    rows = json.loads((second.folder / parts[1]["name"] / PART_FILES).read_text())["rows"]
    assert sorted(r[0] for r in rows) == sorted(
        ["birds/b.png"] + [f"{c}/new_{p.name}" for c in ("cats", "dogs") for p in (tmp_path / "more" / c).iterdir()])
    labels = {int(ex["label"]) for s in ("train", "test")
              for ex in second.elements(s, test_fraction=0.2)}
    assert labels == {0, 1, 2}

    # A used file that changed would leave a stale example: the folder is prepared again.
    changed = folder / "cats" / "000.png"
    Image.new("RGB", (50, 50), (1, 2, 3)).save(changed)
    third = ensure_prepared(folder, settings, cache, progress=False)
    assert [p["files"] for p in third.manifest["parts"]] == [27]


def test_leftovers_removed_and_tampering_refused(tmp_path):
    folder = photo_folder(tmp_path / "photos", n_per_class=4)
    cache, settings = tmp_path / "cache", Settings((16, 16, 3))
    target = set_folder(folder, settings, cache)
    target.mkdir(parents=True)
    killed = target / "part-0123.incomplete-abcd"
    killed.mkdir()
    (killed / "shard-00000-of-00001.tfrecord").write_bytes(b"half")
    prepared = ensure_prepared(folder, settings, cache, progress=False)
    assert not killed.exists() and prepared.num_kept == 8
    shard = Path(prepared.shard_files()[0])
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match=f"{shard.name}: size or sha256.*delete the folder"):
        ensure_prepared(folder, settings, cache, progress=False)


# ---- bad input, before any training --------------------------------------------------------------
def test_bad_folders_are_clear_errors(tmp_path, caplog):
    cache = tmp_path / "cache"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures")
    with pytest.raises(ConfigError, match=r"folder:.*empty'.*no image files.*1 not named like an image"):
        ensure_prepared(empty, Settings((32, 32, 3)), cache, progress=False)

    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(5):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * i)
    with pytest.raises(ConfigError, match=r"broken'.*none of its 5 image file\(s\) is usable "
                                          r"\((corrupt|not_an_image) \d.*\); the first: 0.jpg"):
        ensure_prepared(broken, Settings((32, 32, 3)), cache, progress=False)

    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    for i in range(3):
        Image.new("RGB", (24 + i, 20)).save(thumbs / f"{i}.png")
    with pytest.raises(ConfigError, match=r"thumbs'.*rule 'crop' cannot reach model.image_shape "
                                          r"\[64, 64, 3\]: all 3 image\(s\).*at most 40x40"):
        ensure_prepared(thumbs, Settings((64, 64, 3)), cache, progress=False)
    with pytest.raises(ConfigError, match=r"model.image_shape=\[64, 64, 4\].*thumbs'.*grey.*RGB"):
        ensure_prepared(thumbs, Settings((64, 64, 4)), cache, progress=False)

    mixed = photo_folder(tmp_path / "mixed", n_per_class=3)
    for i in range(2):
        Image.new("L", (50, 50), 9 * i).save(mixed / "cats" / f"grey{i}.png")
    with caplog.at_level(logging.WARNING, logger="gen_keras.data"):
        grey = ensure_prepared(mixed, Settings((32, 32, 1)), cache, progress=False)
    assert grey.summary()["converted"]["colour_to_grey"] == 6
    assert "mixed'" in caplog.text and "6 colour to grey (of 8 kept)" in caplog.text


def test_config_and_data_path_errors_name_the_field(tmp_path, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.data import make_datasets

    with pytest.raises(ConfigError, match="data.resize='fit'"):
        load_config(ROOT / "pipelines/configs/dcgan_shapes3d.yaml", ["data.resize=fit"])
    few = photo_folder(tmp_path / "few", n_per_class=2)
    cfg = load_config(ROOT / "pipelines/configs/dcgan_shapes3d.yaml",
                      [f"data.dataset=folder:{few}", "model.image_shape=[32,32,3]", "train.batch_size=16"])
    with pytest.raises(ConfigError, match="train.batch_size=16 is larger than the 3 training images"):
        make_datasets(cfg)


# ---- Beam ----------------------------------------------------------------------------------------
def test_beam_pipeline_writes_the_same_shards(tmp_path):
    """Two DirectRunner worker processes, one shard per work item (shards of 8 files here), give
    the in-process preparation's shards byte for byte, and the same stream."""
    pytest.importorskip("apache_beam")
    import functools

    from gen_keras.data.folder_beam import beam_part_writer
    from gen_keras.data.folder_prepare import write_part

    folder = photo_folder(tmp_path / "photos", n_per_class=20)
    (folder / "dogs" / "bad.jpg").write_bytes(b"nope")
    settings = Settings((24, 24, 3), "crop")
    local = ensure_prepared(folder, settings, tmp_path / "a", progress=False, part_writer=functools.partial(
        write_part, workers=2, progress=False, shard_examples=8))
    beam = ensure_prepared(folder, settings, tmp_path / "b", progress=False, part_writer=beam_part_writer(
        ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        shard_examples=8))
    digest = lambda p: [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in p.shard_files()]
    assert len(digest(beam)) == 6 and digest(beam) == digest(local)
    assert beam.manifest["parts"][0]["kept"] == 40
    assert beam.summary()["skipped_by_kind"] == local.summary()["skipped_by_kind"] == {"not_an_image": 1}
    assert [ex["image"].numpy().tobytes() for ex in beam.elements("train", test_fraction=0.2, seed=1)] == \
        [ex["image"].numpy().tobytes() for ex in local.elements("train", test_fraction=0.2, seed=1)]


# ---- training from a folder ----------------------------------------------------------------------
def test_one_real_epoch_from_a_folder_records_the_skips(tmp_path, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.data import make_datasets
    from gen_keras.data.folder_source import run_record
    from gen_keras.training import train

    folder = photo_folder(tmp_path / "photos", n_per_class=24)
    (folder / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cfg = load_config(ROOT / "pipelines/configs/dcgan_shapes3d.yaml", [
        f"data.dataset=folder:{folder}", "model.image_shape=[32,32,3]", "data.resize=pad",
        "train.batch_size=16", "train.epochs=1", "model.g_filters=8", "model.d_filters=8",
        f"tracking.outputs_dir={tmp_path / 'out'}", "train.progress=false",
        "train.evaluate_at_end=false", "train.export_at_end=false", "train.sample_every_epoch=false"])
    data = make_datasets(cfg)
    assert (data.info.num_train, data.info.num_test, data.info.num_classes) == (38, 10, 2)
    record = run_record(data.info)
    assert record["metrics"]["data/skipped_files"] == 1
    assert "cats/broken.jpg\tcorrupt" in record["artifacts"]["data/skipped_files.tsv"]
    images, _ = next(iter(data.train))
    assert images.shape == (16, 32, 32, 3) and -1.0 <= float(images.numpy().min()) < 0 < float(images.numpy().max()) <= 1.0
    result = train(cfg, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", verbose=0)
    assert np.isfinite(result.final_metrics["g_loss"]) and os.path.isdir(result.samples_dir.parent)


def test_gen_keras_prepare_prints_the_summary(tmp_path, capsys):
    from gen_keras.cli import main

    folder = photo_folder(tmp_path / "photos", n_per_class=5)
    (folder / "dogs" / "bad.gif").write_bytes(b"GIF89a broken")
    args = ["prepare", "--config", str(ROOT / "pipelines/configs/dcgan_scenes64.yaml"), "--quiet",
            "--set", f"data.dataset=folder:{folder}", "--set", f"data.data_dir={tmp_path / 'cache'}",
            "--set", "model.image_shape=[32,32,3]", "--set", "data.resize=stretch"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["kept"], summary["train"], summary["test"]) == (10, 8, 2)
    assert summary["skipped_by_kind"] == {"not_an_image": 1} and summary["settings"]["resize"] == "stretch"
    assert main(args[:2] + [str(ROOT / "pipelines/configs/dcgan_shapes3d.yaml")]) == 2  # not a folder
    assert "prepares folder:<path> data sets" in capsys.readouterr().err
