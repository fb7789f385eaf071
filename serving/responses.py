"""Response bodies: compact JSON (errors always ``{"error": "<what is wrong>"}``, TensorFlow
Serving's shape) and PNG grids of images."""
from __future__ import annotations

import json

import numpy as np
from fastapi.responses import Response

from gen_keras.images import grid_png, grid_shape
from serving.errors import RequestError


def json_response(payload: dict, status: int = 200, headers: dict | None = None) -> Response:
    """Strict JSON: NaN and infinity are not JSON, so they never reach a body (outputs are
    checked by :func:`finite` first; this is the last guard)."""
    return Response(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode(), status,
                    headers=headers, media_type="application/json")


def finite(outputs, operation: str):
    """``outputs`` (arrays) unchanged, or a 422 when the model produced NaN or infinity for these
    inputs (e.g. latent codes far outside the prior), which neither JSON nor a PNG can carry."""
    for out in outputs:
        if not np.isfinite(out).all():
            raise RequestError(422, f":{operation} produced non-finite values (NaN or infinity) for "
                                    "these inputs; the model is only defined near the data it was "
                                    "trained on (latent codes of size ~1, images in its value range)")
    return outputs


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def array_list(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype="float64"), 6).tolist()


def images_response(model, images, fmt: str, meta: dict, columns=None, value_range=None) -> Response:
    """``images`` as a PNG grid (with ``X-Grid`` and the seeds in headers) or as JSON;
    ``value_range`` is the model's unless given (a translation's output range)."""
    value_range = tuple(value_range or model.spec.value_range)
    if fmt == "png":
        rows, cols = grid_shape(len(images), columns)
        headers = {"X-Grid": f"{rows}x{cols}", "Cache-Control": "no-store"}
        headers.update({f"X-{k.capitalize()}": str(val) for k, val in meta.items()
                        if k in ("seed", "seeds", "method", "steps", "direction") and val is not None})
        return Response(grid_png(images, value_range, columns), media_type="image/png",
                        headers=headers)
    return json_response({"model": model.name, **meta, "value_range": list(value_range),
                          "shape": list(images.shape), "images": array_list(images)})
