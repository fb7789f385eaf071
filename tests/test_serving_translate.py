"""Serving image-to-image models against a real ``gen-keras serve`` process: two tiny untrained
translators (``upscaler``: sr_l1, 7x7x1 → 28x28x1; ``cycle``: cyclegan, 28x28x3 both ways) beside
the golden DCGAN. ``:translate`` answers exactly the Keras networks' outputs for JSON images and
for one PNG uploaded as the body, both directions of CycleGAN, TensorFlow Serving's ``:predict``
on the translation signatures; the model description says each direction's shapes and ranges;
every bad input — wrong size, channels, range, a file that is not a PNG, a truncated PNG, a
decompression bomb, 16-bit or transparent pixels, a wrong direction, an operation the model does
not have — is a 4xx naming what is wrong, and the server stays up; the OpenAPI document's
translate examples are answered."""
from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving_fixtures import ServeProcess, request, translator_exports

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "exports"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("translators")
    models = translator_exports(root, tmp_path_factory)
    shutil.copytree(GOLDEN / "dcgan", root / "dcgan")
    proc = ServeProcess(["--models", str(root), "--max-n", "8"], root.parent / "translate_serve.log").start()
    yield proc, models
    proc.stop()


def post(server, target: str, body, headers=None, query: str = ""):
    return request(server.url, "POST", f"/v1/models/{target}{query}", body, headers)


def answer(status_headers_body) -> dict:
    status, _, raw = status_headers_body
    assert status == 200, raw
    return json.loads(raw)


def png_bytes(pixels: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **save)
    return buf.getvalue()


def network(models, name: str, operation: str):
    return models[name].translators()[operation]


def test_models_describe_their_translations(served):
    server, _ = served
    _, _, raw = request(server.url, "GET", "/v1/models/upscaler")
    up = json.loads(raw)
    assert up["operations"] == ["translate", "predict"] and up["latent_dim"] == 0
    (t,) = up["translations"]
    assert (t["direction"], t["operation"]) == (None, "translate")
    assert t["input"]["shape"] == [None, 7, 7, 1] and t["input"]["value_range"] == [-1.0, 1.0]
    assert t["output"]["shape"] == [None, 28, 28, 1] and t["output"]["value_range"] == [-1.0, 1.0]
    _, _, raw = request(server.url, "GET", "/v1/models/cycle")
    assert [(t["direction"], t["operation"]) for t in json.loads(raw)["translations"]] == [
        ("a2b", "translate_a2b"), ("b2a", "translate_b2a")]
    _, _, raw = request(server.url, "GET", "/v1/models/dcgan")
    assert "translations" not in json.loads(raw)


def test_json_images_are_translated_by_the_exported_network(served):
    server, models = served
    x = np.random.default_rng(0).uniform(-1, 1, (3, 7, 7, 1)).astype(np.float32)
    got = answer(post(server, "upscaler:translate", {"images": x.tolist()}))
    assert (got["n"], got["operation"], got["shape"], got["value_range"]) == (3, "translate", [3, 28, 28, 1], [-1.0, 1.0])
    want = np.asarray(network(models, "upscaler", "translate")(x))
    np.testing.assert_allclose(np.asarray(got["images"]), want, atol=2e-5)
    grey = answer(post(server, "upscaler:translate", {"images": x[..., 0].tolist()}))  # channel axis left out
    np.testing.assert_allclose(np.asarray(grey["images"]), want, atol=2e-5)

    colour = np.random.default_rng(1).uniform(-1, 1, (2, 28, 28, 3)).astype(np.float32)
    for direction in ("a2b", "b2a"):
        body = {"images": colour.tolist(), **({"direction": direction} if direction == "b2a" else {})}
        got = answer(post(server, "cycle:translate", body))
        assert got["direction"] == direction and got["operation"] == f"translate_{direction}"
        want = np.asarray(network(models, "cycle", f"translate_{direction}")(colour))
        np.testing.assert_allclose(np.asarray(got["images"]), want, atol=2e-5)


def test_a_png_upload_is_translated_and_answered_as_png(served):
    server, models = served
    pixels = np.random.default_rng(2).integers(0, 256, (7, 7), dtype=np.uint8)
    x = (pixels.astype(np.float32) / 255.0 * 2.0 - 1.0)[None, ..., None]
    want = np.asarray(network(models, "upscaler", "translate")(x))
    got = answer(post(server, "upscaler:translate", png_bytes(pixels), {"Content-Type": "image/png"}))
    np.testing.assert_allclose(np.asarray(got["images"]), want, atol=2e-5)
    status, headers, raw = post(server, "upscaler:translate", png_bytes(pixels), {"Content-Type": "image/png"},
                                "?format=png")
    assert status == 200 and headers["content-type"] == "image/png" and headers["x-grid"] == "1x1"
    shown = np.asarray(Image.open(io.BytesIO(raw)))  # one image: no grid border
    expected = np.round((np.clip(want[0, ..., 0], -1, 1) + 1) / 2 * 255)
    assert np.abs(shown.astype(int) - expected).max() <= 1  # onnxruntime vs Keras: a level at a .5 boundary
    # a grey PNG feeds a colour model (its channel repeated); direction in the query string
    digit = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    got = answer(post(server, "cycle:translate", png_bytes(digit), {"Content-Type": "image/png"}, "?direction=b2a"))
    x = np.repeat((digit.astype(np.float32) / 255.0 * 2.0 - 1.0)[None, ..., None], 3, axis=-1)
    np.testing.assert_allclose(np.asarray(got["images"]),
                               np.asarray(network(models, "cycle", "translate_b2a")(x)), atol=2e-5)
    assert got["direction"] == "b2a"


def test_tensorflow_serving_predict_runs_the_translation(served):
    server, models = served
    x = np.random.default_rng(4).uniform(-1, 1, (2, 7, 7, 1)).astype(np.float32)
    got = answer(post(server, "upscaler:predict", {"instances": x.tolist()}))  # serving_default = translate
    np.testing.assert_allclose(np.asarray(got["predictions"]),
                               np.asarray(network(models, "upscaler", "translate")(x)), atol=2e-5)
    colour = np.random.default_rng(5).uniform(-1, 1, (1, 28, 28, 3)).astype(np.float32)
    got = answer(post(server, "cycle:predict", {"signature_name": "translate_b2a", "inputs": colour.tolist()}))
    np.testing.assert_allclose(np.asarray(got["outputs"]),
                               np.asarray(network(models, "cycle", "translate_b2a")(colour)), atol=2e-5)
    status, _, raw = post(server, "upscaler:predict", {"instances": (x * 3).tolist()})
    assert status == 400 and "translate's input range [-1, 1]" in json.loads(raw)["error"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb(side: int = 12_000) -> bytes:
    """A real decompression bomb: a grey side x side PNG of zeros (144 MB of pixels) in ~140 KB."""
    z = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


GREY7 = np.full((7, 7), 128, np.uint8)
PNG = {"Content-Type": "image/png"}
BAD = [
    ("upscaler:translate", {"images": np.zeros((1, 28, 28, 1)).tolist()}, None, "", 400,
     "images must have shape [1, 7, 7, 1] (images of shape [7, 7, 1] with values in [-1, 1])"),
    ("cycle:translate", {"images": np.zeros((1, 28, 28, 1)).tolist()}, None, "", 400,
     "images of shape [28, 28, 3] with values in [-1, 1]"),
    ("upscaler:translate", {"images": np.full((1, 7, 7, 1), 255.0).tolist()}, None, "", 400,
     "images must lie in translate's input range [-1, 1]; found values from 255 to 255"),
    ("upscaler:translate", {"images": [[["a"] * 7] * 7]}, None, "", 400, "images[0][0][0] is 'a', not a number"),
    ("upscaler:translate", {}, None, "", 400, ":translate needs 'images'"),
    ("upscaler:translate", {"images": [[[0.0] * 7] * 7], "direction": "a2b"}, None, "", 400,
     "direction: model 'upscaler' (sr_l1) translates one way only"),
    ("cycle:translate", {"images": np.zeros((1, 28, 28, 3)).tolist(), "direction": "up"}, None, "", 400,
     "direction='up' is not one of a2b, b2a"),
    ("upscaler:translate", {"images": [[[0.0] * 7] * 7], "seed": 1}, None, "", 400, "unknown field 'seed' for :translate"),
    ("upscaler:translate", b"GIF89a not a png", PNG, "", 400, "PNG upload: the body is not a PNG"),
    ("upscaler:translate", png_bytes(GREY7)[:-30], PNG, "", 400, "PNG upload: the PNG is truncated or corrupt"),
    ("upscaler:translate", png_bytes(np.zeros((64, 64), np.uint8)), PNG, "", 400,
     "PNG upload: the PNG is 64x64 pixels (refused before decoding); this operation takes 7x7 images (shape [7, 7, 1])"),
    ("upscaler:translate", bomb(), PNG, "", 400, "PNG upload: the PNG is 12000x12000 pixels (refused before decoding)"),
    ("upscaler:translate", png_bytes(np.zeros((7, 7, 3), np.uint8) + np.array([255, 0, 0], np.uint8)), PNG, "", 400,
     "PNG upload: the PNG is in colour (mode RGB); this operation takes grey images (shape [7, 7, 1])"),
    ("upscaler:translate", png_bytes(np.zeros((7, 7), np.uint16) + 300), PNG, "", 400, "16-bit or wider"),
    ("upscaler:translate", png_bytes(np.zeros((7, 7, 4), np.uint8)), PNG, "", 400, "transparent pixels"),
    ("upscaler:translate", png_bytes(GREY7), PNG, "?seed=3", 400, "unknown field 'seed' for :translate"),
    ("upscaler:translate", b"x", {"Content-Type": "text/plain"}, "", 415,
     "Content-Type must be application/json or image/png (one image uploaded as the body); got 'text/plain'"),
    ("upscaler:generate", {"n": 1}, None, "", 404,
     "model 'upscaler' (sr_l1) has no generate endpoint; it offers :translate, :predict"),
    ("dcgan:translate", {"images": []}, None, "", 404, "model 'dcgan' (dcgan) has no translate endpoint; it offers :generate"),
    ("dcgan:generate", png_bytes(GREY7), PNG, "", 415, "Content-Type must be application/json; got 'image/png'"),
]


@pytest.mark.parametrize("target, body, headers, query, status, message", BAD,
                         ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_that_names_the_problem(served, target, body, headers, query, status, message):
    server, _ = served
    got, _, raw = post(server, target, body, headers, query)
    assert got == status, raw
    assert message in json.loads(raw)["error"]


def test_server_stays_up_and_answers_after_the_bad_inputs(served):
    server, _ = served
    for target, body, headers, query, _, _ in BAD:
        post(server, target, body, headers, query)
    assert server.proc.poll() is None
    assert request(server.url, "GET", "/healthz")[0] == 200
    answer(post(server, "upscaler:translate", png_bytes(GREY7), PNG))


def test_openapi_translate_examples_are_answered(served):
    server, _ = served
    doc = json.loads(request(server.url, "GET", "/openapi.json")[2])
    post_op = doc["paths"]["/v1/models/{name}:translate"]["post"]
    content = post_op["requestBody"]["content"]
    assert set(content) == {"application/json", "image/png"}
    assert {p["name"] for p in post_op["parameters"]} == {"name", "direction", "format"}
    schema = doc["components"]["schemas"]["TranslateRequest"]
    assert set(schema["properties"]) == {"images", "direction", "format"}
    examples = content["application/json"]["examples"]
    assert set(examples) == {"upscaler", "cycle-a2b", "cycle-b2a"}
    for key, example in examples.items():
        answer(post(server, f"{key.split('-')[0]}:translate", example["value"]))
