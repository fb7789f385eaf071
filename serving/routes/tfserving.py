"""``POST /v1/models/{name}:predict``: TensorFlow Serving's REST predict, on any operation the
export lists (``signature_name``; ``serving_default`` is ``generate``)."""
from __future__ import annotations

from serving import validation as v
from serving.responses import array_list, finite, json_response


def predict(model, body: dict, accept, limits):
    """Validate now; return the work to run in the inference pool."""
    op, feeds, rows = v.parse_predict(body, model.adapter, limits)

    def job(token):
        outputs = dict(zip(op.outputs, finite(model.reader.run_feeds(op.name, feeds, token), "predict")))
        if rows:
            if len(outputs) == 1:
                return json_response({"predictions": array_list(next(iter(outputs.values())))})
            listed = {n: array_list(o) for n, o in outputs.items()}
            count = len(next(iter(listed.values())))
            return json_response({"predictions": [{n: listed[n][i] for n in listed} for i in range(count)]})
        if len(outputs) == 1:
            return json_response({"outputs": array_list(next(iter(outputs.values())))})
        return json_response({"outputs": {n: array_list(o) for n, o in outputs.items()}})
    return job
