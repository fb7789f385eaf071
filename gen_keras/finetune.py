"""The encoder as the start of a supervised model (issue 16: "use the encoder to initialize a
supervised model"): a Keras classifier made of a trained model's encoder — its posterior mean for
the VAE family, its code for autoencoders — and a softmax layer, ready to fine-tune on a few
labels. The encoder comes from a model in memory, a ``.keras`` file the pipeline saved, or an
MLflow run (``model/``, sha256-checked, Keras ``safe_mode`` on)::

    from gen_keras.finetune import classifier_from_encoder, load_trained
    clf = classifier_from_encoder(load_trained(run_id="3f2a..."), num_classes=10)
    fine_tune(clf, x_few, y_few)          # the head on the frozen codes, then everything, gently
    clf.evaluate(x_test, y_test)

An export (ONNX + SavedModel) is for inference: to fine-tune, use the run or the ``.keras`` file.
"""
from __future__ import annotations


def load_trained(run_id: str | None = None, path: str | None = None, tracking_uri: str | None = None):
    """The trained gen_keras model of an MLflow run or of a ``.keras`` file the pipeline saved."""
    from gen_keras.artifacts import load_model, load_model_from_run

    if (run_id is None) == (path is None):
        raise ValueError("name the model by exactly one of a run id or a .keras path")
    return load_model_from_run(run_id, tracking_uri) if run_id is not None else load_model(path)


def classifier_from_encoder(model, num_classes: int, *, pretrained: bool = True, trainable: bool = True,
                            name: str = "encoder_classifier"):
    """``image → logits [num_classes]``: the model's encoder (its weights when ``pretrained``,
    else the same architecture freshly initialized — the baseline) followed by a dense layer.
    ``trainable=False`` freezes the encoder (a linear probe on its codes)."""
    import keras

    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(model, "encode"):
        raise ValueError(f"a {model.config.kind!r} model has no encoder to build a classifier from")
    if getattr(type(model.config), "conditional", False):
        raise ValueError(f"a conditional {model.config.kind!r} encoder needs the label as an input; "
                         "use an unconditional model's encoder")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} must be >= 2")
    if not pretrained:
        encoder = keras.models.clone_model(encoder)  # the architecture, with new initial weights
    encoder.trainable = trainable
    x = keras.Input(tuple(int(d) for d in model.config.image_shape), name="image")
    out = encoder(x)
    code = out[0] if isinstance(out, (list, tuple)) else out  # the VAE family: (mean, log_var)
    # Codes come in very different scales (a VAE's unused dimensions sit near 0): normalize them
    # before the softmax layer, as a linear probe standardizes its inputs.
    code = keras.layers.BatchNormalization(name="code_norm")(code)
    logits = keras.layers.Dense(num_classes, name="classes")(code)
    return keras.Model(x, logits, name=name)


def fine_tune(classifier, x, y, *, head_epochs: int = 100, head_lr: float = 1e-2, epochs: int = 30,
              lr: float = 1e-4, batch_size: int = 20, verbose: int = 0):
    """Linear probing, then fine-tuning ("LP-FT", Kumar et al. 2022, "Fine-Tuning can Distort
    Pretrained Features and Underperform Out-of-Distribution"): train the softmax layer (and the
    code normalization) on the frozen encoder, then the whole network at a small learning rate,
    so that the first large gradients of a random head do not wreck the pretrained features.
    An epoch is one pass over the (few) examples in a new random order (seeded by
    ``keras.utils.set_random_seed``); each phase is one ``fit`` over all its passes, one pass per
    call into the compiled step, because with 100 examples Keras' per-epoch work (a new iterator,
    metric resets, callbacks) cost as much as the training itself. Returns the compiled
    classifier (metrics: accuracy)."""
    import keras

    from gen_keras.distribute import supported_steps_per_execution

    encoder = next(layer for layer in classifier.layers if isinstance(layer, keras.Model))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for name, trainable, passes, rate in (("head_epochs", False, head_epochs, head_lr),
                                          ("epochs", True, epochs, lr)):
        if passes == 0:  # the phase skipped: linear probing only, or fine-tuning only
            continue
        encoder.trainable = trainable
        data, per_pass = _passes(x, y, name, passes, batch_size)
        classifier.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=["accuracy"],
                           steps_per_execution=supported_steps_per_execution(
                               per_pass, classifier.distribute_strategy, "fine_tune's batches per pass"))
        classifier.fit(data, epochs=1, steps_per_epoch=passes * per_pass, shuffle=False, verbose=verbose)
    # Returned compiled for one step per call (evaluate / predict / a further fit as usual),
    # with the optimizer of the last phase and its state.
    optimizer = classifier.optimizer if classifier.optimizer is not None else keras.optimizers.Adam(lr)
    classifier.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return classifier


def _passes(x, y, name: str, passes: int, batch_size: int):
    """``(dataset, batches per pass)``: ``passes`` passes over ``(x, y)``, each in a new order."""
    import math

    import tensorflow as tf

    n = len(x)
    if n < 1 or n != len(y):
        raise ValueError(f"fine_tune needs examples with one label each (got {n} images, {len(y)} labels)")
    if passes < 0 or batch_size < 1:
        raise ValueError(f"fine_tune needs {name} >= 0 and batch_size >= 1 (got {name}={passes}, "
                         f"batch_size={batch_size})")
    data = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, reshuffle_each_iteration=True)
            .batch(batch_size).repeat(passes))
    return data, math.ceil(n / batch_size)
