"""Serve exported generators over HTTP.

The service reads only what ``gen_keras.export`` wrote — ``manifest.json``, the ONNX files and
the SavedModel — never the ``gen_keras`` model classes, so it runs where TensorFlow is absent
(onnxruntime backend) and keeps working for any model kind the exporter learns.

Modules: ``registry`` (find, verify and load exports, MLflow aliases), ``backends``
(onnxruntime / TensorFlow SavedModel), ``validation`` (request bodies → arrays, 4xx messages),
``latents`` (seeded codes, interpolation), ``images`` (PNG grids), ``metrics`` (Prometheus
text), ``app`` (the FastAPI application).
"""
