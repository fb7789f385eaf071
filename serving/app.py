"""The HTTP service (FastAPI on uvicorn).

Routes: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}:{operation}``
(generate, interpolate, encode, reconstruct, predict), ``GET /healthz``, ``/readyz``,
``/metrics``, and the web page at ``/``. See docs/serving.md for the request bodies.

Models load in a background thread after the port opens: ``/healthz`` answers at once, and
``/readyz`` turns 200 when loading is done and at least one model is served. SIGHUP loads them
again and swaps the new set in (how a newly published champion gets served without a restart). Inference and
response encoding run in a bounded thread pool under ``asyncio.wait_for``: a request that
outlives the timeout is answered 503 rather than left hanging.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import validation as v
from serving.images import grid_png, grid_shape
from serving.metrics import Metrics
from serving.registry import ModelStore, ServedModel
from serving.validation import Limits, RequestError

log = logging.getLogger("serving.app")
STATIC = Path(__file__).with_name("static")
OPERATIONS = ("generate", "interpolate", "encode", "reconstruct", "predict")


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    limits: Limits = Limits()
    timeout_s: float = 30.0  # per request, inference + encoding
    inference_threads: int = 2  # requests computed at once; the rest wait their turn


def _json(payload: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")).encode(), status,
                    headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": message}, status, headers)


def _array(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype="float64"), 6).tolist()


class _Metered:
    """Pure ASGI wrapper: times every HTTP request and counts it under the (model, endpoint)
    labels the route put in ``request.state.metric`` (unknown names share one label, so a
    client cannot grow the label set)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        scope.setdefault("state", {})["metric"] = ("", "other")

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            model, endpoint = scope["state"]["metric"]
            self.metrics.observe(model, endpoint, status[0], time.perf_counter() - started)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes — from
    Content-Length when sent, else while streaming (chunked uploads)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes exceeds the limit of {limit} "
                                "bytes (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(models: ModelStore | Callable[[], ModelStore], settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The application. ``models`` is a loaded store, or a function that loads one (called in
    a background thread at startup)."""
    metrics = Metrics()
    state = {"store": models if isinstance(models, ModelStore) else None, "load_error": None,
             "reloading": False}
    executor = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="inference")
    limits = settings.limits

    async def load_in_background(loader):
        try:
            state["store"] = await asyncio.get_running_loop().run_in_executor(None, loader)
        except Exception as exc:  # a bad --models path, registry down: report on /readyz
            log.exception("loading models failed")
            state["load_error"] = f"{type(exc).__name__}: {exc}"
            state["store"] = ModelStore()
        store = state["store"]
        if not store.models:
            log.error("no model is served; /readyz stays 503 (refused: %s)", store.refused or "none found")

    async def reload(loader):
        """Load everything again (SIGHUP) and swap the new set in at once. A model refused now
        but served before keeps serving its previous version, so a bad publish cannot take a
        model down."""
        if state["reloading"] or state["store"] is None:
            return
        state["reloading"] = True
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, loader)
        except Exception:
            log.exception("reload failed; the loaded models keep serving")
            return
        finally:
            state["reloading"] = False
        for name, model in state["store"].models.items():
            if name not in new.models and name in new.refused:
                log.warning("reload refused %s (%s); keeping the version already served", name, new.refused[name])
                new.models[name] = model
        state["store"] = new
        log.info("reloaded: serving %s", ", ".join(sorted(new.models)) or "nothing")

    @asynccontextmanager
    async def lifespan(app):
        task = None if state["store"] is not None else asyncio.create_task(load_in_background(models))
        if callable(models):
            try:  # only in the main thread (uvicorn.run); not under a test client's thread
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: asyncio.ensure_future(reload(models)))
            except (RuntimeError, ValueError, NotImplementedError):
                pass
        yield
        if task is not None:
            task.cancel()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="gen-keras serving", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.add_middleware(_Metered, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- errors: always {"error": "<what is wrong>"} (TensorFlow Serving's shape) ----------------
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return _error(exc.status, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            return _error(404, f"no route {where}; the API is under /v1/models (see /docs)")
        if exc.status_code == 405:
            return _error(405, f"method not allowed: {where}", getattr(exc, "headers", None))
        return _error(exc.status_code, f"{exc.detail}: {where}")

    # -- health, readiness, metrics, page -----------------------------------------------------------
    @app.get("/healthz")
    async def healthz(request: Request):
        request.state.metric = ("", "healthz")
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request):
        request.state.metric = ("", "readyz")
        store = state["store"]
        if store is None:
            return _error(503, "models are still loading", {"Retry-After": "2"})
        body = {"models": sorted(store.models), "refused": store.refused}
        if state["load_error"]:
            body["load_error"] = state["load_error"]
        if not store.models:
            return _json({"status": "no model is served", **body}, 503)
        return _json({"status": "ready", **body})

    @app.get("/metrics")
    async def metrics_text(request: Request):
        request.state.metric = ("", "metrics")
        store = state["store"] or ModelStore()
        text = metrics.render({
            "models_loaded": ("Models being served.", len(store.models)),
            "models_refused": ("Models refused at load (failed verification or resolution).", len(store.refused)),
        })
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def page(request: Request):
        request.state.metric = ("", "page")
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # -- models ---------------------------------------------------------------------------------------
    def lookup(name: str) -> ServedModel:
        store = state["store"]
        if store is None:
            raise RequestError(503, "models are still loading; retry shortly")
        if name in store.models:
            return store.models[name]
        if name in store.refused:
            raise RequestError(404, f"model {name!r} is not served: it was refused at load: {store.refused[name]}")
        served = ", ".join(sorted(store.models)) or "none"
        raise RequestError(404, f"unknown model {name!r}; served models: {served}")

    def metric_model(name: str) -> str:
        store = state["store"]
        return name if store is not None and name in store.models else "_unknown_"

    def lookup_store() -> ModelStore:
        if state["store"] is None:
            raise RequestError(503, "models are still loading; retry shortly")
        return state["store"]

    @app.get("/v1/models")
    async def list_models(request: Request):
        request.state.metric = ("", "models")
        store = lookup_store()
        return _json({"models": [m.describe() for _, m in sorted(store.models.items())],
                      "refused": store.refused})

    @app.get("/v1/models/{target}")
    async def describe(target: str, request: Request):
        name, _, op = target.partition(":")
        request.state.metric = (metric_model(name), "describe")
        model = lookup(name)
        if op:
            raise RequestError(405, f"GET {request.url.path}: :{op} needs POST with a JSON body")
        return _json(model.describe())

    @app.post("/v1/models/{target}")
    async def operate(target: str, request: Request):
        name, sep, op = target.rpartition(":")
        if not sep:
            name, op = target, ""
        request.state.metric = (metric_model(name), op if op in OPERATIONS else "_unknown_")
        model = lookup(name)
        if op not in OPERATIONS:
            raise RequestError(404, f"unknown operation {':' + op if op else '(none)'!r} on model "
                                    f"{name!r}; POST to :{', :'.join(model.describe()['operations'])}")
        if op in ("encode", "reconstruct") and op not in model.spec.endpoints:
            raise RequestError(404, f"model {name!r} ({model.spec.kind}) has no {op} endpoint; it offers "
                                    f":{', :'.join(model.describe()['operations'])}")
        body = v.decode_json(await read_body(request, limits.max_body_bytes),
                             request.headers.get("content-type"))
        accept = request.headers.get("accept")
        handler = {"generate": _generate, "interpolate": _interpolate, "encode": _encode,
                   "reconstruct": _reconstruct, "predict": _predict}[op]
        job = handler(model, body, accept)  # validation runs here, on the event loop (cheap)
        future = asyncio.get_running_loop().run_in_executor(executor, job)
        try:
            return await asyncio.wait_for(future, settings.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(503, f"the request took longer than the {settings.timeout_s:g} s timeout "
                                    "and was abandoned; retry, or ask for fewer images") from None

    # -- operations: validate now, return the work to run in the pool ----------------------------------
    def _images_response(model: ServedModel, images, fmt: str, meta: dict, columns=None) -> Response:
        if fmt == "png":
            rows, cols = grid_shape(len(images), columns)
            headers = {"X-Grid": f"{rows}x{cols}", "Cache-Control": "no-store"}
            headers.update({f"X-{k.capitalize()}": str(val) for k, val in meta.items()
                            if k in ("seed", "seeds", "method", "steps") and val is not None})
            return Response(grid_png(images, model.spec.value_range, columns), media_type="image/png",
                            headers=headers)
        return _json({"model": model.name, **meta, "value_range": list(model.spec.value_range),
                      "shape": list(images.shape), "images": _array(images)})

    def _generate(model: ServedModel, body: dict, accept):
        req = v.parse_generate(body, model.spec, model.name, limits, accept)
        ep = model.spec.endpoints["generate"]

        def job():
            images = model.backend.run("generate", v.feeds(ep, z=req.z, y=req.labels))[0]
            meta = {"n": len(images), "seed": req.seed}
            if req.labels is not None:
                meta["labels"] = req.labels.tolist()
            return _images_response(model, images, req.format, meta)
        return job

    def _interpolate(model: ServedModel, body: dict, accept):
        req = v.parse_interpolate(body, model.spec, model.name, limits, accept)
        ep = model.spec.endpoints["generate"]

        def job():
            images = model.backend.run("generate", v.feeds(ep, z=req.z, y=req.labels))[0]
            meta = {**req.extra, "seeds": req.seeds}
            if req.labels is not None:
                meta["label"] = int(req.labels[0])
            return _images_response(model, images, req.format, meta, columns=len(images))
        return job

    def _encode(model: ServedModel, body: dict, accept):
        ep = model.spec.endpoints["encode"]
        req = v.parse_images(body, model.spec, model.name, limits, accept, "encode", ep)

        def job():
            outputs = model.backend.run("encode", v.feeds(ep, x=req.x, y=req.labels))
            return _json({"model": model.name, **{n: _array(o) for n, o in zip(ep.outputs, outputs)}})
        return job

    def _reconstruct(model: ServedModel, body: dict, accept):
        ep = model.spec.endpoints["reconstruct"]
        req = v.parse_images(body, model.spec, model.name, limits, accept, "reconstruct", ep)

        def job():
            images = model.backend.run("reconstruct", v.feeds(ep, x=req.x, y=req.labels))[0]
            return _images_response(model, images, req.format, {"n": len(images)})
        return job

    def _predict(model: ServedModel, body: dict, accept):
        ep, feeds, rows = v.parse_predict(body, model.spec, limits)

        def job():
            outputs = dict(zip(ep.outputs, model.backend.run(ep.name, feeds)))
            if rows:
                if len(outputs) == 1:
                    return _json({"predictions": _array(next(iter(outputs.values())))})
                listed = {n: _array(o) for n, o in outputs.items()}
                count = len(next(iter(listed.values())))
                return _json({"predictions": [{n: listed[n][i] for n in listed} for i in range(count)]})
            if len(outputs) == 1:
                return _json({"outputs": _array(next(iter(outputs.values())))})
            return _json({"outputs": {n: _array(o) for n, o in outputs.items()}})
        return job

    return app
