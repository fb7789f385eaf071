"""``POST /v1/models/{name}:{operation}``: generate, interpolate, codes, mix, encode, reconstruct,
translate (a JSON body, or one PNG uploaded as the body) (and
``:predict``, :mod:`serving.routes.tfserving`). Each handler validates the request on the event
loop (cheap) and returns the work, which runs in the inference pool under the timeout."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from serving import validation as v
from serving.errors import RequestError
from serving.responses import array_list, finite, images_response, json_response
from serving.routes.tfserving import predict

router = APIRouter()


def generate(model, body: dict, accept, limits):
    return images_job(model, v.parse_generate(body, model.adapter, model.name, limits, accept), "generate")


def interpolate(model, body: dict, accept, limits):
    return images_job(model, v.parse_interpolate(body, model.adapter, model.name, limits, accept), "interpolate")


def mix(model, body: dict, accept, limits):
    return images_job(model, v.parse_mix(body, model.adapter, model.name, limits, accept), "mix")


def reconstruct(model, body: dict, accept, limits):
    return images_job(model, v.parse_images(body, model.adapter, model.name, limits, accept, "reconstruct"),
                      "reconstruct")


def translate(model, body: dict, accept, limits, upload: bytes | None = None):
    return images_job(model, v.parse_translate(body, model.adapter, model.name, limits, accept, upload), "translate")


def encode(model, body: dict, accept, limits):
    req = v.parse_images(body, model.adapter, model.name, limits, accept, "encode")
    feeds = v.feeds_for(model.adapter, req)

    def job(token):
        outputs = finite(model.reader.run_feeds(req.op.name, feeds, token), "encode")
        return json_response({"model": model.name, **{n: array_list(o) for n, o in zip(req.op.outputs, outputs)}})
    return job


def codes(model, body: dict, accept, limits):
    """The codes the one rule draws for the seeds (no model runs): what the page's Latent panel
    starts from."""
    req = v.parse_codes(body, model.adapter, model.name, limits, accept)
    z = v.feeds_for(model.adapter, req)[req.op.input_for("code").name]

    def job(token):
        return json_response({"model": model.name, **req.meta, "latent_dim": int(z.shape[1]), "z": array_list(z)})
    return job


def images_job(model, req: v.Parsed, what: str):
    """The work of an operation that answers with images: its feeds are built now (on the
    event loop, cheap); the job runs the model and encodes the images as JSON or a PNG grid in
    the range the operation's image output declares."""
    feeds = v.feeds_for(model.adapter, req)
    k = req.op.output_index("image")
    out = req.op.output_specs[k] if req.op.output_specs and k is not None else None

    def job(token):
        outputs = finite(model.reader.run_feeds(req.op.name, feeds, token), what)
        return images_response(model, outputs[k or 0], req.format, req.meta, columns=req.columns,
                               value_range=out.value_range if out is not None else None)
    return job


HANDLERS = {"generate": generate, "interpolate": interpolate, "codes": codes, "mix": mix, "encode": encode,
            "reconstruct": reconstruct, "translate": translate, "predict": predict}
UPLOADS = ("translate",)  # operations that also take one PNG as the body (Content-Type: image/png)


@router.post("/v1/models/{target}")
async def operate(target: str, request: Request):
    server = request.app.state.server
    name, sep, op = target.rpartition(":")
    if not sep:
        name, op = target, ""
    request.state.metric = (server.metric_model(name), op if op in HANDLERS else "_unknown_")
    model = server.lookup(name)
    if op not in HANDLERS:
        raise RequestError(404, f"unknown operation {':' + op if op else '(none)'!r} on model "
                                f"{name!r}; POST to :{', :'.join(model.operations)}")
    if op not in model.operations:
        note = f"; {model.spec.note}" if model.spec.note and op == "mix" else ""
        raise RequestError(404, f"model {name!r} ({model.spec.kind}) has no {op} endpoint; it offers "
                                f":{', :'.join(model.operations)}{note}")
    settings = server.settings
    # The body first: a client trickling it holds its connection, never a slot of the work.
    raw = await read_body(request, settings.limits.max_body_bytes, settings.body_timeout_s)
    with server.admit():
        content_type, accept = request.headers.get("content-type"), request.headers.get("accept")
        if op in UPLOADS and v.media_type(content_type) == "image/png":  # options in the query string
            query = dict(request.query_params)
            job = await server.parse(lambda: HANDLERS[op](model, query, accept, settings.limits, upload=raw),
                                     len(raw))
        else:
            job = await server.parse(lambda: HANDLERS[op](model, v.decode_json(raw, content_type, op in UPLOADS),
                                                          accept, settings.limits), len(raw))
        return await server.compute(model, job)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body within ``timeout_s`` seconds (a client trickling it is cut off with 408), refused
    with 413 as soon as it is known to exceed ``limit`` bytes."""
    try:
        if hasattr(asyncio, "timeout"):  # Python 3.11+: no extra task per request (wait_for makes one)
            async with asyncio.timeout(timeout_s):
                return await _read_body(request, limit)
        return await asyncio.wait_for(_read_body(request, limit), timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {timeout_s:g} s "
                                "(--body-timeout); the connection is closed") from None


async def _read_body(request: Request, limit: int) -> bytes:
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
