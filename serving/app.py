"""The HTTP service (FastAPI on uvicorn).

Routes: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}:{operation}``
(generate, interpolate, mix, encode, reconstruct, translate, predict — as the model's export
offers), ``GET /healthz``, ``/readyz``, ``/metrics``, ``/docs``, and the web page at ``/``. See
docs/serving.md for the request bodies.

Models load in a background thread after the port opens: ``/healthz`` answers at once, and
``/readyz`` turns 200 when loading is done and at least one model is served. SIGHUP loads them
again and swaps the new set in (how a newly published champion gets served without a restart).
Inference and response encoding run in a bounded thread pool under ``asyncio.wait_for``: a
request that outlives the timeout is answered 503 rather than left hanging.

This module only assembles the app: the state lives in :class:`serving.state.ServerState`, the
routes in :mod:`serving.routes`.
"""
from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.errors import RequestError
from serving.metrics import Metrics
from serving.registry import ModelStore
from serving.responses import error_response
from serving.routes import docs, health, operations
from serving.routes import models as model_routes
from serving.routes.health import STATIC
from serving.state import ServerState, ServeSettings

__all__ = ["ServeSettings", "create_app"]


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


def create_app(models: ModelStore | Callable[[], ModelStore], settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The application. ``models`` is a loaded store, or a function that loads one (called in
    a background thread at startup, and on SIGHUP)."""
    server = ServerState(models, settings)

    @asynccontextmanager
    async def lifespan(app):
        task = None if server.store is not None else asyncio.create_task(server.load_in_background())
        if server.loader is not None:
            try:  # only in the main thread (uvicorn.run); not under a test client's thread
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: asyncio.ensure_future(server.reload()))
            except (RuntimeError, ValueError, NotImplementedError):
                pass
        yield
        if task is not None:
            task.cancel()
        server.executor.shutdown(wait=False, cancel_futures=True)
        server.parser.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="gen-keras serving", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server
    app.add_middleware(_Metered, metrics=server.metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for module in (health, model_routes, operations):
        _install(app, module.router)
    docs.install(app, settings.limits)  # /docs from the installed Swagger UI, and the OpenAPI document
    return app


def _install(app: FastAPI, router) -> None:
    """The router's routes, added to the app itself. ``include_router`` would keep the router as a
    nested branch that FastAPI (0.165) walks on every request: ~200 more Python calls per
    request (cProfile), part of the n = 1 slowdown in docs/serving.md; flat routes are matched
    in one pass. Every setting a route of ours may carry is passed on."""
    for route in router.routes:
        app.add_api_route(route.path, route.endpoint, methods=sorted(route.methods), name=route.name,
                          include_in_schema=route.include_in_schema, status_code=route.status_code,
                          tags=route.tags, summary=route.summary, description=route.description,
                          responses=route.responses, response_class=route.response_class,
                          response_model=route.response_model, dependencies=route.dependencies)


# -- errors: always {"error": "<what is wrong>"} (TensorFlow Serving's shape) ----------------------
async def _request_error(request: Request, exc: RequestError):
    headers = {"Retry-After": "2"} if exc.status == 503 else {"Connection": "close"} if exc.status == 408 else None
    return error_response(exc.status, exc.message, headers)


async def _http_error(request: Request, exc: StarletteHTTPException):
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error_response(404, f"no route {where}; the API is under /v1/models (see /docs)")
    if exc.status_code == 405:
        return error_response(405, f"method not allowed: {where}", getattr(exc, "headers", None))
    return error_response(exc.status_code, f"{exc.detail}: {where}")
