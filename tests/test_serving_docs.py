"""The OpenAPI document and /docs (fast: the tiny golden exports, no training): each operation has
its own path with a request body whose fields are exactly the ones the validator accepts, its
examples are requests the server answers 200, its error examples are messages the server really
sends, the limits are this server's, the document is OpenAPI 3.0 (what the bundled Swagger UI 4
renders), and /docs loads only assets served here. The page in Chromium: test_serving_browser.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import ServeSettings, create_app
from serving.registry import load_store
from serving.validation import Limits

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "exports"  # "vae" (latent 4) and "dcgan"
OPERATIONS = ("generate", "interpolate", "encode", "reconstruct", "predict")
IMG = [[0.5] * 28 for _ in range(28)]
# Requests that must produce each documented 400 example (on "vae").
BAD = [("generate", {"n": 65}), ("generate", {"seed": -1}), ("generate", {"sed": 1}),
       ("interpolate", {"seeds": [1, 2], "steps": 65}), ("interpolate", {"steps": 4}),
       ("encode", {"images": [[[255.0] * 28] * 27 + [[0.0] * 28]]}),
       ("reconstruct", {"images": [[[255.0] * 28] * 27 + [[0.0] * 28]]}),
       ("predict", {"signature_name": "generate"})]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(load_store(GOLDEN, backend="onnx"))) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(doc: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/"), ref
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_each_operation_has_a_path_with_its_request_body(doc):
    for op in OPERATIONS:
        post = doc["paths"][f"/v1/models/{{name}}:{op}"]["post"]
        body = resolve(doc, post["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        assert body["type"] == "object" and body["properties"] and body["additionalProperties"] is False
        assert all("description" in field for field in body["properties"].values()), op
        assert {"200", "400", "404", "413", "415", "503"} <= set(post["responses"]), op
        answer = post["responses"]["200"]["content"]
        assert "properties" in resolve(doc, answer["application/json"]["schema"]["$ref"])
        assert ("image/png" in answer) == (op in ("generate", "interpolate", "reconstruct"))
        assert [p["name"] for p in post["parameters"]] == ["name"]
    assert "post" not in doc["paths"].get("/v1/models/{target}", {})  # the generic route is replaced
    assert doc["paths"]["/v1/models/{name}:encode"]["post"]["parameters"][0]["schema"]["enum"] == ["vae"]


def test_documented_fields_are_the_fields_the_validator_accepts(client, doc):
    for op in OPERATIONS:
        body = resolve(doc, doc["paths"][f"/v1/models/{{name}}:{op}"]["post"]["requestBody"]["content"]
                       ["application/json"]["schema"]["$ref"])
        error = client.post(f"/v1/models/vae:{op}", json={"no_such_field": 1}).json()["error"]
        accepted = re.search(r"the fields are (.*)$", error).group(1).split(", ")
        # The golden models are not style-based: they refuse the style-only fields by name
        # (tests/test_serving_style.py checks those against a style model).
        accepted += ["truncation"] if op == "generate" else []
        assert sorted(body["properties"]) == sorted(accepted), op


def test_request_examples_are_answered(client, doc):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    tried = 0
    for op in OPERATIONS:
        examples = doc["paths"][f"/v1/models/{{name}}:{op}"]["post"]["requestBody"]["content"][
            "application/json"]["examples"]
        assert examples, op
        for key, example in examples.items():
            if key.startswith("any"):
                targets = [n for n, m in models.items() if op in m["operations"]]
            elif key.startswith("conditional"):
                targets = [n for n, m in models.items() if m["conditional"]]
            else:
                targets = [key]
            for name in targets:
                response = client.post(f"/v1/models/{name}:{op}", json=example["value"])
                assert response.status_code == 200, (op, key, name, response.text)
                tried += 1
    assert tried >= 7


def test_error_examples_are_what_the_server_says(client, doc):
    said = {}
    for op, body in BAD:
        response = client.post(f"/v1/models/vae:{op}", json=body)
        assert response.status_code == 400, (op, body)
        said.setdefault(op, set()).add(response.json()["error"])
    said.setdefault("encode", set()).add(client.post("/v1/models/dcgan:encode", json={"images": [IMG]}).json()["error"])
    for op in OPERATIONS:
        responses = doc["paths"][f"/v1/models/{{name}}:{op}"]["post"]["responses"]
        documented = [e["value"]["error"] for e in responses["400"]["content"]["application/json"]["examples"].values()]
        assert documented and set(documented) <= said[op], (op, set(documented) - said[op])
    encode_404 = doc["paths"]["/v1/models/{name}:encode"]["post"]["responses"]["404"]
    assert [e["value"]["error"] for e in encode_404["content"]["application/json"]["examples"].values()][0] \
        in said["encode"]
    assert client.post("/v1/models/vae:generate", content=b"{}", headers={"Content-Type": "text/plain"}).json() \
        == {"error": "Content-Type must be application/json; got 'text/plain'"}
    def documented(status: str) -> str:
        content = doc["paths"]["/v1/models/{name}:generate"]["post"]["responses"][status]["content"]
        return next(iter(content["application/json"]["examples"].values()))["value"]["error"]

    assert client.post("/v1/models/vae:generate", json={}, headers={"Accept": "text/html"}).json()["error"] \
        == documented("406")
    too_big = b" " * (Limits().max_body_bytes + 1)
    assert client.post("/v1/models/vae:generate", content=too_big,
                       headers={"Content-Type": "application/json"}).json()["error"] == documented("413")


def test_limits_are_this_servers():
    with TestClient(create_app(load_store(GOLDEN, backend="onnx"), ServeSettings(Limits(max_n=8, max_steps=5)))) as c:
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["GenerateRequest"]["properties"]["n"] == {
        "default": 8, "description": schemas["GenerateRequest"]["properties"]["n"]["description"],
        "maximum": 8, "minimum": 1, "type": "integer"}
    assert schemas["InterpolateRequest"]["properties"]["steps"]["maximum"] == 5
    assert schemas["ReconstructRequest"]["properties"]["images"]["maxItems"] == 8


def test_the_document_is_openapi_3_0(doc):
    assert doc["openapi"].startswith("3.0.")
    text = json.dumps(doc)
    assert '"type": "null"' not in text and "$defs" not in text and '"const"' not in text

    def walk(node, where=""):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node["$ref"])
            if "properties" in node:  # a schema object: 3.0 has `example`, not JSON Schema's `examples`
                assert "examples" not in node, where
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)
    walk(doc)
    assert "HTTPValidationError" not in text  # the server never answers FastAPI's 422


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:href|src)="([^"]+)"|url: '([^']+)'""", page.text)
    urls = [a or b for a, b in urls]
    assert len(urls) == 4 and all(u.startswith("/") for u in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
