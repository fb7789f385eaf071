"""What an outside probe got through the server (issue 27), each with a test that failed before its
fix: ONNX external data, a manifest that disagrees with its graphs, slow and idle connections,
deeply nested JSON, duplicate keys, PNGs that lie, an out-of-range truncation, a restart on the
same port, and unclear refusals."""
from __future__ import annotations

import io
import json
import re
import shutil
import socket
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.exported.manifest import sha256_file
from gen_keras.exported.reader import ExportReader
from serving.app import create_app
from serving.registry import load_store

from conftest import ROOT
from serving_fixtures import ServeProcess, request, style_export, translator_exports


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Tiny untrained exports, written by the real exporter: a VAE, a style-based generator and
    the two translators."""
    from gen_keras.config_loader import load_config
    from gen_keras.export import export_model
    from gen_keras.models import build_model

    root = tmp_path_factory.mktemp("probe_exports")
    vae = build_model(load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml",
                                  ["model.latent_dim=4", "model.filters=4", "model.hidden=16"]).model)
    export_model(vae, root / "vae", name="vae")
    style_export(root / "style", tmp_path_factory)
    translator_exports(root, tmp_path_factory)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rehash(folder: Path, name: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = sha256_file(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# -- (2) ONNX external data ---------------------------------------------------------------------------
def test_an_onnx_file_naming_external_data_is_refused_by_every_reader(exports, tmp_path, monkeypatch):
    import onnx
    from onnx.external_data_helper import set_external_data

    bad = _copy(exports / "vae", tmp_path / "bad")
    model = onnx.load(str(bad / "generate.onnx"))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    secret = b"S" * len(tensor.raw_data)
    set_external_data(tensor, location="secret.bin")  # relative: the reader's working folder
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    (bad / "generate.onnx").write_bytes(model.SerializeToString())
    _rehash(bad, "generate.onnx")
    monkeypatch.chdir(tmp_path)
    Path("secret.bin").write_bytes(secret)  # what the probe read back as pixels

    with pytest.raises(ArtifactIntegrityError, match="external data .*'secret.bin'"):
        ExportReader(bad)  # the latent tools, evaluation, anomaly scores, batch workers
    store = load_store(tmp_path / "bad")  # serve
    assert "external data" in store.refused["bad"]
    from gen_keras.exported.pyfunc import _load_pyfunc  # MLflow's loader of the pyfunc model

    with pytest.raises(ArtifactIntegrityError, match="external data"):
        _load_pyfunc(str(bad))


# -- (7) a manifest that disagrees with its graphs -------------------------------------------------------
@pytest.mark.parametrize("change, reason", [
    (lambda m: m.update(latent_dim=2_000_000), "latent_dim is 2000000"),
    (lambda m: m.update(image_shape=[64, 64, 3]), "image_shape is \\[64, 64, 3\\]"),
    (lambda m: m["endpoints"]["encode"]["inputs"][0].update(shape=[None, 32, 32, 1]), "disagrees with the manifest"),
    (lambda m: m["endpoints"]["generate"]["output_specs"][0].update(shape=[None, 14, 14, 1]), "image_shape"),
])
def test_a_manifest_that_disagrees_with_its_graphs_is_refused_at_load(exports, tmp_path, change, reason):
    bad = _copy(exports / "vae", tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    change(manifest)
    (bad / "manifest.json").write_text(json.dumps(manifest))
    for backend in ("onnx", "tf"):
        store = load_store(tmp_path / "bad", backend=backend)
        assert not store.models, backend
        assert re.search(reason, store.refused["bad"]), store.refused["bad"]


def test_a_graph_input_of_another_size_is_named(exports, tmp_path):
    bad = _copy(exports / "vae", tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["endpoints"]["reconstruct"]["inputs"][0]["shape"] = [None, 28, 28, 3]
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="input 'x' has shape .* in the graph, \\[None, 28, 28, 3\\]"):
        ExportReader(bad)


# -- (6, 15) requests: nesting, duplicate keys, PNGs, truncation ------------------------------------------
@pytest.fixture(scope="module")
def client(exports):
    store = load_store(exports)
    assert not store.refused, store.refused
    with TestClient(create_app(store)) as c:
        yield c


DEEP = "[" * 957 + "]" * 957


@pytest.mark.parametrize("model, op, field", [
    ("vae", "generate", "n"), ("style", "generate", "truncation"), ("style", "mix", "seeds"),
    ("vae", "interpolate", "method"), ("vae", "generate", "format"), ("cycle", "translate", "direction"),
    ("vae", "predict", "signature_name")])
def test_json_nested_957_deep_is_a_400_naming_the_field(client, model, op, field):
    r = client.post(f"/v1/models/{model}:{op}", content=f'{{"{field}": {DEEP}}}'.encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]


def test_a_field_given_twice_is_refused(client):
    r = client.post("/v1/models/vae:generate", content=b'{"n": 100000, "n": 1}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "'n' more than once" in r.json()["error"]


def test_predict_checks_a_truncation_against_its_declared_range(client):
    r = client.post("/v1/models/style:predict", json={"signature_name": "generate_truncated",
                                                      "inputs": {"z": [[0.0] * 16], "psi": [1e30]}})
    assert r.status_code == 400 and "[0, 1]" in r.json()["error"], r.text
    ok = client.post("/v1/models/style:predict", json={"signature_name": "generate_truncated",
                                                       "inputs": {"z": [[0.0] * 16], "psi": [0.5]}})
    assert ok.status_code == 200


def _png(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_pngs_that_lie_are_refused(client):
    def upload(raw):
        return client.post("/v1/models/upscaler:translate", content=raw, headers={"content-type": "image/png"})

    good = _png(np.zeros((7, 7), np.uint8))
    assert upload(good).status_code == 200
    bad_crc = bytearray(good)
    bad_crc[-20] ^= 1  # a byte of the image data: its chunk's CRC no longer matches
    rows = b"".join(b"\x00" + b"\x00" * (7 * 6) for _ in range(7))
    rgb16 = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 7, 16, 2, 0, 0, 0))
             + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))
    frames = [Image.fromarray(np.full((7, 7), v, np.uint8)) for v in (0, 255)]
    apng = io.BytesIO()
    frames[0].save(apng, format="PNG", save_all=True, append_images=frames[1:])
    for raw, reason in ((bytes(bad_crc), "corrupt"), (rgb16, "16-bit or wider"), (apng.getvalue(), "animated")):
        r = upload(raw)
        assert r.status_code == 400 and reason in r.json()["error"], (reason, r.text)


# -- (16) clear refusals -----------------------------------------------------------------------------------
def test_a_manifest_field_of_the_wrong_type_is_named(exports, tmp_path):
    bad = _copy(exports / "vae", tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["endpoints"]["encode"]["inputs"] = ["x"]
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError) as info:
        ExportReader(bad)
    assert "operation 'encode'" in str(info.value) and "string indices" not in str(info.value)


# -- (5, 10, 11, 16) connections, against a real server -------------------------------------------------
@pytest.fixture(scope="module")
def server(exports, tmp_path_factory):
    proc = ServeProcess(["--models", str(exports), "--header-timeout", "1.5", "--body-timeout", "30",
                         "--max-in-flight", "8"], tmp_path_factory.mktemp("probe_serve") / "serve.log").start()
    yield proc
    proc.stop()


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def _answer(s: socket.socket) -> bytes:
    s.settimeout(10)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_slow_bodies_do_not_take_the_slots_good_requests_need(server):
    """More clients trickling their bodies than --max-in-flight: every good request still works."""
    slow = []
    for _ in range(24):
        s = _connect(server)
        s.sendall(b"POST /v1/models/vae:generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40\r\n\r\n{")
        slow.append(s)
    try:
        time.sleep(0.3)
        statuses = [request(server.url, "POST", "/v1/models/vae:generate", {"n": 2, "seed": k})[0] for k in range(12)]
        assert statuses == [200] * 12
    finally:
        for s in slow:
            s.close()


def test_connections_that_never_finish_their_headers_are_closed(server):
    idle = [_connect(server) for _ in range(10)]
    partial = _connect(server)
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    started = time.monotonic()
    answers = [_answer(s) for s in [*idle, partial]]
    assert time.monotonic() - started < 8
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408") and b'"error"' in answer, answer[:200]
    for s in [*idle, partial]:
        s.close()


def test_garbage_is_answered_with_a_json_error(server):
    s = _connect(server)
    s.sendall(b"HELLO THERE\r\n\r\n")
    answer = _answer(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"application/json" in answer
    assert b"malformed HTTP request" in answer and b"Invalid HTTP request received" not in answer


def test_connections_per_client_address_are_capped(exports, tmp_path):
    proc = ServeProcess(["--models", str(exports), "--max-connections-per-client", "3"], tmp_path / "s.log").start()
    try:
        held = [_connect(proc) for _ in range(3)]
        time.sleep(0.2)
        extra = _connect(proc)
        answer = _answer(extra)
        assert answer.startswith(b"HTTP/1.1 503") and b"--max-connections-per-client" in answer
        for s in [*held, extra]:
            s.close()
        time.sleep(0.2)
        assert request(proc.url, "GET", "/healthz")[0] == 200  # freed slots take new connections
    finally:
        proc.stop()


def test_serve_restarts_on_the_same_port_at_once(exports, tmp_path):
    first = ServeProcess(["--models", str(exports / "vae")], tmp_path / "a.log").start()
    port = first.port
    # The server closes this connection itself, so its side of it lingers in TIME_WAIT.
    assert request(first.url, "GET", "/healthz", headers={"Connection": "close"})[0] == 200
    first.stop()
    second = ServeProcess(["--models", str(exports / "vae")], tmp_path / "b.log")
    second.port = port
    second.args[second.args.index("--port") + 1] = str(port)
    try:
        second.start(timeout=60)
        assert request(second.url, "GET", "/healthz")[0] == 200
    finally:
        second.stop()
