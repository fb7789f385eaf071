"""The server's routes, one router per concern: health, readiness, metrics and the page
(:mod:`.health`); model metadata (:mod:`.models`); operations on a model (:mod:`.operations`),
with TensorFlow Serving's ``:predict`` in :mod:`.tfserving`."""
