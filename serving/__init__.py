"""Serve exported models over HTTP.

The service reads only what ``gen_keras.export`` wrote — ``manifest.json``, the ONNX files and
the SavedModel — through the one export reader and its adapter (``gen_keras.exported``), never the
``gen_keras`` model classes: it dispatches on the tasks and roles the manifest declares, so it
runs where TensorFlow is absent (onnxruntime backend) and serves any model kind the exporter
learns without a change here.

Modules: ``app`` (assembles the FastAPI application), ``state`` (what a running server holds:
settings, the model store, the inference pool), ``registry`` (find, verify and load exports,
MLflow aliases; which HTTP operations a model answers), ``routes`` (health, models, operations,
TF Serving's predict, /docs), ``validation`` (request bodies → request values, 4xx messages),
``schemas`` (the OpenAPI document's bodies), ``responses`` (JSON and PNG answers), ``protocol``
(the HTTP/1.1 connection guards), ``metrics`` (Prometheus text), ``errors`` (the error type).
"""
