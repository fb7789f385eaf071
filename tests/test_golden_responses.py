"""Served bytes do not change under refactoring: tiny VAE and DCGAN exports written by the
pipeline at commit ffe5f26 (tests/fixtures/golden/exports) answer a fixed list of requests —
images as JSON and PNG, interpolation paths, encode / reconstruct, TF Serving's predict, and error
messages — with exactly the bytes that commit's server sent (their sha256 in
tests/fixtures/golden/responses.json), on both runtimes. Regenerate the file only for an intended
change of the API, and say so in the commit.

One intended change so far: a model's description (``GET /v1/models/{name}``) gained fields when
the manifest began to declare what operations mean (issue 25: each operation's ``task``, each
input's ``role``, the model's ``facts``). Its bytes are no longer compared; instead every field
the format-1 server described (tests/fixtures/golden/describe_format1.json, recorded before the
change) must still be there with the same value.

The numbers a model computes are the CPU's as well as the code's: the TensorFlow runtime's DCGAN
answers, recorded on a host with AMX, come out one unit of the sixth decimal (the server's
rounding) apart on an AVX-512 host. A JSON answer of numbers whose bytes differ is therefore
compared with its recorded body (tests/fixtures/golden/bodies.json.gz, recorded by the same
server; on the recording host each matched its sha256): the same fields, names and shapes, every
number within two units of the sixth decimal. Anything else — a PNG, an error message, a field,
a shape, a number further off — must still be byte-identical or within that bound."""
import gzip
import hashlib
import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.registry import load_store

IMG = [[[round(((i * 7 + j * 3) % 10) / 10, 1)] for j in range(28)] for i in range(28)]
REQUESTS = [
    ("GET", "/v1/models/vae", None), ("GET", "/v1/models/nope", None),
    ("POST", "/v1/models/vae:generate", {"n": 5, "seed": 7, "format": "json"}),
    ("POST", "/v1/models/vae:generate", {"n": 16, "seed": 3, "format": "png"}),
    ("POST", "/v1/models/vae:generate", {"z": [[0.5, -1.0, 2.0, 0.0]], "format": "json"}),
    ("POST", "/v1/models/vae:interpolate", {"seeds": [1, 2], "steps": 5, "method": "slerp", "format": "json"}),
    ("POST", "/v1/models/vae:interpolate", {"seeds": [1, 2], "steps": 5, "method": "linear", "format": "png"}),
    ("POST", "/v1/models/vae:encode", {"images": [IMG, IMG]}),
    ("POST", "/v1/models/vae:reconstruct", {"images": [IMG], "format": "json"}),
    ("POST", "/v1/models/vae:reconstruct", {"images": [IMG], "format": "png"}),
    ("POST", "/v1/models/vae:predict", {"instances": [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, -1.0, 0.5]]}),
    ("POST", "/v1/models/vae:predict", {"signature_name": "encode", "inputs": [IMG]}),
    ("POST", "/v1/models/vae:generate", {"n": 0}), ("POST", "/v1/models/vae:generate", {"bogus": 1}),
    ("POST", "/v1/models/vae:explode", {"n": 1}), ("POST", "/v1/models/dcgan:encode", {"images": [IMG]}),
    ("POST", "/v1/models/dcgan:generate", {"n": 8, "seed": 11, "format": "json"}),
    ("POST", "/v1/models/dcgan:generate", {"n": 16, "seed": 5, "format": "png"}),
    ("POST", "/v1/models/dcgan:interpolate", {"seeds": [4, 9], "steps": 6, "format": "json"}),
    ("POST", "/v1/models/dcgan:predict", {"inputs": [[0.3, 0.1, -0.2, 1.5]]}),
]


def fingerprint(response) -> str:
    body = response.content
    if response.headers.get("content-type", "").startswith("application/json") and b'"source"' in body:
        import json  # describe() names the folder it was loaded from: drop the path-dependent fields
        data = json.loads(body)
        for k in ("source", "manifest_sha256"):
            data.pop(k, None)
        body = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(f"{response.status_code} {response.headers.get('content-type')} ".encode() + body).hexdigest()


GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.mark.parametrize("backend", ["onnx", "tf"])
def test_served_bytes_match_the_golden_responses(backend):
    want = json.loads((GOLDEN / "responses.json").read_text())[backend]
    store = load_store(GOLDEN / "exports", backend=backend)
    assert sorted(store.models) == ["dcgan", "vae"] and not store.refused
    described = json.loads((GOLDEN / "describe_format1.json").read_text())[backend]
    bodies = json.loads(gzip.decompress((GOLDEN / "bodies.json.gz").read_bytes()))[backend]
    with TestClient(create_app(store)) as c:
        responses = [c.request(method, path, json=body) for method, path, body in REQUESTS]
    changed = []
    for i, ((method, path, body), response, digest) in enumerate(zip(REQUESTS, responses, want)):
        name = path.rsplit("/", 1)[-1]
        if method == "GET" and name in described:  # the extended description: old fields kept
            if not keeps(described[name], response.json()):
                changed.append(f"GET {path}: a field of the format-1 description changed")
        elif fingerprint(response) != digest and not (
                str(i) in bodies and response.status_code == 200
                and response.headers.get("content-type", "").startswith("application/json")
                and close(bodies[str(i)], response.json())):
            changed.append(f"{method} {path} {json.dumps(body)[:60]}")
    assert not changed, f"served bytes changed for: {changed}"


def keeps(old, new, key: str = "") -> bool:
    """Every field of ``old`` is in ``new`` with the same value (objects may gain fields; the
    ``operations`` list may gain operations, the old ones kept in their order)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and keeps(v, new[k], k) for k, v in old.items())
    if key == "operations" and isinstance(new, list):
        rest = iter(new)
        return all(any(op == other for other in rest) for op in old)
    if isinstance(old, list):
        return isinstance(new, list) and len(old) == len(new) and all(keeps(a, b) for a, b in zip(old, new))
    return old == new


ROUNDING = 2e-6  # two units of the sixth decimal, where the server rounds the numbers it sends


def close(want, got) -> bool:
    """``got`` has ``want``'s structure (keys, lengths, strings, integers exactly) and every float
    within :data:`ROUNDING` of it."""
    if isinstance(want, dict):
        return isinstance(got, dict) and want.keys() == got.keys() and all(close(want[k], got[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(close(a, b) for a, b in zip(want, got))
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isfinite(got) and abs(want - got) <= ROUNDING
    return type(want) is type(got) and want == got


def test_close_allows_rounding_of_numbers_only():
    assert close({"shape": [1, 2], "images": [0.123456, -0.5]}, {"shape": [1, 2], "images": [0.123457, -0.499999]})
    assert not close({"images": [0.123456]}, {"images": [0.123459]})  # 3 units off
    assert not close({"shape": [1, 2]}, {"shape": [1, 3]}) and not close({"a": 1}, {"a": 1, "b": 2})
    assert not close({"images": [0.5, 0.5]}, {"images": [0.5]}) and not close({"m": "vae"}, {"m": "dcgan"})
    assert not close([0.5], [float("nan")]) and not close([1], [1.0000001])


def test_keeps_compares_every_old_field():
    assert keeps({"a": [{"x": 1}], "b": 2}, {"a": [{"x": 1, "role": "code"}], "b": 2, "c": 3})
    assert not keeps({"a": [{"x": 1}]}, {"a": [{"x": 2, "role": "code"}]})
    assert not keeps({"a": [1, 2]}, {"a": [1]}) and not keeps({"b": 2}, {"c": 2})
    assert keeps({"operations": ["a", "b"]}, {"operations": ["a", "x", "b"]})
    assert not keeps({"operations": ["a", "b"]}, {"operations": ["b", "a"]})
