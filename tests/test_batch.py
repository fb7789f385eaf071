"""Batch jobs on Apache Beam (DirectRunner, real worker processes) over real exports: the same
seed range gives byte-identical images on 1 and 2 workers and equals the export run directly;
scores and codes equal the export's operations; unreadable images are skipped and counted; bad
model sources, damaged exports and missing operations are clear errors before the pipeline; a
failing job leaves no output shard under its final name."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam")
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

from gen_keras.batch.pipeline import BatchJob, run  # noqa: E402
from gen_keras.errors import ArtifactIntegrityError, ConfigError, ModelSourceError  # noqa: E402
from gen_keras.exported.latents import draw_noise, sample_prior  # noqa: E402
from gen_keras.exported.reader import ExportReader  # noqa: E402
from gen_keras.images import image_png as png  # noqa: E402

from conftest import ROOT  # noqa: E402

GEN_KERAS = str(Path(sys.executable).with_name("gen-keras"))
_EXPORTS: dict = {}


def tiny_export(kind: str, root: Path) -> Path:
    """An untrained small export of ``kind`` (the batch machinery does not care about quality)."""
    if kind not in _EXPORTS:
        from gen_keras.config_loader import load_config
        from gen_keras.export import export_model
        from gen_keras.models import build_model

        overrides = {"vae": ["model.hidden=16", "model.latent_dim=3"],
                     "dcgan": ["model.latent_dim=8"]}[kind]
        cfg = load_config(ROOT / f"pipelines/configs/{kind}_mnist10k.yaml", overrides)
        _EXPORTS[kind] = export_model(build_model(cfg.model), root / kind, name=kind)
    return _EXPORTS[kind]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_exports")
    return {k: tiny_export(k, root) for k in ("vae", "dcgan")}


def read_rows(folder: Path) -> dict:
    """id -> row over every final shard of a job."""
    table = pq.read_table(sorted(Path(folder).glob("part-*.parquet")))
    return {row["id"]: row for row in table.to_pylist()}


def digit_pngs(folder: Path, n: int) -> np.ndarray:
    """The first ``n`` real test digits as PNG files; returns them as uint8 [n, 28, 28, 1]."""
    from gen_keras.config import DataConfig
    from gen_keras.data import load_split

    images, _ = load_split(DataConfig(dataset="mnist10k"), "test", (28, 28, 1), (0.0, 255.0), limit=n)
    images = np.round(images).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im[..., 0]).save(folder / f"digit_{i:03d}.png")
    return images


def test_generate_is_byte_identical_on_one_and_two_workers(exports, tmp_path):
    n, first = 700, 1000
    one = tmp_path / "one"
    proc = subprocess.run([GEN_KERAS, "batch", "generate", "--export", str(exports["dcgan"]),
                           "--count", str(n), "--seed", str(first), "--chunk-size", "64",
                           "--out", str(one), "--", "--direct_num_workers=1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"items {n}" in proc.stdout and f"rows {n}" in proc.stdout and "chunks 11" in proc.stdout
    two = run(BatchJob("generate", str(exports["dcgan"]), str(tmp_path / "two"), count=n, seed=first,
                       chunk_size=64, shards=3), ["--direct_num_workers=2"])
    assert two["items"] == n and two["rows"] == n and two["skipped_unreadable"] == 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["_gen_keras_batch.json"] + [
        f"part-{i:05d}-of-00003.parquet" for i in range(3)]  # nothing else: no temp files left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    a, b = read_rows(one), read_rows(tmp_path / "two")
    assert sorted(a) == sorted(b) == sorted(str(s) for s in range(first, first + n))
    assert all(a[k]["png"] == b[k]["png"] and a[k]["seed"] == b[k]["seed"] == int(k) for k in a)
    # The same as running the export directly on the documented prior draw of each seed.
    reader = ExportReader(exports["dcgan"])
    for seed in (first, first + 63, first + 64, first + n - 1):
        image = reader.run("generate", z=sample_prior(1, reader.latent_dim, seed))["image"][0]
        assert a[str(seed)]["png"] == png(image, reader.value_range)
        decoded = np.asarray(Image.open(io.BytesIO(a[str(seed)]["png"])))
        assert decoded.shape == (28, 28) and decoded.dtype == np.uint8


def test_score_skips_unreadable_images_and_equals_the_operation(exports, tmp_path):
    folder = tmp_path / "images"
    images = digit_pngs(folder, 20)
    (folder / "digit_005b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # truncated
    (folder / "digit_010b.png").write_bytes(b"")  # empty
    Image.new("L", (32, 32)).save(folder / "digit_015b.png")  # another size
    counters = run(BatchJob("score", str(exports["vae"]), str(tmp_path / "scores"),
                            input=f"folder:{folder}", seed=5, chunk_size=64),
                   ["--direct_num_workers=2"])
    assert (counters["items"], counters["skipped_unreadable"], counters["rows"]) == (20, 3, 20)
    rows = read_rows(tmp_path / "scores")
    ids = sorted(str(folder / f"digit_{i:03d}.png") for i in range(20))
    assert sorted(rows) == ids
    # One chunk: eps by the one noise rule (job seed, position of the item), one row per kept
    # image in file order.
    reader = ExportReader(exports["vae"])
    eps = draw_noise(20, reader.latent_dim, 5, 0)
    want = reader.run("score", x=images.astype(np.float32) / 255.0, eps=eps)["score"]
    got = np.array([rows[i]["score"] for i in ids])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all(got > 0)  # a negative ELBO of a binary image under an untrained decoder


def test_embed_and_reconstruct_an_npz_archive(exports, tmp_path):
    x = digit_pngs(tmp_path / "unused", 40)
    labels = np.arange(40) % 10
    np.savez(tmp_path / "archive.npz", x=x[..., 0], y=labels)
    reader = ExportReader(exports["vae"])
    run(BatchJob("embed", str(exports["vae"]), str(tmp_path / "emb"), input=f"npz:{tmp_path / 'archive.npz'}",
                 chunk_size=16, limit=33), ["--direct_num_workers=2"])
    rows = read_rows(tmp_path / "emb")
    assert sorted(rows, key=int) == [str(i) for i in range(33)]
    want = reader.run("encode", x=x[:33].astype(np.float32) / 255.0)["mean"]
    got = np.array([rows[str(i)]["code"] for i in range(33)])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert [rows[str(i)]["label"] for i in range(33)] == labels[:33].tolist()
    png_dir = tmp_path / "recon_png"
    run(BatchJob("reconstruct", str(exports["vae"]), str(tmp_path / "recon"),
                 input=f"npz:{tmp_path / 'archive.npz'}", chunk_size=16, limit=5, png_dir=str(png_dir)),
        ["--direct_num_workers=1"])
    recon = read_rows(tmp_path / "recon")
    image = reader.run("reconstruct", x=x[:5].astype(np.float32) / 255.0)["image"][3]
    assert recon["3"]["png"] == png(image, reader.value_range) == (png_dir / "3.png").read_bytes()


def test_bad_sources_and_exports_fail_before_the_pipeline(exports, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="has no 'encode' operation, so it cannot embed"):
        run(BatchJob("embed", str(exports["dcgan"]), str(out), input="mnist10k"))
    with pytest.raises(ConfigError, match="needs --input"):
        run(BatchJob("score", str(exports["vae"]), str(out)))
    with pytest.raises(ConfigError, match="no such folder"):
        run(BatchJob("score", str(exports["vae"]), str(out), input=f"folder:{tmp_path / 'nope'}"))
    with pytest.raises(ConfigError, match="--count 0 must be >= 1"):
        run(BatchJob("generate", str(exports["dcgan"]), str(out)))
    damaged = tmp_path / "damaged"
    shutil.copytree(exports["dcgan"], damaged)
    onnx = damaged / "generate.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="generate.onnx"):
        run(BatchJob("generate", str(damaged), str(out), count=10))
    assert not out.exists() or not any(out.iterdir())
    # Registry sources, through the command: a store that does not exist, a missing alias.
    store = tmp_path / "mlflow.db"
    proc = subprocess.run([GEN_KERAS, "batch", "generate", "--export", "models:/digits@champion",
                           "--tracking-uri", f"sqlite:///{store}", "--count", "5",
                           "--out", str(tmp_path / "o2")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no MLflow tracking store at" in proc.stderr and not store.exists()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    client.create_registered_model("digits")
    with pytest.raises(ModelSourceError, match="models:/digits@champion"):
        from gen_keras.exported.sources import resolve

        resolve("models:/digits@champion", tracking_uri=f"sqlite:///{store}", cache_dir=tmp_path / "cache")


def test_a_failing_job_leaves_no_shard_under_a_final_name(exports, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Exception, match="planted failure"):
        run(BatchJob("generate", str(exports["dcgan"]), str(out), count=600, chunk_size=32, shards=2,
                     _fail_at_chunk=12), ["--direct_num_workers=2"])
    assert list(tmp_path.iterdir()) == []  # no --out, and no temporary folder beside it


# -- issue #27: --out, killed jobs, bad files, bad archives -----------------------------------------
def cli(*args, timeout=300):
    return subprocess.run([GEN_KERAS, "batch", *args], capture_output=True, text=True, timeout=timeout)


def test_out_must_be_new_empty_or_a_finished_output_of_this_tool(exports, tmp_path):
    dcgan = str(exports["dcgan"])
    out = tmp_path / "out"
    run(BatchJob("generate", dcgan, str(out), count=30, shards=1), ["--direct_num_workers=1"])
    # Running again into a finished output replaces it whole: only the new rows are there, and
    # pyarrow reads the folder as it is (the record's name starts with "_").
    run(BatchJob("generate", dcgan, str(out), count=20, seed=100, shards=2), ["--direct_num_workers=1"])
    table = pq.read_table(out)
    assert table.num_rows == 20 and sorted(table.column("seed").to_pylist()) == list(range(100, 120))
    # Anything else is refused, named, before the pipeline: other Parquet files in any case, in
    # a sub-folder or without a suffix (pyarrow would read their rows with the job's), extra files.
    part = next(out.glob("part-*.parquet")).read_bytes()
    placed = {"upper": "old.PARQUET", "nested": "sub/x.parquet", "bare": "data", "extra": "notes.txt"}
    for folder, name in placed.items():
        if folder == "extra":
            shutil.copytree(out, tmp_path / folder)
        (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_bytes(part)
        with pytest.raises(ConfigError, match=f"holds .*{name.split('/')[0]}.*not a finished gen-keras batch output"):
            run(BatchJob("generate", dcgan, str(tmp_path / folder), count=5))
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{folder}.tmp-")]
    (tmp_path / "a-file").write_bytes(part)
    proc = cli("generate", "--export", dcgan, "--count", "5", "--out", str(tmp_path / "a-file"))
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr and "Traceback" not in proc.stderr


def test_a_killed_job_leaves_out_as_it_was_and_the_next_job_cleans_up(exports, tmp_path):
    import os
    import signal
    import time

    dcgan = str(exports["dcgan"])
    out = tmp_path / "gen"
    run(BatchJob("generate", dcgan, str(out), count=10, shards=1), ["--direct_num_workers=1"])
    record = (out / "_gen_keras_batch.json").read_text()
    proc = subprocess.Popen([GEN_KERAS, "batch", "generate", "--export", dcgan, "--count", "300000",
                             "--out", str(out), "--", "--direct_num_workers=2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # killed once Beam has part files without footers in the job's folder
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob(".gen.tmp-*/beam-temp-*/*")):
            assert proc.poll() is None and time.monotonic() < deadline, "the job ended before it was killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert (out / "_gen_keras_batch.json").read_text() == record and pq.read_table(out).num_rows == 10
    assert list(tmp_path.glob(".gen.tmp-*"))
    # The version before wrote into --out itself: its beam-temp-* folders alone are leftovers too.
    legacy = tmp_path / "legacy"
    (legacy / "beam-temp-part-1a2b").mkdir(parents=True)
    (legacy / "beam-temp-part-1a2b" / "0f3c.parquet").write_bytes(b"PAR1 no footer")
    run(BatchJob("generate", dcgan, str(out), count=15, shards=1), ["--direct_num_workers=1"])
    run(BatchJob("generate", dcgan, str(legacy), count=5, shards=1), ["--direct_num_workers=1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen", "legacy"]
    assert pq.read_table(out).num_rows == 15 and pq.read_table(legacy).num_rows == 5


def test_bad_files_in_an_input_folder_are_skipped_counted_and_named(exports, tmp_path):
    import os

    from test_image_files import png_claiming

    folder = tmp_path / "images"
    images = digit_pngs(folder, 6)
    Image.fromarray(images[0, ..., 0]).save(folder / "UPPER.PNG")  # kept: the case of a suffix is no reason
    (folder / "bomb.png").write_bytes(png_claiming(20000, 20000))  # a decompression bomb
    os.mkfifo(folder / "x.png")  # reading it would wait for a writer forever
    Image.new("I;16", (28, 28), 1000).save(folder / "deep.png")
    proc = cli("embed", "--export", str(exports["vae"]), "--input", f"folder:{folder}", "--out",
               str(tmp_path / "emb"), "--", "--direct_num_workers=1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for counter in ("items 7", "rows 7", "skipped_unreadable 3", "skipped_too_large 1",
                    "skipped_not_regular_file 1", "skipped_pixel_mode 1"):
        assert counter in proc.stdout, (counter, proc.stdout)
    assert f"skipped {folder / 'x.png'}: not a regular file (a FIFO)" in proc.stderr
    assert f"skipped {folder / 'bomb.png'}: more than" in proc.stderr
    assert str(folder / "UPPER.PNG") in read_rows(tmp_path / "emb")


def test_bad_npz_inputs_are_a_clear_exit_2_before_the_pipeline(exports, tmp_path):
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    np.savez(tmp_path / "wrong.npz", x=np.zeros((10, 32, 32), np.uint8))
    for name, message in {"random": "not an npz archive (not a zip file)",
                          "wrong": "images of shape [32, 32, 1]; the model takes [28, 28, 1]"}.items():
        proc = cli("score", "--export", str(exports["vae"]), "--input", f"npz:{tmp_path / name}.npz",
                   "--out", str(tmp_path / f"out_{name}"))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and "pickled" not in proc.stderr
        assert not (tmp_path / f"out_{name}").exists()


def test_a_data_set_input_is_read_through_the_data_layer(exports, tmp_path, data_cache):
    from gen_keras.data.named import named_split

    run(BatchJob("embed", str(exports["vae"]), str(tmp_path / "emb"), input="mnist10k", limit=20,
                 chunk_size=8), ["--direct_num_workers=1"])
    rows = read_rows(tmp_path / "emb")
    x, y = named_split("mnist10k", "test", (28, 28, 1))
    want = ExportReader(exports["vae"]).run("encode", x=x[:20].astype(np.float32) / 255.0)["mean"]
    np.testing.assert_allclose([rows[str(i)]["code"] for i in range(20)], want, atol=1e-6)
    assert [rows[str(i)]["label"] for i in range(20)] == y[:20].tolist()
