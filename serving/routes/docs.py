"""``/docs`` and ``/openapi.json``: Swagger UI served from the installed ``swagger-ui-bundle``
package (no CDN, so the page works offline), showing an OpenAPI document that describes each
operation — its path, request body (fields, types, limits), answers and examples.

All operations share one route (``POST /v1/models/{name}:{operation}``, dispatched in
:mod:`serving.routes.operations`), so the document lists them as one path per operation, built here, with the
bodies of :mod:`serving.schemas`. It is OpenAPI 3.0 (not FastAPI's default 3.1), the version the
bundled Swagger UI 4 renders. Examples that depend on a model's shapes (codes, images) are made
for the models being served, so "Try it out" sends a request that works.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from serving.schemas import bodies
from serving.validation import Limits

ASSETS = "/docs-assets"
OPERATIONS = {
    "generate": ("Generate images", "GenerateRequest", "Images"),
    "interpolate": ("Interpolate between two codes", "InterpolateRequest", "Images"),
    "codes": ("The latent codes of seeds", "CodesRequest", "Codes"),
    "mix": ("Style mixing (style-based generators)", "MixRequest", "Images"),
    "encode": ("Encode images (posterior mean and log-variance)", "EncodeRequest", "Encoding"),
    "reconstruct": ("Reconstruct images", "ReconstructRequest", "Images"),
    "translate": ("Translate images (image-to-image models)", "TranslateRequest", "Images"),
    "predict": ("TensorFlow Serving's REST predict", "PredictRequest", "Prediction"),
}
PNG_ANSWERS = ("generate", "interpolate", "mix", "reconstruct", "translate")
TAGS = [{"name": "operations", "description": "POST a JSON body to `/v1/models/{name}:{operation}`"},
        {"name": "models", "description": "what is served (from the export manifests)"},
        {"name": "service", "description": "liveness, readiness and Prometheus metrics"}]
# Example codes and images are only put in the document up to this many numbers: a bigger body
# would make Swagger UI slow and the page long.
MAX_EXAMPLE_VALUES = 4096


def install(app: FastAPI, limits: Limits) -> None:
    """Serve ``/docs`` (with its assets under ``/docs-assets``) and this module's OpenAPI
    document at the app's ``openapi_url``. The app is built with ``docs_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    async def docs_page(request: Request):
        request.state.metric = ("", "docs")
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url, title=f"{app.title} · API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0,
                                   "docExpansion": "list"})

    app.add_api_route("/docs", docs_page, methods=["GET"], include_in_schema=False)
    app.openapi = lambda: document(app, limits)


def document(app: FastAPI, limits: Limits) -> dict:
    """The OpenAPI 3.0 document: FastAPI's for the plain routes, with the one generic
    ``POST /v1/models/{target}`` replaced by a path per operation. Built per request (it is
    cheap) so that its examples follow the models served after a reload."""
    doc = get_openapi(title=app.title, version=app.version, openapi_version="3.0.3", routes=app.routes,
                      description="Generate, interpolate, encode and reconstruct images with the exported "
                                  "models this server holds. Every error is `{\"error\": \"<what is wrong>\"}`. "
                                  "The web page is at [/](/).", tags=TAGS)
    store = getattr(app.state.server, "store", None)
    served = [m.describe() for _, m in sorted(store.models.items())] if store is not None else []
    models, paths = bodies(limits), {}
    for path, item in doc["paths"].items():
        if path.startswith("/v1/models/{"):  # GET describe; its POST becomes the operations below
            paths["/v1/models/{name}"] = {"get": _describe(item["get"], served)}
            for op in OPERATIONS:
                paths[f"/v1/models/{{name}}:{op}"] = {"post": _operation(op, models, limits, served)}
            continue
        for method in item.values():
            method["tags"] = ["models" if path.startswith("/v1/") else "service"]
            method.get("responses", {}).pop("422", None)  # FastAPI's default; this server never says 422
        paths[path] = item
    doc["paths"] = paths
    schemas = {name: _clean(model.model_json_schema(ref_template="#/components/schemas/{model}"))
               for name, model in models.items()}
    for schema in list(schemas.values()):
        schemas.update(schema.pop("$defs", {}))
    doc["components"] = {"schemas": schemas}
    return doc


def _clean(schema):
    """JSON Schema from pydantic → OpenAPI 3.0: ``const`` as a one-value ``enum``, no
    ``default: null`` for optional fields and no per-field titles (noise in Swagger UI)."""
    if isinstance(schema, dict):
        if "const" in schema:
            schema = {**schema, "enum": [schema["const"]]}
            del schema["const"]
        props = schema.get("properties")
        if isinstance(props, dict):
            for field in props.values():
                field.pop("title", None)
                if field.get("default", 0) is None:
                    del field["default"]
        return {k: _clean(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _name_parameter(served: list[dict], op: str | None = None) -> dict:
    names = [m["name"] for m in served if op is None or op in m["operations"]]
    schema = {"type": "string"}
    if names:
        schema["enum"], schema["example"] = names, names[0]
    offered = f" (served here with :{op}: {', '.join(names) or 'none'})" if op else ""
    return {"name": "name", "in": "path", "required": True, "schema": schema,
            "description": f"the model, as listed by GET /v1/models{offered}"}


def _describe(get: dict, served: list[dict]) -> dict:
    get.pop("parameters", None)
    get["responses"].pop("422", None)
    return {**get, "tags": ["models"], "summary": "Describe a model",
            "description": "kind, latent_dim, image_shape, value_range, num_classes, conditional, operations, "
                           "endpoints (inputs, ordered outputs), backend, source, run id, manifest sha256",
            "parameters": [_name_parameter(served)],
            "responses": {**get["responses"], "404": _error("no such model, or it was refused at load",
                                                            "unknown model 'nope'; served models: vae")}}


def _error(description: str, *examples: str) -> dict:
    content = {"schema": _ref("Error")}
    if examples:
        content["examples"] = {f"e{i}": {"summary": e, "value": {"error": e}} for i, e in enumerate(examples)}
    return {"description": description, "content": {"application/json": content}}


def _operation(op: str, models: dict, limits: Limits, served: list[dict]) -> dict:
    summary, request, answer = OPERATIONS[op]
    accepts = "application/json or image/png" if op in PNG_ANSWERS else "application/json"
    ok = {"application/json": {"schema": _ref(answer)}}
    if op in PNG_ANSWERS:
        ok["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    headers = {"X-Grid": {"description": "PNG answers: the grid's rows x columns (images 2 px apart on black)",
                          "schema": {"type": "string", "example": "4x4"}}} if op in PNG_ANSWERS else {}
    if op == "generate":
        headers["X-Seed"] = {"description": "PNG answers: the seed used (also when the server picked it)",
                             "schema": {"type": "integer"}}
    responses = {
        "200": {"description": "the answer" + (": JSON, or a PNG grid (`format`, or Accept: image/png)"
                                               if op in PNG_ANSWERS else ""),
                "headers": headers, "content": ok},
        "400": _error("a field is missing, unknown or out of range; the message names it",
                      *_bad_request_examples(op, limits)),
        "404": _error("no such model, or the model has no such operation",
                      f"model 'dcgan' (dcgan) has no {op} endpoint; it offers :generate, :interpolate, :codes, :predict"
                      if op in ("encode", "reconstruct", "mix", "translate") else "unknown model 'nope'; served models: vae"),
        "406": _error("the Accept header asks for a type this operation does not answer",
                      f"cannot answer Accept: 'text/html'; this operation answers {accepts} (set the Accept "
                      "header or the 'format' field)"),
        "413": _error(f"the body is over --max-body-bytes ({limits.max_body_bytes} bytes here)",
                      f"request body of {limits.max_body_bytes + 1} bytes exceeds the limit of "
                      f"{limits.max_body_bytes} bytes (--max-body-bytes)"),
        "415": _error("the Content-Type is not application/json" + (" or image/png" if op == "translate" else ""),
                      "Content-Type must be application/json" + (" or image/png (one image uploaded as the body)"
                                                                   if op == "translate" else "") + "; got 'text/plain'"),
        "503": _error("the request outlived the timeout, or models are still loading (Retry-After)",
                      "models are still loading; retry shortly"),
    }
    if op == "predict":  # TensorFlow Serving's predict answers JSON whatever the Accept header says
        del responses["406"]
    content = {"application/json": {"schema": _ref(request), "examples": examples(op, served)}}
    parameters = [_name_parameter(served, op)]
    if op == "translate":  # one PNG as the body; its options in the query string
        content["image/png"] = {"schema": {"type": "string", "format": "binary"}}
        parameters += [
            {"name": "direction", "in": "query", "required": False, "schema": {"type": "string", "enum": ["a2b", "b2a"]},
             "description": "PNG uploads to CycleGAN models: the direction (default a2b)"},
            {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "png"]},
             "description": "PNG uploads: the answer's format (else the Accept header decides)"}]
    return {
        "tags": ["operations"], "summary": summary, "operationId": op,
        "description": models[request].__doc__.strip(),
        "parameters": parameters,
        "requestBody": {"required": True, "content": content},
        "responses": responses,
    }


def _bad_request_examples(op: str, limits: Limits) -> tuple[str, ...]:
    return {
        "generate": (f"n={limits.max_n + 1} is over the limit of {limits.max_n} images per request",
                     "seed=-1 is too small; it must be at least 0",
                     "unknown field 'sed' for :generate; the fields are format, label, labels, n, seed, z"),
        "mix": ("layer=9 is over the limit of 5 (the model has 6 style layers: 1 .. 5 swap)",),
        "codes": ("give either 'seeds' (one code each) or 'n'/'seed', not both",),
        "interpolate": (f"steps={limits.max_steps + 1} is over the limit of {limits.max_steps} frames per request",
                        "give either 'seeds' ([seed_a, seed_b]) or 'z' ([z_a, z_b]), exactly one"),
        "encode": ("images must lie in the model's value range [0, 1]; found values from 0 to 255",),
        "reconstruct": ("images must lie in the model's value range [0, 1]; found values from 0 to 255",),
        "translate": ("images must lie in translate's input range [-1, 1]; found values from 0 to 255",
                      "PNG upload: the PNG is 64x64 pixels (refused before decoding); this operation takes 7x7 "
                      "images (shape [7, 7, 1])"),
        "predict": ("give 'instances' (row format) or 'inputs' (columnar format), exactly one, as in "
                    "TensorFlow Serving's REST API",),
    }[op]


def generator(model: dict) -> str | None:
    """The operation ``serving_default`` runs on a described model: its generator with the fewest
    inputs, or None."""
    ops = [(len(ep["inputs"]), name) for name, ep in model["endpoints"].items() if ep.get("task") == "generate"]
    return min(ops)[1] if ops else None


def examples(op: str, served: list[dict]) -> dict:
    """Request examples: a key ``any``/``any-*`` works on every model that offers ``op``,
    ``conditional-*`` on conditional ones, ``<model name>`` on that model only."""
    if op == "generate":
        out = {"any": {"summary": "16 images from seed 7 (JSON)", "value": {"n": 16, "seed": 7}},
               "any-png": {"summary": "one PNG grid of 16 images from seed 7",
                           "value": {"n": 16, "seed": 7, "format": "png"}}}
        if any(m["conditional"] for m in served):
            out["conditional-class"] = {"summary": "conditional models: 8 images of class 3, PNG",
                                        "value": {"n": 8, "seed": 7, "label": 3, "format": "png"}}
        if any(i.get("role") == "truncation" for m in served for ep in m["endpoints"].values() for i in ep["inputs"]):
            out["style-truncation"] = {"summary": "style-based models: 16 images truncated to psi 0.7, PNG",
                                       "value": {"n": 16, "seed": 7, "truncation": 0.7, "format": "png"}}
        return out
    if op == "codes":
        return {"any": {"summary": "the codes of seeds 7 and 8", "value": {"seeds": [7, 8]}}}
    if op == "mix":
        return {"any": {"summary": "the 4x4 mixing grid of seeds 1-4, styles swapped from layer 2 (PNG)",
                        "value": {"seeds": [1, 2, 3, 4], "layer": 2, "format": "png"}}}
    if op == "interpolate":
        return {"any": {"summary": "8 frames on the sphere between seeds 1 and 2 (JSON)",
                        "value": {"seeds": [1, 2], "steps": 8, "method": "slerp"}},
                "any-png": {"summary": "the same as one PNG row",
                            "value": {"seeds": [1, 2], "steps": 8, "method": "slerp", "format": "png"}}}
    out = {}
    for m in served:
        if op not in m["operations"]:
            continue
        label = {"label": 0} if m["conditional"] else {}
        if op == "translate":
            for t in m.get("translations", []):
                h, w, c = t["input"]["shape"][1:]
                lo = (t["input"].get("value_range") or m["value_range"])[0]
                if h * w * c > MAX_EXAMPLE_VALUES:
                    continue
                image = [[lo] * w for _ in range(h)] if c == 1 else [[[lo] * c] * w for _ in range(h)]
                key, way = (m["name"], {}) if t["direction"] is None else (f"{m['name']}-{t['direction']}",
                                                                           {"direction": t["direction"]})
                out[key] = {"summary": f"{key}: one blank {h}x{w}x{c} image", "value": {"images": [image], **way}}
            continue
        if op in ("encode", "reconstruct"):
            h, w, c = m["image_shape"]
            if h * w * c > MAX_EXAMPLE_VALUES:
                continue
            lo = m["value_range"][0]
            image = [[lo] * w for _ in range(h)] if c == 1 else [[[lo] * c] * w for _ in range(h)]
            fmt = {"format": "png"} if op == "reconstruct" else {}
            out[m["name"]] = {"summary": f"{m['name']}: one blank {h}x{w}x{c} image",
                              "value": {"images": [image], **label, **fmt}}
        elif generator(m) is not None:  # predict: one zero code through the generator
            inputs = m["endpoints"][generator(m)]["inputs"]
            row = {i["name"]: (i.get("value_range") or [0])[0] if i["dtype"].startswith("int") else
                   [0.0] * i["shape"][1] for i in inputs}
            if m["latent_dim"] > MAX_EXAMPLE_VALUES:
                continue
            value = {"instances": list(row.values()) if len(row) == 1 else [row]}
            out[m["name"]] = {"summary": f"{m['name']}: the image of the zero code (row format)", "value": value}
    return out
