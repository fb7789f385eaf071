"""Serving the style space of a style-based generator (a tiny untrained stylegan export with a
non-zero tracked w_avg, beside the golden VAE and DCGAN): ``:generate`` with ``truncation`` (psi 1
is plain generation, psi 0 the image of the average style for every seed), ``:mix`` (the diagonal
of the grid is each seed's own image; a cell is the synthesis of the row's coarse and the column's
fine styles), the errors that name the field, and the OpenAPI document's fields and examples."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.registry import load_store

from serving_fixtures import style_export

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "exports"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("style_serving")
    for name in ("vae", "dcgan"):
        shutil.copytree(GOLDEN / name, root / name)
    model = style_export(root / "style", tmp_path_factory)
    with TestClient(create_app(load_store(root, backend="onnx"))) as client:
        yield client, model


def images(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["images"], np.float32)


def test_truncation_moves_every_sample_towards_the_average_style(served):
    client, model = served
    plain = images(client.post("/v1/models/style:generate", json={"n": 4, "seed": 3}))
    same = client.post("/v1/models/style:generate", json={"n": 4, "seed": 3, "truncation": 1})
    assert same.json()["truncation"] == 1.0
    np.testing.assert_allclose(images(same), plain, atol=1e-5)
    average = images(client.post("/v1/models/style:generate", json={"n": 4, "seed": 3, "truncation": 0}))
    want = np.asarray(model.synthesis(model.w_avg[None]))[0]  # the image of w_avg, whatever the seed
    for image in average:
        np.testing.assert_allclose(image, want, atol=2e-3)  # JSON carries 6 decimals
    half = images(client.post("/v1/models/style:generate", json={"n": 4, "seed": 3, "truncation": 0.5}))
    assert np.abs(half - plain).max() > 1e-3 and np.abs(half - average).max() > 1e-3
    png = client.post("/v1/models/style:generate", json={"n": 4, "seed": 3, "truncation": 0.7, "format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_mix_grid_cells_are_the_row_and_column_styles(served):
    client, model = served
    seeds = [1, 2, 3]
    answer = client.post("/v1/models/style:mix", json={"seeds": seeds, "layer": 2})
    grid = images(answer).reshape(3, 3, 28, 28, 1)
    meta = answer.json()
    assert (meta["seeds"], meta["layer"], meta["num_ws"], meta["n"]) == (seeds, 2, model.num_ws, 9)
    for i, seed in enumerate(seeds):  # the diagonal: each seed's own image
        np.testing.assert_allclose(grid[i, i], images(client.post("/v1/models/style:generate",
                                                                  json={"n": 1, "seed": seed}))[0], atol=2e-5)
    from gen_keras.exported.latents import sample_prior

    w = np.asarray(model.mapping(np.concatenate([sample_prior(1, 16, s) for s in seeds])))
    ws = np.concatenate([np.repeat(w[0][None], 2, 0), np.repeat(w[2][None], model.num_ws - 2, 0)])[None]
    np.testing.assert_allclose(grid[0, 2], np.asarray(model.synthesis(ws))[0], atol=2e-3)
    assert np.abs(grid[0, 2] - grid[0, 0]).max() > 1e-3 and np.abs(grid[0, 2] - grid[2, 2]).max() > 1e-3
    png = client.post("/v1/models/style:mix", json={"seeds": [4, 5], "format": "png"})
    assert png.status_code == 200 and png.headers["X-Grid"] == "2x2"
    assert "mix" in client.get("/v1/models/style").json()["operations"]
    assert "mix" not in client.get("/v1/models/dcgan").json()["operations"]


@pytest.mark.parametrize("target, body, status, message", [
    ("vae:generate", {"n": 2, "truncation": 0.5}, 400,
     "truncation: model 'vae' (vae) has no truncation; only generators with a truncation input (style-based ones) have it"),
    ("style:generate", {"n": 2, "truncation": 1.5}, 400, "truncation=1.5 must be a number in [0, 1]"),
    ("style:generate", {"n": 2, "truncation": "x"}, 400, "truncation='x' must be a number in [0, 1]"),
    ("style:mix", {"seeds": [1, 2], "layer": 9}, 400,
     "layer=9 is over the limit of 5 (the model has 6 style layers: 1 .. 5 swap)"),
    ("style:mix", {"seeds": [1, 2], "layer": 0}, 400, "layer=0 is too small; it must be at least 1"),
    ("style:mix", {"seeds": [1]}, 400, "seeds must be a list of 2 to 8 integer seeds"),
    ("style:mix", {"seeds": [1, -2]}, 400, "seeds[1]=-2 is too small"),
    ("dcgan:mix", {"seeds": [1, 2]}, 404, "model 'dcgan' (dcgan) has no mix endpoint"),
])
def test_bad_style_requests_name_the_field(served, target, body, status, message):
    client, _ = served
    response = client.post(f"/v1/models/{target}", json=body)
    assert response.status_code == status and response.json()["error"].startswith(message), response.text


def test_the_document_lists_the_style_fields_and_its_examples_are_answered(served):
    client, _ = served
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for op, schema in (("mix", "MixRequest"), ("generate", "GenerateRequest")):
        error = client.post(f"/v1/models/style:{op}", json={"no_such_field": 1}).json()["error"]
        accepted = re.search(r"the fields are (.*)$", error).group(1).split(", ")
        assert sorted(schemas[schema]["properties"]) == sorted(accepted), op
    post = doc["paths"]["/v1/models/{name}:mix"]["post"]
    assert post["parameters"][0]["schema"]["enum"] == ["style"]
    for example in post["requestBody"]["content"]["application/json"]["examples"].values():
        assert client.post("/v1/models/style:mix", json=example["value"]).status_code == 200
    truncated = doc["paths"]["/v1/models/{name}:generate"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]["style-truncation"]["value"]
    assert client.post("/v1/models/style:generate", json=truncated).status_code == 200
    for status, body, target in (("400", {"seeds": [1, 2], "layer": 9}, "style"),
                                 ("404", {"seeds": [1, 2]}, "dcgan")):
        said = client.post(f"/v1/models/{target}:mix", json=body).json()["error"]
        documented = {e["value"]["error"] for e in post["responses"][status]["content"]["application/json"][
            "examples"].values()}
        assert documented == {said}, status
