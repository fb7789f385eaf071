"""SRGAN's content network is built by the model (the evaluator's architecture, from
gen_keras/models/classifier.py) and its trained weights are handed in by training (issue #25,
item 4): the model declares the network it needs, evaluation provides it, and the model refuses to
train with random content features."""
from __future__ import annotations

import numpy as np
import pytest

from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError

from conftest import ROOT

SMALL = ["model.g_filters=8", "model.residual_blocks=1", "model.d_filters=8", "model.d_dense=16",
         "train.batch_size=8"]


def test_the_content_network_is_handed_in_and_trains(data_cache):
    from gen_keras.eval.evaluator import Recipe, build_classifier
    from gen_keras.eval.translation import digit_evaluator, hand_in_pretrained
    from gen_keras.models import build_model
    from gen_keras.plan import resolve_plan

    cfg = load_config(ROOT / "pipelines/configs/srgan_sr4.yaml", SMALL)
    model = build_model(cfg.model)
    model.compile_for_training(resolve_plan(cfg))
    assert model.pretrained_parts() == {"content_network": {"network": "digit_evaluator",
                                                            "image_shape": [28, 28, 1]}}
    # The same architecture as the evaluator, cut at content_layer: every weight shape matches.
    reference = build_classifier((28, 28, 1), 10, Recipe())
    mine = [w.shape for layer in model.content_network.layers for w in layer.get_weights()]
    assert mine == [w.shape for name in ("conv0", "conv1") for w in reference.get_layer(name).get_weights()]

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 7, 7, 1)).astype("float32")
    y = rng.uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    with pytest.raises(ConfigError, match="content network has no trained weights"):
        model.fit(x, y, epochs=1, verbose=0)

    hand_in_pretrained(model, cfg)
    evaluator = digit_evaluator(cfg, model.image_shape)
    for layer in model.content_network.layers:
        for got, want in zip(layer.get_weights(), evaluator.classifier.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert not model.content_network.trainable_weights
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["content"][0]) and history["content"][0] > 0


def test_a_model_without_pretrained_parts_is_left_alone():
    from gen_keras.eval.translation import hand_in_pretrained

    class Plain:
        pass

    hand_in_pretrained(Plain(), None)  # nothing declared, nothing asked of evaluation
