"""Bad requests against a REAL ``gen-keras serve`` process: each gets its 4xx and a message
naming the problem, the server stays up and still answers a good request; a request over the
timeout is answered 503."""
from __future__ import annotations

import json
import shutil
from http.client import HTTPConnection

import pytest

from serving_fixtures import ServeProcess, request, serving_exports  # noqa: F401

MAX_BODY = 100_000
Z = [0.1] * 16  # one valid latent code (latent_dim 16)


def _z(**change) -> list:
    row = list(Z)
    for i, v in change.items():
        row[int(i[1:])] = v
    return [row]


@pytest.fixture(scope="module")
def servers(serving_exports, tmp_path_factory):
    """The server under test (with a tampered export beside the good ones) and one whose
    timeout (1 ms) no generation can meet; both started at once."""
    root = tmp_path_factory.mktemp("bad_input")
    models = root / "models"
    models.mkdir()
    for name in ("vae", serving_exports.cond_kind):
        (models / name).symlink_to(serving_exports.models_dir / name, target_is_directory=True)
    tampered = models / "tampered"
    shutil.copytree(serving_exports.cond, tampered)
    onnx = tampered / "generate.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    main = ServeProcess(["--models", str(models), "--max-body-bytes", str(MAX_BODY), "--max-n", "64",
                         "--max-steps", "16"], root / "main.log").launch()
    # 100 us, the least --timeout takes, and requests of up to 4,096 images: 4,096 never fit
    # (64 did not always: one-thread onnxruntime computes 64 MLP-decoded images in ~0.2 ms).
    slow = ServeProcess(["--models", str(serving_exports.models_dir), "--timeout", "0.0001", "--max-n", "4096"],
                        root / "slow.log").launch()
    try:
        yield main.wait(), slow.wait()
    finally:
        main.stop()
        slow.stop()


def _cases(cond: str) -> list:
    """(id, method, path, headers, body, status, words the message must contain)."""
    J = {"Content-Type": "application/json"}
    gen, interp, enc, pred = ("/v1/models/vae:generate", "/v1/models/vae:interpolate",
                              "/v1/models/vae:encode", "/v1/models/vae:predict")
    cgen = f"/v1/models/{cond}:generate"
    img = [[[[0.5]] * 28] * 28]
    cases = [
        ("malformed-json", "POST", gen, J, b'{"n": 4,', 400, "malformed JSON"),
        ("empty-body", "POST", gen, J, b"", 400, "body is empty"),
        ("not-utf8", "POST", gen, J, b'{"n": "\xff\xfe"}', 400, "not UTF-8"),
        ("too-deep", "POST", gen, J, b"[" * 100_000, 400, "nested too deeply"),
        ("json-array", "POST", gen, J, b"[1, 2]", 400, "must be a JSON object, got a JSON array"),
        ("text-plain", "POST", gen, {"Content-Type": "text/plain"}, b'{"n": 1}', 415,
         "Content-Type must be application/json; got 'text/plain'"),
        ("no-content-type", "POST", gen, {}, b'{"n": 1}', 415, "no Content-Type header"),
        ("body-too-large", "POST", gen, J, b" " * (MAX_BODY + 1), 413, f"exceeds the limit of {MAX_BODY} bytes"),
        ("n-over-cap", "POST", gen, J, {"n": 65}, 400, "n=65 is over the limit of 64"),
        ("n-zero", "POST", gen, J, {"n": 0}, 400, "n=0 is too small; it must be at least 1"),
        ("n-negative", "POST", gen, J, {"n": -3}, 400, "n=-3 is too small"),
        ("n-string", "POST", gen, J, {"n": "4"}, 400, "n must be an integer, got '4'"),
        ("n-fraction", "POST", gen, J, {"n": 2.5}, 400, "n must be an integer, got 2.5"),
        ("seed-negative", "POST", gen, J, {"seed": -1}, 400, "seed=-1 is too small"),
        ("unknown-field", "POST", gen, J, {"nn": 4}, 400, "unknown field 'nn' for :generate"),
        ("z-and-seed", "POST", gen, J, {"z": [Z], "seed": 1}, 400, "either 'z'"),
        ("z-wrong-length", "POST", gen, J, {"z": [Z[:15]]}, 400, "z[0] has 15 entries; 16 expected"),
        ("z-flat", "POST", gen, J, {"z": Z}, 400, "z[0] is 0.1, where a list of 16 belongs"),
        ("z-empty", "POST", gen, J, {"z": []}, 400, "z is empty"),
        ("z-over-cap", "POST", gen, J, {"z": [Z] * 65}, 400, "z holds 65 latent codes"),
        ("z-nan", "POST", gen, J, b'{"z": [[NaN' + b", 0.1" * 15 + b"]]}", 400, "NaN is not a valid JSON number"),
        ("z-infinity", "POST", gen, J, b'{"z": [[Infinity' + b", 0.1" * 15 + b"]]}", 400,
         "Infinity is not a valid JSON number"),
        ("z-overflow-1e999", "POST", gen, J, b'{"z": [[1e999' + b", 0.1" * 15 + b"]]}", 400,
         "z[0][0] = Infinity is not a finite float32"),
        ("z-overflow-float32", "POST", gen, J, {"z": _z(i3=1e39)}, 400, "z[0][3] = 1e+39 is not a finite float32"),
        ("z-string", "POST", gen, J, {"z": _z(i3="a")}, 400, "z[0][3] is 'a', not a number"),
        ("z-boolean", "POST", gen, J, {"z": _z(i5=True)}, 400, "z[0][5] is true, not a number"),
        ("z-null", "POST", gen, J, {"z": _z(i0=None)}, 400, "z[0][0] is null, not a number"),
        ("labels-unconditional", "POST", gen, J, {"n": 2, "labels": [1, 2]}, 400,
         "model 'vae' is not conditional; it takes no 'labels'"),
        ("label-out-of-range", "POST", cgen, J, {"n": 2, "label": 10}, 400,
         "label[0]=10 is outside the label range 0..9"),
        ("label-negative", "POST", cgen, J, {"n": 2, "labels": [-1, 0]}, 400, "labels[0]=-1 is outside"),
        ("labels-count", "POST", cgen, J, {"n": 3, "labels": [1, 2]}, 400, "labels has 2 labels for 3 images"),
        ("label-fraction", "POST", cgen, J, {"n": 1, "label": 2.5}, 400, "label[0] is 2.5, not an integer"),
        ("format-unknown", "POST", gen, J, {"n": 1, "format": "gif"}, 400, "format='gif' is not one of json, png"),
        ("accept-csv", "POST", gen, {**J, "Accept": "text/csv"}, {"n": 1}, 406, "cannot answer Accept: 'text/csv'"),
        ("unknown-model", "POST", "/v1/models/nope:generate", J, {"n": 1}, 404, "unknown model 'nope'"),
        ("unknown-model-get", "GET", "/v1/models/nope", {}, None, 404, "unknown model 'nope'; served models:"),
        ("unknown-operation", "POST", "/v1/models/vae:explode", J, {"n": 1}, 404, "unknown operation ':explode'"),
        ("refused-model", "POST", "/v1/models/tampered:generate", J, {"n": 1}, 404,
         "refused at load"),
        ("get-an-operation", "GET", gen, {}, None, 405, ":generate needs POST"),
        ("put-an-operation", "PUT", gen, J, {"n": 1}, 405, "method not allowed: PUT"),
        ("unknown-route", "GET", "/v2/models", {}, None, 404, "no route GET /v2/models"),
        ("steps-one", "POST", interp, J, {"seeds": [1, 2], "steps": 1}, 400, "steps=1 is too small; it must be at least 2"),
        ("steps-over-cap", "POST", interp, J, {"seeds": [1, 2], "steps": 17}, 400, "steps=17 is over the limit of 16"),
        ("method-unknown", "POST", interp, J, {"seeds": [1, 2], "method": "cubic"}, 400,
         "method='cubic' is not one of linear, slerp"),
        ("three-seeds", "POST", interp, J, {"seeds": [1, 2, 3]}, 400, "seeds must be a list of two integer seeds"),
        ("seeds-and-z", "POST", interp, J, {"seeds": [1, 2], "z": [Z, Z]}, 400, "exactly one"),
        ("encode-no-images", "POST", enc, J, {}, 400, ":encode needs 'images'"),
        ("encode-wrong-shape", "POST", enc, J, {"images": [[[0.5] * 27] * 28]}, 400,
         "images[0][0] has 27 entries; 28 expected"),
        ("encode-out-of-range", "POST", enc, J, {"images": [[[[2.0]] * 28] * 28]}, 400,
         "images must lie in the model's value range [0, 1]"),
        ("encode-png", "POST", enc, J, {"images": img, "format": "png"}, 400, "format='png' is not one of json"),
        ("predict-no-instances", "POST", pred, J, {}, 400, "give 'instances' (row format) or 'inputs'"),
        ("predict-bad-signature", "POST", pred, J, {"signature_name": "nope", "instances": [Z]}, 400,
         "signature_name='nope' is not served"),
        ("predict-short-instance", "POST", pred, J, {"instances": [[0.1, 0.2, 0.3]]}, 400,
         "instances[0] has 3 entries; 16 expected"),
    ]
    if cond == "cgan":
        cases.append(("gan-has-no-encoder", "POST", f"/v1/models/{cond}:encode", J, {"images": img}, 404,
                      f"model '{cond}' (cgan) has no encode endpoint"))
    else:
        cases.append(("cvae-encode-needs-labels", "POST", f"/v1/models/{cond}:encode", J, {"images": img}, 400,
                      f"model '{cond}' is conditional: give 'labels'"))
    return cases


CASE_IDS = [c[0] for c in _cases("cgan")[:-1]] + ["conditional-encode"]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_bad_request_is_refused_with_a_message(servers, serving_exports, index):
    server, _ = servers
    name, method, path, headers, body, status, words = _cases(serving_exports.cond_kind)[index]
    got, response_headers, raw = request(server.url, method, path, body, headers)
    assert got == status, (name, got, raw[:300])
    assert response_headers["content-type"] == "application/json"
    message = json.loads(raw)["error"]
    assert words in message, (name, message)


def test_chunked_body_over_the_limit_is_refused(servers):
    server, _ = servers
    conn = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        chunks = iter([b'{"z": [' + b" " * 40_000] * 3)  # 120 kB with no Content-Length
        conn.request("POST", "/v1/models/vae:generate", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        assert r.status == 413 and f"exceeds the limit of {MAX_BODY} bytes" in json.loads(r.read())["error"]
    finally:
        conn.close()


def test_server_survives_and_still_answers(servers, serving_exports):
    server, _ = servers
    assert request(server.url, "GET", "/healthz")[0] == 200
    status, _, body = request(server.url, "GET", "/readyz")
    ready = json.loads(body)
    assert status == 200 and "sha256" in ready["refused"]["tampered"]
    assert sorted(ready["models"]) == sorted(["vae", serving_exports.cond_kind])
    status, headers, png = request(server.url, "POST", "/v1/models/vae:generate", {"n": 4, "seed": 1},
                                   {"Accept": "image/png"})
    assert status == 200 and png.startswith(b"\x89PNG") and headers["x-seed"] == "1"
    text = request(server.url, "GET", "/metrics")[2].decode()
    errors = [line for line in text.splitlines() if line.startswith("gen_keras_serving_request_errors_total")
              and 'endpoint="readyz"' not in line]  # readyz is 503 while the models load
    assert 'code="4' in "".join(errors) and not [line for line in errors if 'code="5' in line], errors


def test_a_request_over_the_timeout_is_answered_503(servers):
    _, slow = servers
    status, headers, body = request(slow.url, "POST", "/v1/models/vae:generate", {"n": 4096, "seed": 0})
    assert status == 503 and headers.get("retry-after") == "2"
    assert "longer than the 0.0001 s timeout" in json.loads(body)["error"]
    assert request(slow.url, "GET", "/healthz")[0] == 200  # not hung: the server goes on
    assert request(slow.url, "GET", "/v1/models/vae")[0] == 200
