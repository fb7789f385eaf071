"""``GET /v1/models`` and ``GET /v1/models/{name}``: what is served, from the manifests."""
from __future__ import annotations

from fastapi import APIRouter, Request

from serving.errors import RequestError
from serving.responses import json_response

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request):
    request.state.metric = ("", "models")
    store = request.app.state.server.loaded_store()
    return json_response({"models": [m.describe() for _, m in sorted(store.models.items())],
                          "refused": store.refused})


@router.get("/v1/models/{target}")
async def describe(target: str, request: Request):
    server = request.app.state.server
    name, _, op = target.partition(":")
    request.state.metric = (server.metric_model(name), "describe")
    model = server.lookup(name)
    if op:
        raise RequestError(405, f"GET {request.url.path}: :{op} needs POST with a JSON body")
    return json_response(model.describe())
