"""The small CNN image classifier the project trains itself: the evaluator network of FID, KID,
precision/recall and mode coverage (:mod:`gen_keras.eval.evaluator` trains and caches it), and
the frozen feature network of SRGAN's content loss (:mod:`gen_keras.models.srgan`, which receives
the trained weights from training). The architecture lives here, with the models, so a model can
build it without importing evaluation; its training stays in evaluation.

Layer names are part of the contract: ``conv<i>`` / ``pool<i>`` per filter count, ``features``
(the penultimate dense layer), ``logits``. Weights are copied between networks by these names.
"""
from __future__ import annotations

FILTERS = (16, 32)
FEATURE_DIM = 128
FEATURE_LAYER = "features"


def image_classifier(image_shape, num_classes: int, filters=FILTERS, feature_dim: int = FEATURE_DIM,
                     name: str = "evaluator"):
    """``conv 3x3 + relu, max-pool`` per entry of ``filters``, then ``features`` (dense,
    relu), dropout 0.3 and ``logits``; float32 throughout (a caller may have set a mixed-precision
    global policy for training), on images in [0, 1]."""
    import keras
    from keras import layers

    x_in = keras.Input(tuple(image_shape), name="x", dtype="float32")
    h = x_in
    for i, f in enumerate(filters):
        h = layers.Conv2D(f, 3, padding="same", activation="relu", dtype="float32", name=f"conv{i}")(h)
        h = layers.MaxPooling2D(dtype="float32", name=f"pool{i}")(h)
    h = layers.Flatten(dtype="float32")(h)
    h = layers.Dense(feature_dim, activation="relu", dtype="float32", name=FEATURE_LAYER)(h)
    h = layers.Dropout(0.3, dtype="float32")(h)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(h)
    return keras.Model(x_in, logits, name=name)


def copy_weights_by_name(target, source) -> None:
    """Every layer of ``target`` that has weights takes those of ``source``'s layer of the same
    name (a network cut from the same architecture at some layer)."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
