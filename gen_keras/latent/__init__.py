"""Tools to look into a latent space: interpolation, attribute arithmetic, traversals, the 2-D
manifold and a scatter of encoded images; for style-based generators also the style space W
(interpolation in w, GAN vector arithmetic on evaluator-labelled samples). Each works on an export folder, an MLflow run id or
an in-memory model (see :mod:`gen_keras.latent.loading`); docs/latent.md shows the CLI."""
from gen_keras.exported.reader import ExportReader, LatentModel
from gen_keras.latent.arithmetic import arithmetic_grid, attribute_vector, class_means
from gen_keras.latent.interpolation import (
                                            image_interpolation_strips,
                                            interpolate,
                                            interpolation_strips,
                                            lerp,
                                            slerp,
)
from gen_keras.latent.loading import InMemoryModel, as_latent_model, load_images, log_to_run, open_model
from gen_keras.latent.manifold import (
                                            encoded_scatter,
                                            manifold_codes,
                                            manifold_grid,
                                            project_2d,
                                            scatter_image,
)
from gen_keras.latent.traversal import traversal_codes, traversal_grid, traversal_values
from gen_keras.latent.wspace import style_space, vector_arithmetic, w_interpolation_strips

__all__ = [
    "ExportReader", "InMemoryModel", "LatentModel", "arithmetic_grid", "as_latent_model",
    "attribute_vector", "class_means", "encoded_scatter",
    "image_interpolation_strips", "interpolate", "interpolation_strips", "lerp", "load_images",
    "log_to_run", "manifold_codes", "manifold_grid", "open_model", "project_2d",
    "scatter_image", "slerp", "style_space", "traversal_codes", "traversal_grid", "traversal_values",
    "vector_arithmetic", "w_interpolation_strips",
]
