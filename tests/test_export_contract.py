"""The export is the seam (issue 25): a model kind defined only in this file — its operations and
tensors named its own way, their meaning declared as roles — is trained, exported, served (its
operations on the page), loaded by MLflow's pyfunc and run by ``gen-keras batch``, with no edit
anywhere in ``serving/``, ``gen_keras/exported/pyfunc.py`` or ``gen_keras/batch/``. And one rule
for seeds and noise: the same seeds give the same images, and the same noise seed the same scores,
through ``gen-keras serve``, ``mlflow.pyfunc`` and ``gen-keras batch``."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

from gen_keras.models.autoencoder import Autoencoder, AutoencoderConfig
from gen_keras.models.base import Endpoint
from gen_keras.models.networks import TensorFunction
from gen_keras.models.registry import register_model

from conftest import ROOT
from serving_fixtures import ServeProcess, request

GEN_KERAS = str(Path(sys.executable).with_name("gen-keras"))
SEEDS = [100, 101, 102, 103]


@dataclass
class PainterConfig(AutoencoderConfig):
    kind: str = "test_painter"
    reconstruction: str = "bce"


@register_model("test_painter", PainterConfig)
@keras.saving.register_keras_serializable(package="gen_keras_tests")
class Painter(Autoencoder):
    """An autoencoder whose export speaks its own words: ``paint`` (u → picture), ``embed``
    (img → where) and ``judge`` (img, jitter → badness: the error of reconstructing img from its
    code moved by 0.1 jitter). Only the declared roles tell a consumer what each tensor is."""

    def export_endpoints(self):
        u = keras.Input((self.latent_dim,), name="u")
        img = keras.Input(self.image_shape, name="img")
        jitter = keras.Input((self.latent_dim,), name="jitter")
        sigmoid = keras.layers.Activation("sigmoid", dtype="float32")
        moved = TensorFunction(lambda z, j: z + 0.1 * j, "moved")([self.encoder(img), jitter])
        badness = TensorFunction(self.reconstruction_error, "badness")([img, self.decoder(moved)])
        return [Endpoint("paint", keras.Model(u, sigmoid(self.decoder(u))), ["picture"], task="generate",
                         roles={"u": "code", "picture": "image"}),
                Endpoint("embed", keras.Model(img, self.encoder(img)), ["where"], task="encode",
                         roles={"img": "image", "where": "code"}),
                Endpoint("judge", keras.Model([img, jitter], badness), ["badness"], task="score",
                         roles={"img": "image", "jitter": "noise", "badness": "score"})]


@pytest.fixture(scope="module")
def painter(tmp_path_factory, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    root = tmp_path_factory.mktemp("painter")
    cfg = load_config(ROOT / "pipelines/configs/autoencoder_mnist10k.yaml", [
        "model.kind=test_painter", "model.latent_dim=8", "model.filters=8", "model.hidden=32",
        f"tracking.outputs_dir={root / 'outputs'}", f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        "tracking.run_name=painter", "data.limit_train=256", "data.limit_test=64", "train.batch_size=64",
        "train.epochs=1", "train.progress=false", "train.evaluate_at_end=false"])
    result = train(cfg)
    return root, Path(result.export_dir)


def test_the_manifest_declares_what_each_tensor_means(painter):
    from gen_keras.exported.reader import ExportReader

    _, export = painter
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["facts"] == {}
    paint = manifest["endpoints"]["paint"]
    assert paint["task"] == "generate" and paint["inputs"] == [
        {"name": "u", "role": "code", "shape": [None, 8], "dtype": "float32"}]
    assert paint["output_specs"][0]["role"] == "image" and paint["output_specs"][0]["value_range"] == [0.0, 1.0]
    judge = manifest["endpoints"]["judge"]
    assert [(i["name"], i["role"]) for i in judge["inputs"]] == [("img", "image"), ("jitter", "noise")]
    assert judge["inputs"][0]["value_range"] == [0.0, 1.0]
    reader = ExportReader(export)
    assert reader.adapter.for_task("generate").name == "paint" and reader.has_encoder


def test_serve_pyfunc_and_batch_give_the_same_images_and_scores(painter, tmp_path):
    import mlflow.pyfunc
    import pandas as pd
    import pyarrow.parquet as pq
    from PIL import Image

    from gen_keras.exported.pyfunc import save_model

    _, export = painter
    images = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    # pyfunc: one row per seed (the default operation is the generator); scores with noise seed 5
    model = mlflow.pyfunc.load_model(str(save_model(export, tmp_path / "mlmodel")))
    by_pyfunc = np.asarray(model.predict(pd.DataFrame({"seed": SEEDS}))["picture"].tolist(), np.float32)
    scores_pyfunc = np.asarray(model.predict(pd.DataFrame({"x": [i.tolist() for i in images]}),
                                             params={"operation": "judge", "seed": 5})["badness"].tolist())

    server = ServeProcess(["--models", str(export.parent)], tmp_path / "serve.log").start()
    try:
        name = export.name
        status, _, body = request(server.url, "GET", f"/v1/models/{name}")
        described = json.loads(body)
        assert status == 200 and described["operations"] == ["generate", "interpolate", "codes", "predict", "encode"]
        by_server = []
        for seed in SEEDS:  # a seed alone means the same code as the seed of a batch item
            status, _, body = request(server.url, "POST", f"/v1/models/{name}:generate",
                                      {"n": 1, "seed": seed, "format": "json"})
            assert status == 200, body
            by_server.append(json.loads(body)["images"][0])
        status, _, body = request(server.url, "POST", f"/v1/models/{name}:encode", {"images": images.tolist()})
        assert status == 200 and np.asarray(json.loads(body)["where"]).shape == (3, 8)
        page_shows_the_new_kind(server, name, tmp_path)
    finally:
        server.stop()
    np.testing.assert_allclose(np.asarray(by_server, np.float32), by_pyfunc, atol=1e-5)

    np.savez(tmp_path / "in.npz", x=images)
    batch = {}
    for job, extra in (("generate", ["--count", str(len(SEEDS)), "--seed", str(SEEDS[0])]),
                       ("score", ["--input", f"npz:{tmp_path / 'in.npz'}", "--seed", "5"])):
        out = tmp_path / f"batch_{job}"
        done = subprocess.run([GEN_KERAS, "batch", job, "--export", str(export), "--out", str(out),
                               "--chunk-size", "2", *extra, "--", "--direct_num_workers=2"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        batch[job] = pq.read_table(out).to_pandas().sort_values("id", key=lambda c: c.astype(int))
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in batch["generate"]["png"]])
    assert list(batch["generate"]["seed"]) == SEEDS
    assert np.abs(pixels.astype(int) - np.round(by_pyfunc[..., 0] * 255).astype(int)).max() <= 1
    np.testing.assert_allclose(np.asarray(batch["score"]["score"]), scores_pyfunc, rtol=1e-5)
    # the noise is the job's: another noise seed gives other scores
    other = model.predict(pd.DataFrame({"x": [i.tolist() for i in images]}), params={"operation": "judge", "seed": 6})
    assert not np.allclose(np.asarray(other["badness"].tolist()), scores_pyfunc)


def page_shows_the_new_kind(server, name: str, tmp_path: Path) -> None:
    """The page lists the model, shows its generated grid as the server's PNG, and offers the
    panels its operations allow (no reconstruction: the kind exports none)."""
    from PIL import Image
    from test_serving_browser import FLAGS, IMG_PIXELS, _browser_or_skip, _grid_ready

    binary, sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_function("() => document.getElementById('model').options.length > 0", timeout=60_000)
            page.select_option("#model", name)
            page.wait_for_function(_grid_ready(7), timeout=60_000)
            px = page.evaluate(IMG_PIXELS, "grid")
            shown = np.asarray(px["red"], np.uint8).reshape(px["h"], px["w"])
            status, _, png = request(server.url, "POST", f"/v1/models/{name}:generate",
                                     {"n": 16, "seed": 7, "format": "png"})
            assert status == 200 and np.array_equal(shown, np.asarray(Image.open(io.BytesIO(png))))
            assert page.is_hidden("#recon-panel") and page.is_hidden("#mix-panel")
            assert page.is_hidden("#truncation-field")  # no truncation input in this export
            page.screenshot(path=str(tmp_path / "page_new_kind.png"), full_page=True)
        finally:
            browser.close()


def test_a_format_1_export_still_loads_with_roles_read_from_its_names():
    from gen_keras.exported.reader import ExportReader

    reader = ExportReader(ROOT / "tests/fixtures/golden/exports/vae")
    assert reader.spec.format_version == 1
    encode = reader.adapter.for_task("encode")
    assert [i.role for i in encode.inputs] == ["image"] and encode.output_roles == ("code_mean", "code_log_var")
    assert encode.inputs[0].value_range == (0.0, 1.0)
    assert reader.generate(reader.sample_latent(2, 0)).shape == (2, 28, 28, 1)


def test_an_unknown_role_or_task_is_refused_with_the_reason(painter):
    from gen_keras.errors import ArtifactIntegrityError
    from gen_keras.exported.manifest import parse_manifest

    _, export = painter
    manifest = json.loads((export / "manifest.json").read_text())
    parse_manifest(manifest, "ok")
    for path, value, message in ((("paint", "inputs", 0, "role"), "colour", "role 'colour'"),
                                 (("paint", "task"), "dream", "task 'dream'"),
                                 (("judge", "inputs", 1, "role"), "image", "names a role twice"),
                                 (("paint", "inputs", 0, "shape"), [None, 9], "latent_dim is 8")):
        bad = json.loads(json.dumps(manifest))
        target = bad["endpoints"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ArtifactIntegrityError, match=message):
            parse_manifest(bad, "bad")


def test_factor_facts_name_one_factor_per_code_dimension(painter):
    from gen_keras.errors import ArtifactIntegrityError
    from gen_keras.exported.manifest import parse_manifest

    _, export = painter
    manifest = json.loads((export / "manifest.json").read_text())
    dims = [{"dim": j, "factor": "pos_x" if j == 2 else None, "mi": 0.4 if j == 2 else 0.01} for j in range(8)]
    manifest["facts"] = {"factors": {"factors": ["shape", "pos_x"], "dimensions": dims}}
    assert parse_manifest(manifest, "ok").facts["factors"]["dimensions"][2]["factor"] == "pos_x"
    for bad in (dims[:7], [*dims[:7], {"dim": 7, "factor": "colour", "mi": 0.1}]):
        manifest["facts"] = {"factors": {"factors": ["shape", "pos_x"], "dimensions": bad}}
        with pytest.raises(ArtifactIntegrityError, match="facts.factors"):
            parse_manifest(manifest, "bad")
