"""The one reader of image files and npz archives (gen_keras/data/image_files.py), on real files:
what it keeps, what it skips and why — the rules training's ``folder:``/``npz:`` sources and
batch jobs share (issue #27, items 8, 14 and 16)."""
from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen_keras.data.image_files import Skip, is_image_name, read_image, read_npz
from gen_keras.errors import ConfigError


def png_claiming(width: int, height: int) -> bytes:
    """A valid little PNG whose header claims ``width`` x ``height`` grey pixels (a decompression
    bomb: a few bytes that would decode to width*height bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def digit(path: Path, size=(28, 28), mode="L", value=200) -> Path:
    Image.new(mode, size, value).save(path)
    return path


def test_good_images_decode_to_uint8_pixels(tmp_path):
    grey = read_image(digit(tmp_path / "g.png"))
    assert grey.shape == (28, 28, 1) and grey.dtype == np.uint8 and int(grey[0, 0, 0]) == 200
    rgb = read_image(digit(tmp_path / "c.JPG", mode="RGB", value=(10, 20, 30)))
    assert rgb.shape == (28, 28, 3)
    assert read_image(tmp_path / "c.JPG", channels=1).shape == (28, 28, 1)
    assert read_image(tmp_path / "g.png", channels=3).shape == (28, 28, 3)
    resized = read_image(digit(tmp_path / "big.png", size=(56, 40)), 1, (28, 28), resize=True)
    assert resized.shape == (28, 28, 1)
    assert is_image_name("A.PNG") and is_image_name("b.WebP") and not is_image_name("c.parquet")


def test_a_decompression_bomb_is_skipped_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    assert len(bomb.read_bytes()) < 160
    skip = read_image(bomb)
    assert isinstance(skip, Skip) and skip.kind == "too_large", skip
    # Below Pillow's own limit (89M pixels) but above ours: refused before decoding too.
    (tmp_path / "big.png").write_bytes(png_claiming(7000, 7000))
    assert read_image(tmp_path / "big.png").kind == "too_large"


def test_a_fifo_named_like_an_image_is_skipped_without_waiting(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=read_image(fifo)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert out["r"].kind == "not_regular_file" and "FIFO" in out["r"].reason
    assert read_image("/dev/null").kind == "not_regular_file"
    (tmp_path / "gone.png").symlink_to(tmp_path / "nothing")
    assert read_image(tmp_path / "gone.png").kind == "cannot_open"


def test_each_bad_file_is_skipped_with_its_reason(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "good.png")
    good = (tmp_path / "good.png").read_bytes()
    assert len(good) > 700
    cases = {"truncated.png": (good[: len(good) // 2], "corrupt"),
             "empty.png": (b"", "not_an_image"),
             "text.png": (b"this is not a PNG\n" * 10, "not_an_image"),
             "eps.png": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n", "not_an_image")}
    bad_crc = bytearray(good)
    bad_crc[-20] ^= 0xFF  # inside the last IDAT chunk's data or CRC
    cases["bad_crc.png"] = (bytes(bad_crc), "corrupt")
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        skip = read_image(tmp_path / name)
        assert isinstance(skip, Skip) and skip.kind == kind, (name, skip)
    Image.new("I;16", (28, 28), 1000).save(tmp_path / "deep.png")
    assert read_image(tmp_path / "deep.png").kind == "pixel_mode"
    Image.new("F", (28, 28), 0.5).save(tmp_path / "float.tiff")
    os.replace(tmp_path / "float.tiff", tmp_path / "float.png")  # a TIFF: not a format we decode
    assert read_image(tmp_path / "float.png").kind == "not_an_image"
    skip = read_image(digit(tmp_path / "small.png", size=(32, 32)), 1, (28, 28))
    assert skip.kind == "size" and "32x32" in skip.reason


def test_npz_archives_are_read_or_refused_with_what_is_wrong(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "ok.npz", x=x, y=np.arange(5))
    images, labels = read_npz(tmp_path / "ok.npz", "--input npz:ok")
    assert images.shape == (5, 28, 28, 1) and labels.tolist() == [0, 1, 2, 3, 4]
    np.savez(tmp_path / "unit.npz", x=x / 255.0)
    np.testing.assert_array_equal(read_npz(tmp_path / "unit.npz", "w")[0][..., 0], x)

    (tmp_path / "random.npz").write_bytes(np.random.default_rng(1).bytes(4096))
    np.save(tmp_path / "single.npy", x)
    os.replace(tmp_path / "single.npy", tmp_path / "single.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "flat.npz", x=np.zeros((5, 784)))
    np.savez(tmp_path / "nan.npz", x=np.full((2, 4, 4), np.nan))
    np.savez(tmp_path / "wide.npz", x=np.full((2, 4, 4), 300.0))
    np.savez(tmp_path / "labels.npz", x=x, y=-np.ones(5))
    np.savez(tmp_path / "nox.npz", images=x)
    (tmp_path / "damaged.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:200])
    expected = {"random": "not an npz archive (not a zip file)", "single": "a single .npy array",
                "objects": "Python objects (pickled)", "flat": "x has shape [5, 784]",
                "nan": "NaN or Inf", "wide": "x values in [300.0, 300.0]",
                "labels": "y must be non-negative integers", "nox": "no array 'x'",
                "damaged": "damaged npz archive", "missing": "no such file"}
    for name, message in expected.items():
        with pytest.raises(ConfigError) as err:
            read_npz(tmp_path / f"{name}.npz", f"--input npz:{name}")
        assert str(err.value).startswith(f"--input npz:{name}: ") and message in str(err.value), err.value
        assert "pickled data" not in str(err.value) or name == "objects"
