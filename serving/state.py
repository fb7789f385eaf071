"""What a running server holds: the settings, the model store (loaded in the background and
reloaded on SIGHUP), the inference pool and the request metrics — one object, on
``app.state.server``, that every route reads."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from serving.errors import RequestError
from serving.metrics import Metrics
from serving.registry import ModelStore, ServedModel
from serving.validation import Limits

log = logging.getLogger("serving.app")


# Bodies up to this size are parsed on the event loop: a :generate body is ~40 bytes, and the
# hop to the parse pool cost ~0.4 ms per request (25% of a small model's rate, bench/serve_load.py
# --compare-with); JSON of 16 KB parses in well under 0.1 ms.
INLINE_PARSE_BYTES = 16 * 1024


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    limits: Limits = Limits()
    timeout_s: float = 30.0  # per request, inference + encoding
    inference_threads: int = 2  # requests computed at once; the rest wait their turn
    max_in_flight: int = 64  # operation requests admitted at once (parsing, queued, running; a body still
    # arriving holds only its connection)
    body_timeout_s: float = 10.0  # a request body must arrive within this
    parse_threads: int = 2  # JSON bodies are parsed and validated here, off the event loop


class ServerState:
    """``models`` is a loaded store, or a function that loads one (called in a background
    thread at startup, and again on SIGHUP)."""

    def __init__(self, models: ModelStore | Callable[[], ModelStore], settings: ServeSettings):
        self.loader = models if callable(models) else None
        self.store: ModelStore | None = models if isinstance(models, ModelStore) else None
        self.settings = settings
        self.load_error: str | None = None
        self.reloading = False
        self.reload_pending = False  # a SIGHUP during a reload: load once more when it ends
        self.in_flight = 0
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="inference")
        self.parser = ThreadPoolExecutor(settings.parse_threads, thread_name_prefix="parse")

    # -- loading ------------------------------------------------------------------------------------
    async def load_in_background(self) -> None:
        try:
            self.store = await asyncio.get_running_loop().run_in_executor(None, self.loader)
        except Exception as exc:  # a bad --models path, registry down: report on /readyz
            log.exception("loading models failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.store = ModelStore()
        if not self.store.models:
            log.error("no model is served; /readyz stays 503 (refused: %s)", self.store.refused or "none found")

    async def reload(self) -> None:
        """Load everything again and swap the new set in at once. A model refused now but served
        before keeps serving its previous version, so a bad publish cannot take a model down. A
        reload asked for while one runs is not dropped: one more follows when it ends."""
        if self.store is None or self.loader is None:
            return
        if self.reloading:
            self.reload_pending = True
            return
        self.reloading = True
        try:
            while True:
                self.reload_pending = False
                await self._reload_once()
                if not self.reload_pending:
                    break
        finally:
            self.reloading = False

    async def _reload_once(self) -> None:
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, self.loader)
        except Exception:
            log.exception("reload failed; the loaded models keep serving")
            return
        for name, model in self.store.models.items():
            if name not in new.models and name in new.refused:
                log.warning("reload refused %s (%s); keeping the version already served", name, new.refused[name])
                new.models[name] = model
        self.store = new
        log.info("reloaded: serving %s", ", ".join(sorted(new.models)) or "nothing")

    # -- lookups --------------------------------------------------------------------------------------
    def loaded_store(self) -> ModelStore:
        if self.store is None:
            raise RequestError(503, "models are still loading; retry shortly")
        return self.store

    def lookup(self, name: str) -> ServedModel:
        store = self.loaded_store()
        if name in store.models:
            return store.models[name]
        if name in store.refused:
            raise RequestError(404, f"model {name!r} is not served: it was refused at load: {store.refused[name]}")
        served = ", ".join(sorted(store.models)) or "none"
        raise RequestError(404, f"unknown model {name!r}; served models: {served}")

    def metric_model(self, name: str) -> str:
        """The model label for metrics: unknown names share one, so a client cannot grow the set."""
        return name if self.store is not None and name in self.store.models else "_unknown_"

    # -- running work -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self):
        """Count an operation request from the arrival of its body to its answer; past
        ``max_in_flight`` it is turned away at once with 503 (the handler adds Retry-After)."""
        if self.in_flight >= self.settings.max_in_flight:
            raise RequestError(503, f"the server is busy: {self.in_flight} requests in flight (the limit, "
                                    "--max-in-flight); retry shortly")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def parse(self, work: Callable, size: int = 0):
        """Parse and validate a request body: a small one (``size`` bytes, at most
        ``INLINE_PARSE_BYTES``) on the event loop, where it costs less than the hop to another
        thread; a larger one in the parse pool, so that no big body holds the loop."""
        if size <= INLINE_PARSE_BYTES:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self.parser, work)

    async def compute(self, model: ServedModel, job: Callable):
        """Run ``job(token)`` in the inference pool under the request timeout; past it, the token
        cancels the model run (onnxruntime stops at its next operator), freeing the thread."""
        token = model.reader.runtime.new_token()
        future = asyncio.get_running_loop().run_in_executor(self.executor, job, token)
        try:
            return await asyncio.wait_for(future, self.settings.timeout_s)
        except asyncio.TimeoutError:
            token.cancel()
            raise RequestError(503, f"the request took longer than the {self.settings.timeout_s:g} s "
                                    "timeout and was abandoned; retry, or ask for fewer images") from None
