"""The disentanglement evaluation of a trained encoder on a factor data set, as the end of a
training run does it: the metrics of :func:`gen_keras.eval.disentanglement.disentanglement_metrics`
on the codes of freshly rendered images, the factor-by-code mutual-information heat map, and one
latent traversal grid per code dimension (:func:`gen_keras.latent.traversal_grid`), and all of
them in one grid (``traversal.png``) whose rows are labelled with the factor each dimension moves
most and ordered by factor, those facts also in ``code_factors.json``
(:mod:`gen_keras.eval.factor_codes`).

Which models: every kind that maps an image alone to a code (``is_encoder``) — the VAE family
(codes are posterior means) and the autoencoders (codes). Class-conditional encoders (the CVAE)
need the label beside the image and are left out.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gen_keras.errors import ConfigError

# End of training: codes of 3,000 rendered images for MIG / DCI / SAP and the heat map (the
# plug-in MI's upward bias shrinks the gap by < 0.03 at this size; docs/disentanglement.md),
# the FactorVAE and beta-VAE scores at their default vote counts.
END_OF_TRAINING_FACTOR_SAMPLES = 3000
TRAVERSAL_STEPS = 9


def is_encoder(model) -> bool:
    """Maps an image alone to a latent code: the VAE family and the autoencoders."""
    return hasattr(model, "encode") and hasattr(model, "config") and not type(model.config).conditional


def evaluate_disentanglement(model, dataset: str, *, num_samples: int = END_OF_TRAINING_FACTOR_SAMPLES,
                             seed: int = 0, artifacts_dir: str | Path | None = None):
    """``(metrics, artifacts)``: ``{"mig", "dci_*", "sap", "factorvae_score", "betavae_score"}``
    for ``model``'s codes of the factor data set ``dataset``, and — with ``artifacts_dir`` — the
    written PNGs by name: ``mi_heatmap`` and ``traversal_z<j>`` for every code dimension j.
    A model whose image shape is not the set's own is a ConfigError (the sampler renders at it).

    Traversals start from the code of one rendered image (factors drawn with ``seed``) and move
    one dimension over ``[-3, 3]`` for the VAE family (the prior's scale) or over +-3 standard
    deviations of that dimension's codes for an autoencoder (which has no prior)."""
    from gen_keras.data import factor_sampler
    from gen_keras.eval import disentanglement as dm
    from gen_keras.eval.factor_codes import code_factors, labelled_rows
    from gen_keras.images import image_grid, save_png
    from gen_keras.latent import traversal_grid
    from gen_keras.latent.loading import as_latent_model

    latent = as_latent_model(model)
    value_range = latent.value_range
    sampler = factor_sampler(dataset, value_range)
    native = tuple(sampler.factor_set.image_shape)
    if tuple(latent.image_shape) != native:
        raise ConfigError(f"model.image_shape={list(latent.image_shape)}: the disentanglement "
                          f"metrics render {dataset!r} at its own shape {list(native)}; train "
                          f"at model.image_shape={list(native)} to score the encoder")
    heatmap = None if artifacts_dir is None else Path(artifacts_dir) / "mi_heatmap.png"
    represent = compiled_encoder(latent.model) if hasattr(latent, "model") else latent.encode
    metrics = dm.disentanglement_metrics(represent, dataset, value_range=value_range,
                                         num_samples=num_samples, seed=seed, heatmap_path=heatmap)
    artifacts: dict[str, Path] = {}
    if artifacts_dir is None:
        return metrics, artifacts
    artifacts["mi_heatmap"] = heatmap
    codes = represent(sampler.observations(sampler.sample_factors(256, np.random.default_rng(seed))))
    vae_family = hasattr(model, "log_likelihood")
    spans = np.full(latent.latent_dim, 3.0) if vae_family else np.maximum(3.0 * codes.std(0), 1e-3)
    rows = []
    for j in range(latent.latent_dim):
        images, ncols = traversal_grid(latent, codes[0], dims=[j], steps=TRAVERSAL_STEPS, span=float(spans[j]))
        rows.append(images)
        artifacts[f"traversal_z{j}"] = save_png(image_grid(images, ncols, value_range),
                                                Path(artifacts_dir) / f"traversal_z{j:02d}.png")
    # Every dimension in one grid, each row labelled with the factor it moves most and the rows
    # ordered by factor; the same facts as JSON (gen_keras.eval.factor_codes).
    table = code_factors(represent, dataset, num_samples=num_samples, seed=seed, value_range=value_range)
    order = table.order()
    grid = image_grid(np.concatenate([rows[j] for j in order]), TRAVERSAL_STEPS, value_range)
    artifacts["traversal"] = save_png(labelled_rows(grid, [table.label(j) for j in order]),
                                      Path(artifacts_dir) / "traversal.png", scale=1)
    path = Path(artifacts_dir) / "code_factors.json"
    path.write_text(json.dumps(table.as_dict(), indent=1))
    artifacts["code_factors"] = path
    return metrics, artifacts


def compiled_encoder(model):
    """``images -> codes`` (numpy) through one traced graph of ``model.encode``: the FactorVAE
    and beta-VAE scores encode ~2,400 small batches, where eager calls cost twice the work."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.config.image_shape], tf.float32)

    @tf.function(input_signature=[spec])
    def codes(x):
        out = model.encode(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    return lambda images: codes(tf.convert_to_tensor(images, tf.float32)).numpy()
