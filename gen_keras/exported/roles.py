"""What an export's tensors mean: the role of every input and output, and the task of every
operation. The manifest states them (format 2); every consumer — the server, the page, the MLflow
pyfunc model, batch jobs, the latent tools — reads them through
:class:`gen_keras.exported.adapter.Adapter` and never names a tensor or a model kind.

Input roles (with what a consumer feeds them):

========================  ==========================================================================
``code``                  latent codes z ~ N(0, I) ``[N, latent_dim]``: given, or drawn from seeds by
                          :func:`gen_keras.exported.latents.sample_prior` (the one rule)
``mixing_code``           a second code per item, whose styles fill the layers from ``crossover`` on
``image``                 images ``[N, H, W, C]`` inside the input's ``value_range``
``label``                 one class per item, an integer in the input's ``value_range`` (0..K-1)
``noise``                 standard-normal noise the operation averages over ``[N, d]``: drawn from a
                          noise seed by :func:`gen_keras.exported.latents.draw_noise`
``truncation``            psi per item in ``[0, 1]`` (``default`` 1 = none): w = w_avg + psi (w - w_avg)
``styles``                per-layer styles ``[N, num_ws, w_dim]``
``crossover``             per item, the first style layer taken from ``mixing_code`` (an integer in
                          the input's ``value_range``; ``default`` the model's default crossover)
========================  ==========================================================================

Output roles: ``image`` (in the output's ``value_range``), ``code_mean`` / ``code_log_var`` (the
posterior q(z|x) = N(mean, exp(log_var))), ``code`` (a deterministic encoder's code), ``score``
(a per-item anomaly score, higher = less typical), ``style`` (w ``[N, w_dim]``).

Tasks: ``generate`` (codes → images), ``encode``, ``reconstruct``, ``score``, ``translate``
(images → images, one operation per ``direction``), ``map`` (codes → styles), ``synthesize``
(styles → images), ``mix`` (two codes and a crossover → images).

Manifests written before roles existed (format 1) name their tensors by the exporter's
conventions; :data:`CONVENTIONAL_INPUTS` and friends translate them, in the reader only. A model
whose tensors are named otherwise declares their roles itself
(:class:`gen_keras.models.base.Endpoint`).
"""
from __future__ import annotations

INPUT_ROLES = ("code", "mixing_code", "image", "label", "noise", "truncation", "styles", "crossover")
OUTPUT_ROLES = ("image", "code_mean", "code_log_var", "code", "score", "style")
TASKS = ("generate", "encode", "reconstruct", "score", "translate", "map", "synthesize", "mix")

# The inputs each task needs (beside optional ones: a label for a conditional model, a truncation).
TASK_INPUTS = {
    "generate": {"code"}, "encode": {"image"}, "reconstruct": {"image"}, "score": {"image"},
    "translate": {"image"}, "map": {"code"}, "synthesize": {"styles"},
    "mix": {"code", "mixing_code", "crossover"},
}
# The output role each task answers with first (the one a tool means by "the result").
TASK_OUTPUT = {"generate": "image", "reconstruct": "image", "translate": "image", "synthesize": "image",
               "mix": "image", "score": "score", "map": "style"}
INTEGER_ROLES = ("label", "crossover")

# The exporter's conventional names, by which format-1 manifests (and models that do not declare
# roles) are read.
CONVENTIONAL_INPUTS = {"z": "code", "z_mix": "mixing_code", "x": "image", "label": "label", "eps": "noise",
                       "psi": "truncation", "ws": "styles", "crossover": "crossover"}
CONVENTIONAL_OUTPUTS = {"image": "image", "mean": "code_mean", "log_var": "code_log_var", "z": "code",
                        "score": "score", "w": "style"}
CONVENTIONAL_TASKS = {"generate": "generate", "generate_truncated": "generate", "encode": "encode",
                      "reconstruct": "reconstruct", "score": "score", "mapping": "map",
                      "synthesis": "synthesize", "mix": "mix", "translate": "translate",
                      "translate_a2b": "translate", "translate_b2a": "translate"}


def conventional_direction(operation: str) -> str | None:
    """``translate_a2b`` → ``a2b``; None for a one-way ``translate`` (and every other name)."""
    prefix = "translate_"
    return operation[len(prefix):] if operation.startswith(prefix) else None

# Ranges and defaults a role carries unless the model declares its own: (value_range, default).
ROLE_DEFAULTS = {"truncation": ((0.0, 1.0), 1.0)}
