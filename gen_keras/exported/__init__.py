"""Exported models, read without TensorFlow: the manifest, its checks, the runtimes, and the
latent codes every consumer draws the same way. Serving, the latent tools, anomaly scoring,
evaluation of exports, the MLflow pyfunc flavor and batch jobs all read an export through
:class:`gen_keras.exported.reader.ExportReader`."""
