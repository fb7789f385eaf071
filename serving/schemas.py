"""The operations' request and response bodies as pydantic models, for the OpenAPI document
only: requests are parsed and checked by :mod:`serving.validation`, which stays the one validator
(and the one source of error messages). tests/test_serving_docs.py checks that the fields listed
here are exactly the fields the validator accepts.

The limits (images per request, interpolation frames) are this server's, so :func:`bodies` builds
the models for given :class:`~serving.validation.Limits`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.validation import MAX_SEED, Limits

FORMAT = ("`json` or `png`; without it the Accept header decides (`image/png` → one PNG grid, "
          "`application/json` or `*/*` → JSON)")
LABEL = "one class label for every image (conditional models only): 0 .. num_classes - 1"
LABELS = "one class label per image (conditional models only), each 0 .. num_classes - 1"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the validator rejects unknown fields too


class Error(BaseModel):
    """Every error: a 4xx status (503 for a timeout or while models load) and a message that
    names the field and what is wrong with it."""
    error: str = Field(description="what is wrong, naming the field")


class Images(BaseModel):
    """Images as JSON (``format: json``), values in the model's ``value_range`` (6 decimals)."""
    model: str = Field(description="the model's name")
    n: int = Field(None, description="number of images (generate, reconstruct, translate)")
    seed: int = Field(None, description="the seed the codes were drawn from (generate without `z`: null)")
    labels: list[int] = Field(None, description="the class of each image (conditional models)")
    seeds: list[int] = Field(None, description="the two end seeds (interpolate; null with `z`)")
    steps: int = Field(None, description="frames (interpolate)")
    method: Literal["linear", "slerp"] = Field(None, description="the path (interpolate)")
    label: int = Field(None, description="the class of every frame (interpolate, conditional models)")
    truncation: float = Field(None, description="psi, when the request gave one (generate, style-based models)")
    layer: int = Field(None, description="the first style layer taken from the column's seed (mix)")
    num_ws: int = Field(None, description="the model's number of style layers (mix)")
    operation: str = Field(None, description="the export's operation that ran (translate)")
    direction: Literal["a2b", "b2a"] = Field(None, description="the direction (translate, CycleGAN models)")
    value_range: list[float] = Field(description="[low, high]: the range of the pixel values")
    shape: list[int] = Field(description="[n, height, width, channels]")
    images: list[list[list[list[float]]]] = Field(description="n images, each [height][width][channels]")


class Encoding(BaseModel):
    """The approximate posterior q(z|x) = N(mean, exp(log_var)) of each image."""
    model: str
    mean: list[list[float]] = Field(description="[n, latent_dim]")
    log_var: list[list[float]] = Field(description="[n, latent_dim]")


class Codes(BaseModel):
    """The latent codes drawn from the seeds by the one rule (the codes :generate uses)."""
    model: str
    seeds: list[int] = Field(None, description="one code per seed, in order (when the request gave `seeds`)")
    n: int = Field(None, description="codes drawn from one `seed` (when the request gave `n`/`seed`)")
    seed: int = Field(None, description="that seed (the server picks one when the request has none)")
    latent_dim: int = Field(description="the length of each code")
    z: list[list[float]] = Field(description="the codes, [count, latent_dim] (6 decimals)")


class Prediction(BaseModel):
    """TensorFlow Serving's answer: `predictions` for the row format (`instances`), `outputs`
    for the columnar one (`inputs`). A multi-output signature (encode) gives one object per row
    (`{"mean": ..., "log_var": ...}`) or one array per output."""
    predictions: list[Any] = Field(None, description="one entry per instance")
    outputs: list[Any] | dict[str, list[Any]] = Field(None, description="a batch, or one batch per output")


def bodies(limits: Limits) -> dict[str, type[BaseModel]]:
    """The request models of the operations (with this server's limits) and the response
    models, by schema name."""
    requests = [_generate_request(limits), _interpolate_request(limits), _codes_request(limits), _mix_request(),
                *_image_requests(limits), _translate_request(limits), _predict_request(limits)]
    return {m.__name__: m for m in (*requests, Images, Encoding, Codes, Prediction, Error)}


def _generate_request(limits: Limits):
    class GenerateRequest(_Body):
        """Images from `n` codes drawn from the seed (z ~ N(0, I), the draw training uses), or
        from explicit codes `z` — one or the other, not both."""
        n: int = Field(min(16, limits.max_n), ge=1, le=limits.max_n,
                       description="how many images to draw (with `seed`; not with `z`)")
        seed: int = Field(None, ge=0, le=MAX_SEED, description="the seed of the draw; without it the server "
                          "picks one and reports it (`seed` in JSON, `X-Seed` with PNG)")
        z: list[list[float]] = Field(None, min_length=1, max_length=limits.max_n,
                                     description="explicit latent codes, each of length latent_dim "
                                                 "(GET /v1/models/{name}); instead of `n`/`seed`")
        labels: list[int] = Field(None, description=LABELS)
        label: int = Field(None, ge=0, description=LABEL + "; without `label`/`labels`, classes cycle 0, 1, 2, ...")
        truncation: float = Field(None, ge=0.0, le=1.0, description="generators with a truncation input (style-based ones): "
                                  "psi of the truncation trick, w = w_avg + psi (w - w_avg); 1 = none, 0 = "
                                  "the average style")
        format: Literal["json", "png"] = Field(None, description=FORMAT)
    return GenerateRequest


def _interpolate_request(limits: Limits):
    class InterpolateRequest(_Body):
        """Frames along a path between two codes: drawn from two seeds, or given as `z`."""
        seeds: list[int] = Field(None, min_length=2, max_length=2,
                                 description="[seed_a, seed_b], each 0 .. 2^63 - 1; or give `z`")
        z: list[list[float]] = Field(None, min_length=2, max_length=2,
                                     description="[z_a, z_b], each of length latent_dim; or give `seeds`")
        steps: int = Field(min(8, limits.max_steps), ge=2, le=limits.max_steps,
                           description="frames, both ends included")
        method: Literal["linear", "slerp"] = Field("linear", description="`slerp` walks the sphere "
                                                   "(Shoemake 1985), better for Gaussian codes (White 2016)")
        label: int = Field(None, ge=0, description="the class of every frame (conditional models; default 0)")
        format: Literal["json", "png"] = Field(None, description=FORMAT + " (one row)")
    return InterpolateRequest


def _codes_request(limits: Limits):
    class CodesRequest(_Body):
        """The latent codes the server draws from seeds (z ~ N(0, I), the rule training, :generate,
        the pyfunc model and batch jobs share): one per seed of `seeds`, or `n` from one `seed` —
        exactly the codes :generate uses for the same fields. To edit a code and send it back
        through :generate (`z`)."""
        seeds: list[int] = Field(None, min_length=1, max_length=limits.max_n,
                                 description="one code per seed, each 0 .. 2^63 - 1; or give `n`/`seed`")
        n: int = Field(1, ge=1, le=limits.max_n, description="how many codes to draw from `seed`")
        seed: int = Field(None, ge=0, le=MAX_SEED, description="the seed of the draw; without it the server "
                          "picks one and reports it")
        format: Literal["json"] = Field(None, description="`json` (the only answer)")
    return CodesRequest


def _mix_request():
    class MixRequest(_Body):
        """Style mixing (style-based models): the codes of `seeds` are mapped to styles w, and the
        image at row i, column j takes the styles of seeds[i] on the layers before `layer`
        (coarse: pose, stroke thickness) and those of seeds[j] from `layer` on (fine). The diagonal
        is each seed's own image."""
        seeds: list[int] = Field(min_length=2, max_length=8, description="2 to 8 seeds, each 0 .. 2^63 - 1")
        layer: int = Field(None, ge=1, description="the first style layer taken from the column's seed: "
                           "the range and default the mix operation's crossover input declares (GET /v1/models/{name}: "
                           "1 .. num_ws - 1, default num_ws // 2)")
        format: Literal["json", "png"] = Field(None, description=FORMAT + " (a seeds x seeds grid)")
    return MixRequest


def _image_requests(limits: Limits):
    def image_list():
        return Field(min_length=1, max_length=limits.max_n,
                     description="images of the model's image_shape [h, w, c] (GET /v1/models/{name}), values "
                                 "inside its value_range; grey images may drop the channel axis ([h, w])")

    class EncodeRequest(_Body):
        """Images → the posterior mean and log-variance of their codes (VAE/AE exports)."""
        images: list[list[list[float | list[float]]]] = image_list()
        labels: list[int] = Field(None, description=LABELS + "; conditional models need `labels` or `label`")
        label: int = Field(None, ge=0, description=LABEL)
        format: Literal["json"] = Field(None, description="`json` (the only answer)")

    class ReconstructRequest(_Body):
        """Images → their reconstructions, decoded from the posterior mean (VAE/AE exports)."""
        images: list[list[list[float | list[float]]]] = image_list()
        labels: list[int] = Field(None, description=LABELS + "; conditional models need `labels` or `label`")
        label: int = Field(None, ge=0, description=LABEL)
        format: Literal["json", "png"] = Field(None, description=FORMAT)
    return EncodeRequest, ReconstructRequest


def _translate_request(limits: Limits):
    class TranslateRequest(_Body):
        """Image-to-image models (exports with translate operations): images → their translations.
        Send JSON `images` of the operation's input shape, values in its input range (GET
        /v1/models/{name}: `translations`), or upload ONE PNG as the body (Content-Type: image/png,
        exactly the input's width x height, 8-bit grey or colour; pixels 0..255 are mapped onto the
        input range) with `direction` and `format` as query parameters."""
        images: list[list[list[float | list[float]]]] = Field(
            None, min_length=1, max_length=limits.max_n,
            description="images of the translation's input shape [h, w, c] (grey: [h, w] too), values inside "
                        "its input range; not with a PNG upload")
        direction: Literal["a2b", "b2a"] = Field(None, description="CycleGAN models: `a2b` (default) or `b2a`; "
                                                 "one-way models take no direction")
        format: Literal["json", "png"] = Field(None, description=FORMAT)
    return TranslateRequest


def _predict_request(limits: Limits):
    class PredictRequest(_Body):
        """TensorFlow Serving's REST predict: `instances` (rows) or `inputs` (columns), exactly one.
        One input: rows are codes (`[z, ...]`); two inputs: rows are objects
        (`[{"z": [...], "label": 3}, ...]`), columns an object of batches (`{"z": [...], "label": [...]}`)."""
        signature_name: str = Field("serving_default", description="the operation: `serving_default` "
                                    "(= generate; on an image-to-image model its translation, `translate` or "
                                    "`translate_a2b`), `generate`, `decode`, `encode`, `reconstruct`, "
                                    "`translate_b2a` — as the model offers (its `signatures`)")
        instances: list[Any] = Field(None, min_length=1, max_length=limits.max_n, description="rows")
        inputs: list[Any] | dict[str, list[Any]] = Field(None, description="columns: a batch, or one per input")
    return PredictRequest
