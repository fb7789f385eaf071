"""``/healthz`` (the process answers), ``/readyz`` (models loaded), ``/metrics`` (Prometheus)
and the web page at ``/``."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from serving.registry import ModelStore
from serving.responses import error_response, json_response

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request):
    request.state.metric = ("", "healthz")
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    request.state.metric = ("", "readyz")
    server = request.app.state.server
    store = server.store
    if store is None:
        return error_response(503, "models are still loading", {"Retry-After": "2"})
    body = {"models": sorted(store.models), "refused": store.refused}
    if server.load_error:
        body["load_error"] = server.load_error
    if not store.models:
        return json_response({"status": "no model is served", **body}, 503)
    return json_response({"status": "ready", **body})


@router.get("/metrics")
async def metrics_text(request: Request):
    request.state.metric = ("", "metrics")
    server = request.app.state.server
    store = server.store or ModelStore()
    text = server.metrics.render({
        "models_loaded": ("Models being served.", len(store.models)),
        "models_refused": ("Models refused at load (failed verification or resolution).", len(store.refused)),
    })
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/", include_in_schema=False)
async def page(request: Request):
    request.state.metric = ("", "page")
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
