"""The serving API on real exports (short real trainings): outputs against onnxruntime run
directly on the export, both backends, the TF Serving format, metrics, refusal of altered
exports, and models from a real MLflow registry by alias."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gen_keras.errors import ArtifactIntegrityError, ModelSourceError
from gen_keras.exported.latents import lerp, slerp
from gen_keras.exported.manifest import verify_export
from gen_keras.exported.sources import download_registered, parse_model_uri
from serving.app import ServeSettings, create_app
from serving.registry import load_store
from serving.validation import Limits

from serving_fixtures import ROOT, ServeProcess, request, serving_exports  # noqa: F401


def reference(export_dir, endpoint: str, **feeds) -> list[np.ndarray]:
    """onnxruntime on the export's own file: the ground truth the server must reproduce."""
    session = ort.InferenceSession(str(export_dir / f"{endpoint}.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def seeded(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype("float32")


@pytest.fixture(scope="module")
def client(serving_exports):
    store = load_store(serving_exports.models_dir, backend="onnx")
    assert sorted(store.models) == sorted(["vae", serving_exports.cond_kind]) and not store.refused
    with TestClient(create_app(store, ServeSettings(Limits(max_n=64, max_steps=32)))) as c:
        yield c


@pytest.fixture(scope="module")
def tf_client(serving_exports):
    store = load_store(serving_exports.models_dir, backend="tf")
    with TestClient(create_app(store)) as c:
        yield c


def images_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["images"], dtype="float32")


# -- metadata ---------------------------------------------------------------------------------------
def test_model_metadata_comes_from_the_manifest(client, serving_exports):
    manifest = json.loads((serving_exports.vae / "manifest.json").read_text())
    listed = client.get("/v1/models").json()
    assert [m["name"] for m in listed["models"]] == sorted(["vae", serving_exports.cond_kind])
    meta = client.get("/v1/models/vae").json()
    for key in ("kind", "latent_dim", "image_shape", "value_range", "num_classes", "conditional"):
        assert meta[key] == manifest[key], key
    assert meta["operations"] == ["generate", "interpolate", "codes", "predict", "encode", "reconstruct"]
    assert meta["endpoints"]["encode"]["outputs"] == ["mean", "log_var"]
    assert meta["source_run_id"] == manifest["source_run_id"] and meta["backend"] == "onnx"
    cond = client.get(f"/v1/models/{serving_exports.cond_kind}").json()
    assert cond["conditional"] is True and cond["num_classes"] == 10
    if serving_exports.cond_kind == "cgan":
        assert cond["operations"] == ["generate", "interpolate", "codes", "predict"]  # a GAN has no encoder
        assert cond["value_range"] == [-1.0, 1.0]


# -- generate -----------------------------------------------------------------------------------------
def test_generate_reproduces_onnxruntime_on_the_seeded_codes(client, serving_exports):
    r = client.post("/v1/models/vae:generate", json={"n": 5, "seed": 7, "format": "json"})
    got = images_of(r)
    want = reference(serving_exports.vae, "generate", z=seeded(5, 16, 7))[0]
    assert got.shape == (5, 28, 28, 1) and r.json()["seed"] == 7
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(images_of(client.post("/v1/models/vae:generate", json={"n": 5, "seed": 8})), got)
    # explicit codes give the same images as the seed that drew them
    z = seeded(5, 16, 7).astype("float64").tolist()
    np.testing.assert_allclose(images_of(client.post("/v1/models/vae:generate", json={"z": z})), got, atol=1e-5)


def test_generate_png_grid_holds_the_images(client, serving_exports):
    r = client.post("/v1/models/vae:generate", json={"n": 4, "seed": 3}, headers={"Accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-seed"] == "3" and r.headers["x-grid"] == "2x2"
    grid = np.asarray(Image.open(io.BytesIO(r.content)))
    assert grid.shape == (2 + 2 * 30, 2 + 2 * 30)  # 2 px padding around and between 28 px images
    want = reference(serving_exports.vae, "generate", z=seeded(4, 16, 3))[0]
    for i, (top, left) in enumerate([(2, 2), (2, 32), (32, 2), (32, 32)]):
        expected = np.round(np.clip(want[i, ..., 0], 0, 1) * 255)
        assert np.abs(grid[top:top + 28, left:left + 28].astype(int) - expected).max() <= 1
    assert grid[0].max() == 0 and grid[:, 30:32].max() == 0  # the padding is black
    # without a seed the server picks one and reports it; asking again with it reproduces the grid
    r1 = client.post("/v1/models/vae:generate", json={"n": 4, "format": "png"})
    r2 = client.post("/v1/models/vae:generate", json={"n": 4, "seed": int(r1.headers["x-seed"]), "format": "png"})
    assert r1.content == r2.content


def test_conditional_generation_uses_the_labels(client, serving_exports):
    name = serving_exports.cond_kind
    z = seeded(4, 16, 11).astype("float64").tolist()
    r = client.post(f"/v1/models/{name}:generate", json={"z": z, "labels": [1, 1, 7, 7]})
    got = images_of(r)
    want = reference(serving_exports.cond, "generate", z=seeded(4, 16, 11),
                     label=np.array([1, 1, 7, 7], dtype="int32"))[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    one = images_of(client.post(f"/v1/models/{name}:generate", json={"z": z, "label": 1}))
    np.testing.assert_allclose(one[:2], got[:2], atol=1e-6)
    assert np.abs(one[2:] - got[2:]).max() > 1e-3  # class 7 differs from class 1 for the same z
    default = client.post(f"/v1/models/{name}:generate", json={"n": 12, "seed": 0}).json()
    assert default["labels"] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_tensorflow_backend_matches_onnxruntime(client, tf_client, serving_exports):
    assert tf_client.get("/v1/models/vae").json()["backend"] == "tf"
    body = {"n": 8, "seed": 5}
    np.testing.assert_allclose(images_of(tf_client.post("/v1/models/vae:generate", json=body)),
                               images_of(client.post("/v1/models/vae:generate", json=body)), atol=1e-4)
    name = serving_exports.cond_kind
    body = {"n": 4, "seed": 5, "labels": [9, 8, 7, 6]}
    np.testing.assert_allclose(images_of(tf_client.post(f"/v1/models/{name}:generate", json=body)),
                               images_of(client.post(f"/v1/models/{name}:generate", json=body)), atol=1e-4)
    enc = {"images": serving_exports.test_images[:3].tolist()}
    a, b = (c.post("/v1/models/vae:encode", json=enc).json() for c in (tf_client, client))
    np.testing.assert_allclose(a["mean"], b["mean"], atol=1e-4)


# -- encode, reconstruct, interpolate ----------------------------------------------------------------
def test_encode_and_reconstruct_real_digits(client, serving_exports):
    x = serving_exports.test_images[:4]
    mean, log_var = reference(serving_exports.vae, "encode", x=x)
    r = client.post("/v1/models/vae:encode", json={"images": x.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(r.json()["log_var"], log_var, atol=1e-5)
    # grey images may leave out the channel axis
    r2 = client.post("/v1/models/vae:encode", json={"images": x[..., 0].tolist()})
    np.testing.assert_allclose(r2.json()["mean"], mean, atol=1e-5)
    rec = images_of(client.post("/v1/models/vae:reconstruct", json={"images": x.tolist()}))
    np.testing.assert_allclose(rec, reference(serving_exports.vae, "reconstruct", x=x)[0], atol=1e-5)
    png = client.post("/v1/models/vae:reconstruct", json={"images": x.tolist(), "format": "png"})
    assert Image.open(io.BytesIO(png.content)).size == (62, 62)
    if serving_exports.cond_kind == "cvae":
        y = serving_exports.test_labels[:4].astype("int32")
        want = reference(serving_exports.cond, "encode", x=x, label=y)[0]
        r = client.post("/v1/models/cvae:encode", json={"images": x.tolist(), "labels": y.tolist()})
        np.testing.assert_allclose(r.json()["mean"], want, atol=1e-5)


def test_interpolation_paths(client, serving_exports):
    za, zb = seeded(1, 16, 1)[0], seeded(1, 16, 2)[0]
    r = client.post("/v1/models/vae:interpolate", json={"seeds": [1, 2], "steps": 3, "method": "linear"})
    frames = images_of(r)
    want = reference(serving_exports.vae, "generate", z=np.stack([za, (za + zb) / 2, zb]).astype("float32"))[0]
    np.testing.assert_allclose(frames, want, atol=1e-5)
    png = client.post("/v1/models/vae:interpolate", json={"seeds": [1, 2], "steps": 5, "format": "png"})
    assert png.headers["x-grid"] == "1x5" and Image.open(io.BytesIO(png.content)).size == (2 + 5 * 30, 32)
    slerp = images_of(client.post("/v1/models/vae:interpolate",
                                  json={"z": [za.tolist(), zb.tolist()], "steps": 4, "method": "slerp"}))
    np.testing.assert_allclose(slerp[[0, -1]], want[[0, -1]], atol=1e-5)


def test_slerp_and_linear_by_hand():
    # Two orthogonal unit vectors: the slerp midpoint is (cos 45°, sin 45°) and every point keeps norm 1;
    # the linear midpoint is (0.5, 0.5) with norm 0.707.
    path = slerp(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)
    np.testing.assert_allclose(path[1], [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-7)
    path = slerp(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 7)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(path[2], [math.cos(math.pi / 6), math.sin(math.pi / 6)], atol=1e-7)
    np.testing.assert_allclose(lerp(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)[1], [0.5, 0.5])
    # antiparallel codes have no unique great circle: the path turns through a fixed orthogonal
    # direction, keeping the norm (the latent tools and the server share this path)
    np.testing.assert_allclose(slerp(np.array([1.0, 0.0]), np.array([-1.0, 0.0]), 3)[1], [0.0, 1.0], atol=1e-7)


# -- TensorFlow Serving's REST format ----------------------------------------------------------------
def test_predict_speaks_tensorflow_serving_rest(client, serving_exports):
    z = seeded(3, 16, 4)
    want = reference(serving_exports.vae, "generate", z=z)[0]
    rows = client.post("/v1/models/vae:predict", json={"instances": z.tolist()})
    assert rows.status_code == 200, rows.text
    np.testing.assert_allclose(rows.json()["predictions"], want, atol=1e-5)
    cols = client.post("/v1/models/vae:predict", json={"inputs": {"z": z.tolist()}, "signature_name": "decode"})
    np.testing.assert_allclose(cols.json()["outputs"], want, atol=1e-5)
    x = serving_exports.test_images[:2]
    enc = client.post("/v1/models/vae:predict", json={"signature_name": "encode", "instances": x.tolist()}).json()
    mean, log_var = reference(serving_exports.vae, "encode", x=x)
    assert sorted(enc["predictions"][0]) == ["log_var", "mean"]  # multi-output: one object per row
    np.testing.assert_allclose([p["mean"] for p in enc["predictions"]], mean, atol=1e-5)
    np.testing.assert_allclose([p["log_var"] for p in enc["predictions"]], log_var, atol=1e-5)
    name = serving_exports.cond_kind
    rows = client.post(f"/v1/models/{name}:predict",
                       json={"instances": [{"z": z[i].tolist(), "label": i + 2} for i in range(3)]})
    want = reference(serving_exports.cond, "generate", z=z, label=np.array([2, 3, 4], dtype="int32"))[0]
    np.testing.assert_allclose(rows.json()["predictions"], want, atol=1e-5)


# -- metrics ------------------------------------------------------------------------------------------
def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_count_requests_errors_and_latency(serving_exports):
    store = load_store(serving_exports.models_dir, backend="onnx")
    with TestClient(create_app(store)) as c:
        for seed in range(3):
            assert c.post("/v1/models/vae:generate", json={"n": 2, "seed": seed}).status_code == 200
        assert c.post("/v1/models/vae:generate", json={"n": 0}).status_code == 400
        assert c.post("/v1/models/nope:generate", json={"n": 1}).status_code == 404
        r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = _samples(r.text)
    p = "gen_keras_serving_"
    assert m[p + 'requests_total{model="vae",endpoint="generate",code="200"}'] == 3
    assert m[p + 'requests_total{model="vae",endpoint="generate",code="400"}'] == 1
    assert m[p + 'request_errors_total{model="vae",endpoint="generate",code="400"}'] == 1
    assert m[p + 'request_errors_total{model="_unknown_",endpoint="generate",code="404"}'] == 1
    assert not any('code="200"' in k for k in m if k.startswith(p + "request_errors_total"))
    buckets = [v for k, v in m.items() if k.startswith(p + 'request_duration_seconds_bucket{model="vae",endpoint="generate"')]
    assert buckets == sorted(buckets) and buckets[-1] == 4  # cumulative, +Inf = every request
    assert m[p + 'request_duration_seconds_count{model="vae",endpoint="generate"}'] == 4
    assert 0 < m[p + 'request_duration_seconds_sum{model="vae",endpoint="generate"}'] < 60
    assert m[p + "models_loaded"] == 2 and m[p + "models_refused"] == 0


# -- refusing altered exports -------------------------------------------------------------------------
def test_altered_exports_are_refused_and_the_rest_served(serving_exports, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "good").symlink_to(serving_exports.vae, target_is_directory=True)
    bad = models / "bad"
    shutil.copytree(serving_exports.vae, bad)
    onnx = bad / "generate.onnx"
    original = onnx.read_bytes()
    onnx.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ArtifactIntegrityError, match="generate.onnx does not match its sha256"):
        verify_export(bad)
    store = load_store(models)
    assert sorted(store.models) == ["good"] and "sha256" in store.refused["bad"]
    with TestClient(create_app(store)) as c:
        r = c.post("/v1/models/bad:generate", json={"n": 1})
        assert r.status_code == 404 and "refused at load" in r.json()["error"] and "sha256" in r.json()["error"]
        ready = c.get("/readyz").json()
        assert ready["models"] == ["good"] and "bad" in ready["refused"]
        assert c.post("/v1/models/good:generate", json={"n": 1}).status_code == 200
    onnx.write_bytes(original)
    verify_export(bad)  # restored: accepted again
    # a file the exporter did not write, a missing file, a path outside the folder
    stray = bad / "saved_model" / "variables" / "extra.data"
    stray.write_bytes(b"x")
    with pytest.raises(ArtifactIntegrityError, match="extra.data is not listed in the manifest"):
        verify_export(bad)
    stray.unlink()
    (bad / "encode.onnx").rename(bad / "encode.moved")
    with pytest.raises(ArtifactIntegrityError, match="encode.onnx is listed in the manifest but missing"):
        verify_export(bad)
    (bad / "encode.moved").rename(bad / "encode.onnx")
    manifest = json.loads((bad / "manifest.json").read_text())
    original_manifest = (bad / "manifest.json").read_text()
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="outside the folder"):
        verify_export(bad)
    manifest = json.loads(original_manifest)
    manifest["latent_dim"] = True  # a boolean is not a latent size
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="manifest field 'latent_dim'=True is not a positive integer"):
        verify_export(bad)


def test_onnx_serving_never_imports_tensorflow(serving_exports):
    """The serving container has no TensorFlow: the CLI and the onnx path must not import it."""
    code = (
        "import sys; import gen_keras.cli as cli\n"
        "try:\n    cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "from serving.registry import load_store\n"
        f"store = load_store({str(serving_exports.models_dir)!r})\n"
        "import numpy as np\n"
        "store.models['vae'].reader.run_feeds('generate', {'z': np.zeros((1, 16), 'float32')})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'tf2onnx'})\n"
        "assert not heavy and not any(m.startswith('gen_keras.models') for m in sys.modules), heavy\n"
        "print('ok', sorted(store.models))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# -- the MLflow registry ------------------------------------------------------------------------------
def test_model_uri_parsing():
    assert parse_model_uri("models:/digits@champion") == ("digits", "champion", None)
    assert parse_model_uri("models:/digits/3") == ("digits", None, "3")
    for bad in ("runs:/abc/export", "models:/digits", "models:/@champion", "models:/a/b/c"):
        with pytest.raises(ModelSourceError, match="models:/NAME@ALIAS"):
            parse_model_uri(bad)


def test_serves_a_registered_model_by_alias(mlflow_server, serving_exports, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    exp = client.create_experiment(f"serving-{os.getpid()}-{tmp_path.name}")
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(serving_exports.vae), "export")  # as the trainer logs it
    client.set_terminated(run.info.run_id)
    name = f"digits-{tmp_path.name[-12:]}".replace("_", "-")
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/export", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", mv.version)

    with pytest.raises(ModelSourceError, match="cannot resolve"):
        download_registered(f"models:/{name}@nobody", mlflow_server.uri, tmp_path / "cache")

    server = ServeProcess(["--model-uri", f"models:/{name}@champion", "--tracking-uri", mlflow_server.uri,
                           "--cache-dir", str(tmp_path / "cache")], tmp_path / "serve.log").start()
    try:
        status, _, body = request(server.url, "GET", f"/v1/models/{name}")
        meta = json.loads(body)
        assert status == 200 and f"models:/{name}@champion (version {mv.version}" in meta["source"]
        status, _, body = request(server.url, "POST", f"/v1/models/{name}:generate", {"n": 3, "seed": 9})
        want = reference(serving_exports.vae, "generate", z=seeded(3, 16, 9))[0]
        np.testing.assert_allclose(json.loads(body)["images"], want, atol=1e-5)
    finally:
        server.stop()


def test_sighup_serves_a_republished_model_and_keeps_it_through_a_bad_publish(serving_exports, tmp_path):
    import signal
    import time

    def wait_for(check, what):
        deadline = time.time() + 60
        while time.time() < deadline:
            if check():
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}")

    def publish(target):  # as retraining publishes: a new symlink renamed over the served one
        new = models / ".digits.new"
        new.symlink_to(target, target_is_directory=True)
        os.replace(new, models / "digits")
        os.kill(server.proc.pid, signal.SIGHUP)

    def described():
        return json.loads(request(server.url, "GET", "/v1/models/digits")[2])

    models = tmp_path / "models"
    models.mkdir()
    (models / "digits").symlink_to(serving_exports.vae, target_is_directory=True)
    bad = tmp_path / "bad"
    shutil.copytree(serving_exports.cond, bad)
    (bad / "generate.onnx").write_bytes(b"not the exported file")
    server = ServeProcess(["--models", str(models)], tmp_path / "serve.log").start()
    try:
        assert described()["kind"] == "vae"
        publish(serving_exports.cond)
        wait_for(lambda: described()["kind"] == serving_exports.cond_kind, "the new version")
        publish(bad)
        wait_for(lambda: "digits" in json.loads(request(server.url, "GET", "/readyz")[2])["refused"], "the refusal")
        assert described()["kind"] == serving_exports.cond_kind  # the last good version still serves
        assert request(server.url, "POST", "/v1/models/digits:generate", {"n": 2, "seed": 1})[0] == 200
    finally:
        server.stop()
