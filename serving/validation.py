"""Request bodies → validated request values. Every rejection is a
:class:`~serving.errors.RequestError` whose message names the field and what is wrong with it, so a
client can fix the request without reading code.

Nothing here runs a model or names a tensor: each ``parse_*`` returns the operation to run and
the request-level :class:`~gen_keras.exported.adapter.Values` (codes or seeds, images, labels,
truncation, crossover) that the export's adapter turns into feeds by the roles its manifest
declares. Which operations a model offers is the adapter's to say.
"""
from __future__ import annotations

import dataclasses
import json
import math
import secrets

import numpy as np

from gen_keras.exported.adapter import Adapter, InputError, Values
from gen_keras.exported.latents import METHODS, interpolate, sample_prior
from gen_keras.exported.manifest import ExportSpec, OperationSpec
from serving.errors import RequestError

MAX_SEED = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Limits:
    max_n: int = 64  # images per request (generate, encode, reconstruct, predict instances)
    max_steps: int = 64  # interpolation frames per request
    max_body_bytes: int = 4 * 2**20


def _short(value) -> str:
    """A value for a message, at most 60 characters (never fails: a value nested too deep to
    encode is described instead)."""
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (RecursionError, ValueError, TypeError):
        text = f"a JSON {_json_type(value)} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


# -- the body -----------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise RequestError(400, f"{name} is not a valid JSON number; every value must be finite")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode_json(raw: bytes, content_type: str | None, uploads: bool = False) -> dict:
    """The JSON object of a body (``uploads``: the operation also takes a PNG body, which the
    415 message then names)."""
    if media_type(content_type) != "application/json":
        got = f"got {content_type!r}" if content_type else "the request has no Content-Type header"
        also = " or image/png (one image uploaded as the body)" if uploads else ""
        raise RequestError(415, f"Content-Type must be application/json{also}; {got}")
    if not raw.strip():
        raise RequestError(400, "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the request body is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"the request body must be a JSON object, got a JSON "
                                f"{_json_type(body)}")
    return body


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are all different: ``{"n": 100000, "n": 1}`` is refused rather
    than read as its last value (a check in front could have seen the first)."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise RequestError(400, f"the JSON object names {_short(duplicate)} more than once; give each field once")
    return body


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(v), type(v).__name__)


def check_fields(body: dict, allowed, operation: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r} for :{operation}; the fields are "
                                f"{', '.join(sorted(allowed))}")


# -- scalars --------------------------------------------------------------------------------------
def integer(body: dict, key: str, default, lo: int, hi: int, limit_note: str = "") -> int:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(400, f"{key} must be an integer, got {_short(v)}")
    if v < lo:
        raise RequestError(400, f"{key}={v} is too small; it must be at least {lo}")
    if v > hi:
        raise RequestError(400, f"{key}={_short(v)} is over the limit of {hi}{limit_note}")
    return v


def choice(body: dict, key: str, default: str, options) -> str:
    v = body.get(key, default)
    if v not in options:
        raise RequestError(400, f"{key}={_short(v)} is not one of {', '.join(options)}")
    return v


def response_format(body: dict, accept: str | None, options=("json", "png")) -> str:
    """The ``format`` field if given, else the Accept header: ``image/png`` → png,
    ``application/json`` or a wildcard → json (q-values are not weighed)."""
    if "format" in body:
        return choice(body, "format", "json", options)
    types = [part.split(";")[0].strip().lower() for part in (accept or "*/*").split(",")]
    if "png" in options and "image/png" in types and "application/json" not in types:
        return "png"
    if any(t in ("application/json", "application/*", "*/*") for t in types):
        return "json"
    if "png" in options and "image/*" in types:
        return "png"
    media = " or ".join({"json": "application/json", "png": "image/png"}[o] for o in options)
    raise RequestError(406, f"cannot answer Accept: {accept!r}; this operation answers {media} "
                            "(set the Accept header or the 'format' field)")


# -- arrays ---------------------------------------------------------------------------------------
def _path(field: str, index) -> str:
    return field + "".join(f"[{i}]" for i in index)


def _shape_problem(value, want: tuple, field: str, index=()) -> str:
    """The first place where nested lists ``value`` differ from the shape ``want``."""
    if not want:
        return f"{_path(field, index)} is a list where a number belongs"
    if not isinstance(value, list):
        return f"{_path(field, index)} is {_short(value)}, where a list of {want[0]} belongs"
    if len(value) != want[0]:
        return f"{_path(field, index)} has {len(value)} entries; {want[0]} expected"
    for i, item in enumerate(value):
        if len(want) > 1 or isinstance(item, list):
            problem = _shape_problem(item, want[1:], field, index + (i,))
            if problem:
                return problem
    return ""


def numbers(value, field: str, inner: tuple, max_rows: int, what: str, rows: int | None = None) -> np.ndarray:
    """Nested lists of finite numbers, shape [rows, *inner] → float32 array."""
    if not isinstance(value, list):
        raise RequestError(400, f"{field} must be a list of {what}, got {_short(value)}")
    if rows is not None and len(value) != rows:
        raise RequestError(400, f"{field} must hold exactly {rows} {what}; it has {len(value)}")
    if not value:
        raise RequestError(400, f"{field} is empty; give at least 1 of {what}")
    if len(value) > max_rows:
        raise RequestError(400, f"{field} holds {len(value)} {what}; the limit is {max_rows} per request")
    want = (len(value), *inner)
    try:
        grid = np.array(value, dtype=object)
    except ValueError:
        grid = None
    if grid is None or grid.shape != want:
        problem = _shape_problem(value, want, field)
        raise RequestError(400, f"{field} must have shape {list(want)} ({what}): {problem or 'ragged lists'}")
    flat = grid.ravel()
    for i, v in enumerate(flat):
        if type(v) is not float and type(v) is not int:
            where = _path(field, np.unravel_index(i, want))
            raise RequestError(400, f"{where} is {_short(v)}, not a number")
    try:
        wide = flat.astype("float64")
    except OverflowError:
        wide = np.array([float("inf") if abs(v) > 1e308 else v for v in flat], dtype="float64")
    out = wide.astype("float32").reshape(want)
    finite = np.isfinite(out)
    if not finite.all():
        i = int(np.argmin(finite.ravel()))
        raise RequestError(400, f"{_path(field, np.unravel_index(i, want))} = {_short(flat[i])} is not "
                                "a finite float32 number (|value| must stay below 3.4e38)")
    return out


def integers(value, field: str, n: int, lo: int, hi: int, what: str = "class label",
             short: str = "label") -> np.ndarray:
    """One integer per example, each in ``lo .. hi`` → int array (``what``: a class label, a
    crossover layer, ...)."""
    if not isinstance(value, list):
        raise RequestError(400, f"{field} must be a list of integer {what}s, got {_short(value)}")
    if len(value) != n:
        raise RequestError(400, f"{field} has {len(value)} {short}s for {n} images; give one per image")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise RequestError(400, f"{field}[{i}] is {_short(v)}, not an integer {what}")
        if not lo <= v <= hi:
            raise RequestError(400, f"{field}[{i}]={_short(v)} is outside the {short} range {lo}..{hi}")
    return np.asarray(value, dtype="int64")


def labels(body: dict, spec: ExportSpec, model: str, n: int, required: bool = False) -> np.ndarray | None:
    """``labels`` (one per image) or ``label`` (one for all) for conditional models; an
    unconditional model refuses both. Without either, generation cycles 0, 1, 2, ..."""
    given = [k for k in ("labels", "label") if k in body]
    if not spec.conditional:
        if given:
            raise RequestError(400, f"model {model!r} is not conditional; it takes no {given[0]!r} "
                                    "(remove the field)")
        return None
    if len(given) == 2:
        raise RequestError(400, "give either 'labels' (one per image) or 'label' (one for all), not both")
    if given == ["label"]:
        return integers([body["label"]], "label", 1, 0, spec.num_classes - 1).repeat(n)
    if given == ["labels"]:
        return integers(body["labels"], "labels", n, 0, spec.num_classes - 1)
    if required:
        raise RequestError(400, f"model {model!r} is conditional: give 'labels' (one per image) or "
                                f"'label' (0..{spec.num_classes - 1})")
    return np.arange(n, dtype="int64") % spec.num_classes


# -- operations -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Parsed:
    """What a request asks for: the operation, its values, the answer's format and what the
    answer reports beside the images (seed, seeds, steps, ...)."""
    op: OperationSpec
    values: Values
    format: str = "json"
    meta: dict = dataclasses.field(default_factory=dict)
    columns: int | None = None  # a PNG grid's columns (a row per interpolation, k per mixing grid)


def feeds_for(adapter: Adapter, parsed: Parsed) -> dict[str, np.ndarray]:
    """The operation's feeds from the parsed values (the adapter's checks, as a 400)."""
    try:
        return adapter.feeds(parsed.op, parsed.values)
    except InputError as exc:
        raise RequestError(400, str(exc)) from None


def truncation(body: dict, adapter: Adapter, model: str) -> float | None:
    """``truncation`` (psi, inside the range the generator's truncation input declares) where the
    model has one."""
    if "truncation" not in body:
        return None
    spec = adapter.truncation
    if spec is None:
        raise RequestError(400, f"truncation: model {model!r} ({adapter.spec.kind}) has no truncation; only "
                                "generators with a truncation input (style-based ones) have it")
    lo, hi = spec.value_range or (0.0, 1.0)
    v = body["truncation"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise RequestError(400, f"truncation={_short(v)} must be a number in [{lo:g}, {hi:g}] (psi: 0 = the average "
                                "style, 1 = no truncation)")
    return float(v)


def parse_generate(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None) -> Parsed:
    spec = adapter.spec
    psi = truncation(body, adapter, model)
    style = {"truncation"} if adapter.truncation is not None else set()
    check_fields(body, {"n", "seed", "z", "labels", "label", "format"} | style, "generate")
    fmt = response_format(body, accept)
    if "z" in body:
        if "n" in body or "seed" in body:
            raise RequestError(400, "give either 'z' (explicit codes) or 'n'/'seed', not both")
        z = numbers(body["z"], "z", (spec.latent_dim,), limits.max_n,
                    f"latent codes of length {spec.latent_dim} (the model's latent_dim)")
        seed = None
    else:
        n = integer(body, "n", min(16, limits.max_n), 1, limits.max_n, " images per request")
        # Without a seed, draw one and report it, so any grid can be reproduced.
        seed = integer(body, "seed", 0, 0, MAX_SEED) if "seed" in body else secrets.randbelow(2**31)
        z = sample_prior(n, spec.latent_dim, seed)
    y = labels(body, spec, model, len(z))
    values = Values(codes=z, labels=y, truncation=psi)
    meta = {"n": len(z), "seed": seed, **({} if psi is None else {"truncation": psi})}
    if y is not None:
        meta["labels"] = y.tolist()
    return Parsed(adapter.for_task("generate", values), values, fmt, meta)


def parse_codes(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None) -> Parsed:
    """``:codes``: the latent codes the one rule draws — one per seed of ``seeds``, or ``n``
    from one ``seed`` (exactly the codes ``:generate`` with the same fields uses)."""
    spec = adapter.spec
    check_fields(body, {"seeds", "n", "seed", "format"}, "codes")
    response_format(body, accept, ("json",))
    if "seeds" in body:
        if "n" in body or "seed" in body:
            raise RequestError(400, "give either 'seeds' (one code each) or 'n'/'seed', not both")
        seeds = body["seeds"]
        if not isinstance(seeds, list) or not 1 <= len(seeds) <= limits.max_n:
            raise RequestError(400, f"seeds must be a list of 1 to {limits.max_n} integer seeds, got {_short(seeds)}")
        for i in range(len(seeds)):
            integer({f"seeds[{i}]": seeds[i]}, f"seeds[{i}]", 0, 0, MAX_SEED)
        values, meta = Values(seeds=seeds), {"seeds": seeds}
    else:
        n = integer(body, "n", 1, 1, limits.max_n, " codes per request")
        seed = integer(body, "seed", 0, 0, MAX_SEED) if "seed" in body else secrets.randbelow(2**31)
        values, meta = Values(codes=sample_prior(n, spec.latent_dim, seed)), {"n": n, "seed": seed}
    return Parsed(adapter.for_task("generate"), values, "json", meta)


MAX_MIX_SEEDS = 8


def parse_mix(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None) -> Parsed:
    """``seeds`` (2..8) and ``layer``: the style-mixing grid, row i / column j = the styles of
    seeds[i] before ``layer`` (coarse: pose, thickness) and of seeds[j] from ``layer`` on (fine).
    The layers and the default come from the mix operation's crossover input."""
    check_fields(body, {"seeds", "layer", "format"}, "mix")
    fmt = response_format(body, accept)
    op = adapter.for_task("mix")
    crossover = op.input_for("crossover")
    first, last = (int(v) for v in crossover.value_range)
    num_ws = last + 1
    seeds = body.get("seeds")
    if not isinstance(seeds, list) or not 2 <= len(seeds) <= MAX_MIX_SEEDS:
        raise RequestError(400, f"seeds must be a list of 2 to {MAX_MIX_SEEDS} integer seeds, got {_short(seeds)}")
    for i in range(len(seeds)):
        integer({f"seeds[{i}]": seeds[i]}, f"seeds[{i}]", 0, 0, MAX_SEED)
    k = len(seeds)
    if k ** 2 > limits.max_n:
        raise RequestError(400, f"seeds: {k} seeds make {k ** 2} images, over the limit of "
                                f"{limits.max_n} images per request")
    layer = integer(body, "layer", int(crossover.default), first, last,
                    f" (the model has {num_ws} style layers: {first} .. {last} swap)")
    # Row i, column j: layers before `layer` from seeds[i], the rest from seeds[j].
    values = Values(seeds=[s for s in seeds for _ in seeds], mixing_seeds=seeds * k, crossover=layer)
    return Parsed(op, values, fmt, {"n": k * k, "seeds": seeds, "layer": layer, "num_ws": num_ws}, columns=k)


def parse_interpolate(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None) -> Parsed:
    spec = adapter.spec
    check_fields(body, {"seeds", "z", "steps", "method", "label", "format"}, "interpolate")
    fmt = response_format(body, accept)
    steps = integer(body, "steps", min(8, limits.max_steps), 2, limits.max_steps, " frames per request")
    method = choice(body, "method", "linear", METHODS)
    if ("seeds" in body) == ("z" in body):
        raise RequestError(400, "give either 'seeds' ([seed_a, seed_b]) or 'z' ([z_a, z_b]), exactly one")
    seeds = None
    if "z" in body:
        ends = numbers(body["z"], "z", (spec.latent_dim,), 2,
                       f"latent codes of length {spec.latent_dim} (the model's latent_dim)", rows=2)
    else:
        seeds = body["seeds"]
        if not isinstance(seeds, list) or len(seeds) != 2:
            raise RequestError(400, f"seeds must be a list of two integer seeds, got {_short(seeds)}")
        for i in range(2):
            integer({f"seeds[{i}]": seeds[i]}, f"seeds[{i}]", 0, 0, MAX_SEED)
        ends = np.stack([sample_prior(1, spec.latent_dim, s)[0] for s in seeds])
    z = interpolate(ends[0], ends[1], steps, method)
    y = None
    if spec.conditional:
        y = labels({"label": body.get("label", 0)}, spec, model, steps)
    elif "label" in body:
        labels(body, spec, model, steps)  # raises: unconditional
    meta = {"steps": steps, "method": method, "seeds": seeds}
    if y is not None:
        meta["label"] = int(y[0])
    values = Values(codes=z, labels=y)
    return Parsed(adapter.for_task("generate"), values, fmt, meta, columns=steps)


def parse_images(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None,
                 operation: str) -> Parsed:
    """``:encode`` / ``:reconstruct``: images of the model's shape, inside its input's range."""
    spec = adapter.spec
    op = adapter.for_task(operation)
    check_fields(body, {"images", "labels", "label", "format"}, operation)
    fmt = response_format(body, accept, ("json", "png") if operation == "reconstruct" else ("json",))
    if "images" not in body:
        raise RequestError(400, f":{operation} needs 'images': a list of images of shape "
                                f"{list(spec.image_shape)}")
    x = image_array(body["images"], tuple(spec.image_shape), limits)
    in_value_range(x, op.input_for("image").value_range or spec.value_range, "images")
    y = labels(body, spec, model, len(x), required=op.input_for("label") is not None)
    return Parsed(op, Values(images=x, labels=y), fmt, {"n": len(x)})


def image_array(value, shape: tuple, limits: Limits, field: str = "images", note: str = "") -> np.ndarray:
    """A JSON list of images of ``shape`` [h, w, c] → float32 [n, h, w, c]; grey images
    (c = 1) may leave out the channel axis: [n, h, w]."""
    h, w, c = shape
    what = f"images of shape {list(shape)}{note}"
    if c == 1 and isinstance(value, list) and value and isinstance(value[0], list) and value[0] \
            and isinstance(value[0][0], list) and value[0][0] and not isinstance(value[0][0][0], list):
        return numbers(value, field, (h, w), limits.max_n, what)[..., None]
    return numbers(value, field, (h, w, c), limits.max_n, what)


def in_value_range(x: np.ndarray, value_range, field: str, whose: str = "the model's value range") -> None:
    """Images outside the model's value range are refused (the model never saw such values)."""
    lo, hi = value_range
    if x.min() < lo or x.max() > hi:
        raise RequestError(400, f"{field} must lie in {whose} [{lo:g}, {hi:g}]; found "
                                f"values from {float(x.min()):g} to {float(x.max()):g}")


# -- image-to-image ---------------------------------------------------------------------------------
TRANSLATE_FIELDS = ("images", "direction", "format")


def parse_translate(body: dict, adapter: Adapter, model: str, limits: Limits, accept: str | None,
                    upload: bytes | None = None) -> Parsed:
    """Images (``images`` in a JSON body, or one PNG uploaded as the body with ``direction`` and
    ``format`` as query parameters) → the operation's input, checked against the shape and value
    range its manifest gives."""
    from gen_keras.images import PNGError, decode_png

    spec = adapter.spec
    check_fields(body, TRANSLATE_FIELDS if upload is None else ("direction", "format"), "translate")
    fmt = response_format(body, accept)
    ways = adapter.translations
    direction = body.get("direction")
    if list(ways) == [None]:
        if direction is not None:
            raise RequestError(400, f"direction: model {model!r} ({spec.kind}) translates one way only; "
                                    "remove the field")
    else:
        direction = choice(body, "direction", next(iter(ways)), list(ways))
    op = adapter.operation(ways[direction])
    x_spec = op.input_for("image")
    shape, lo_hi = tuple(x_spec.shape[1:]), x_spec.value_range or spec.value_range
    where = f"{op.name}'s input range"
    if upload is not None:
        try:
            x = decode_png(upload, shape, lo_hi)
        except PNGError as exc:
            raise RequestError(400, f"PNG upload: {exc}") from None
    else:
        if "images" not in body:
            raise RequestError(400, f":translate needs 'images': a list of images of shape {list(shape)} "
                                    f"with values in [{lo_hi[0]:g}, {lo_hi[1]:g}], or one PNG uploaded as "
                                    "the body (Content-Type: image/png)")
        x = image_array(body["images"], shape, limits, note=f" with values in [{lo_hi[0]:g}, {lo_hi[1]:g}]")
        in_value_range(x, lo_hi, "images", where)
    meta = {"n": len(x), "operation": op.name, **({} if direction is None else {"direction": direction})}
    return Parsed(op, Values(images=x), fmt, meta)


def parse_predict(body: dict, adapter: Adapter, limits: Limits) -> tuple[OperationSpec, dict, bool]:
    """TensorFlow Serving's REST predict body → (operation, feeds, row format?).

    Row format: ``{"instances": [v, ...]}`` (single input) or ``[{"z": ..., "label": ...}, ...]``;
    columnar: ``{"inputs": batch}`` or ``{"inputs": {"z": batch, "label": batch}}``. The optional
    ``signature_name`` picks the operation (``serving_default`` = the generator, else the
    translation). The client names the inputs, as TF Serving's API has it; each is checked
    against the shape, dtype and range the manifest declares for it.
    """
    check_fields(body, {"signature_name", "instances", "inputs"}, "predict")
    op = _predict_operation(body.get("signature_name", "serving_default"), adapter)
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "give 'instances' (row format) or 'inputs' (columnar format), exactly "
                                "one, as in TensorFlow Serving's REST API")
    columns = _predict_columns(body, op.input_names, limits)
    out, batch = {}, None
    for spec_in in op.inputs:
        value, field = columns[spec_in.name]
        arr = _predict_array(spec_in, value, field, op, adapter.spec, limits)
        if batch is not None and len(arr) != batch:
            raise RequestError(400, f"{field} has {len(arr)} rows but the other inputs have {batch}")
        batch = len(arr)
        out[spec_in.name] = arr.astype(spec_in.dtype)
    return op, out, "instances" in body


def _predict_operation(signature, adapter: Adapter) -> OperationSpec:
    spec = adapter.spec
    if signature == "serving_default":
        return adapter.default_operation()
    op = spec.operation(signature) if isinstance(signature, str) else None
    if op is None:
        names = sorted({"serving_default", *spec.signature_names()})
        raise RequestError(400, f"signature_name={_short(signature)} is not served; this model has "
                                f"{', '.join(names)}")
    return op


def _predict_columns(body: dict, names: list[str], limits: Limits) -> dict[str, tuple]:
    """input name → (its batch as sent, the field to name in messages)."""
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError(400, f"instances must be a non-empty list, got {_short(rows)}")
        if len(rows) > limits.max_n:
            raise RequestError(400, f"instances holds {len(rows)} rows; the limit is {limits.max_n} per request")
        if len(names) == 1 and not all(isinstance(r, dict) for r in rows):
            return {names[0]: (rows, "instances")}
        for k, r in enumerate(rows):
            if not isinstance(r, dict) or set(r) != set(names):
                raise RequestError(400, f"instances[{k}] must be an object with exactly the inputs "
                                        f"{names}; got {_short(r)}")
        return {nm: ([r[nm] for r in rows], f"instances[*].{nm}") for nm in names}
    cols = body["inputs"]
    if len(names) == 1 and not isinstance(cols, dict):
        cols = {names[0]: cols}
    if not isinstance(cols, dict) or set(cols) != set(names):
        raise RequestError(400, f"inputs must be an object with exactly the inputs {names}; got "
                                f"{_short(cols if not isinstance(cols, dict) else sorted(cols))}")
    return {nm: (cols[nm], f"inputs.{nm}") for nm in names}


def _predict_array(spec_in, value, field: str, op: OperationSpec, spec: ExportSpec, limits: Limits) -> np.ndarray:
    """One input's batch, checked against its declared shape and range."""
    lo_hi = spec_in.value_range
    if spec_in.dtype.startswith("int"):
        n = len(value) if isinstance(value, list) else 0
        if lo_hi is not None:
            words = ("class label", "label") if spec_in.role == "label" else (spec_in.role, spec_in.role)
            return integers(value, field, n, int(lo_hi[0]), int(lo_hi[1]), *words)
        return np.asarray(numbers(value, field, (), limits.max_n, "integers"))
    arr = numbers(value, field, tuple(spec_in.shape[1:]), limits.max_n,
                  f"{spec_in.name} values of shape {list(spec_in.shape[1:])}")
    if lo_hi is not None:
        same = tuple(spec_in.shape[1:]) == tuple(spec.image_shape) and tuple(lo_hi) == tuple(spec.value_range)
        in_value_range(arr, lo_hi, field, "the model's value range" if same else f"{op.name}'s input range")
    return arr
