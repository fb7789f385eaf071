"""``POST /v1/models/{name}:{operation}``: generate, interpolate, mix, encode, reconstruct,
translate (a JSON body, or one PNG uploaded as the body) (and
``:predict``, :mod:`serving.routes.tfserving`). Each handler validates the request on the event
loop (cheap) and returns the work, which runs in the inference pool under the timeout."""
from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Request

from serving import validation as v
from serving.responses import array_list, finite, images_response, json_response
from serving.routes.tfserving import predict
from serving.validation import RequestError

router = APIRouter()


def generate(model, body: dict, accept, limits):
    req = v.parse_generate(body, model.spec, model.name, limits, accept)
    op = model.spec.operations["generate"]
    feeds = v.feeds(op, z=req.z, y=req.labels)
    if "truncation" in req.extra:  # the style model's truncated generator: z and psi [N]
        op = model.spec.operations["generate_truncated"]
        feeds = {"z": req.z, "psi": np.full((len(req.z),), req.extra["truncation"], np.float32)}

    def job(token):
        (images,) = finite(model.reader.run_feeds(op.name, feeds, token), "generate")
        meta = {"n": len(images), "seed": req.seed, **req.extra}
        if req.labels is not None:
            meta["labels"] = req.labels.tolist()
        return images_response(model, images, req.format, meta)
    return job


def interpolate(model, body: dict, accept, limits):
    req = v.parse_interpolate(body, model.spec, model.name, limits, accept)
    op = model.spec.operations["generate"]

    def job(token):
        (images,) = finite(model.reader.run_feeds("generate", v.feeds(op, z=req.z, y=req.labels), token), "interpolate")
        meta = {**req.extra, "seeds": req.seeds}
        if req.labels is not None:
            meta["label"] = int(req.labels[0])
        return images_response(model, images, req.format, meta, columns=len(images))
    return job


def mix(model, body: dict, accept, limits):
    req = v.parse_mix(body, model.spec, model.name, limits, accept)
    layer, num_ws, k = req.extra["layer"], req.extra["num_ws"], len(req.z)

    def job(token):
        (w,) = finite(model.reader.run_feeds("mapping", {"z": req.z}, token), "mix")
        # Row i, column j: layers < layer take seeds[i]'s w, the rest seeds[j]'s.
        coarse = np.repeat(w[:, None, None, :], k, axis=1)  # [i, j, 1, w_dim]
        fine = np.repeat(w[None, :, None, :], k, axis=0)
        ws = np.concatenate([np.repeat(coarse, layer, axis=2), np.repeat(fine, num_ws - layer, axis=2)], axis=2)
        (images,) = finite(model.reader.run_feeds(
            "synthesis", {"ws": ws.reshape(k * k, num_ws, -1).astype(np.float32)}, token), "mix")
        meta = {"n": len(images), "seeds": req.seeds, "layer": layer, "num_ws": num_ws}
        return images_response(model, images, req.format, meta, columns=k)
    return job


def encode(model, body: dict, accept, limits):
    op = model.spec.operations["encode"]
    req = v.parse_images(body, model.spec, model.name, limits, accept, "encode", op)

    def job(token):
        outputs = finite(model.reader.run_feeds("encode", v.feeds(op, x=req.x, y=req.labels), token), "encode")
        return json_response({"model": model.name, **{n: array_list(o) for n, o in zip(op.outputs, outputs)}})
    return job


def reconstruct(model, body: dict, accept, limits):
    op = model.spec.operations["reconstruct"]
    req = v.parse_images(body, model.spec, model.name, limits, accept, "reconstruct", op)

    def job(token):
        (images,) = finite(model.reader.run_feeds("reconstruct", v.feeds(op, x=req.x, y=req.labels), token), "reconstruct")
        return images_response(model, images, req.format, {"n": len(images)})
    return job


def translate(model, body: dict, accept, limits, upload: bytes | None = None):
    req = v.parse_translate(body, model.spec, model.name, limits, accept, upload)
    op = model.spec.operations[req.extra["operation"]]
    out = op.output_specs[0] if op.output_specs else None

    def job(token):
        (images,) = finite(model.reader.run_feeds(op.name, {op.inputs[0].name: req.x}, token), "translate")
        meta = {"n": len(images), **req.extra}
        return images_response(model, images, req.format, meta,
                               value_range=out.value_range if out is not None else None)
    return job


HANDLERS = {"generate": generate, "interpolate": interpolate, "mix": mix, "encode": encode,
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
        raise RequestError(404, f"model {name!r} ({model.spec.kind}) has no {op} endpoint; it offers "
                                f":{', :'.join(model.operations)}")
    settings = server.settings
    with server.admit():
        raw = await read_body(request, settings.limits.max_body_bytes, settings.body_timeout_s)
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
