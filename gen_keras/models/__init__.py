"""Generative models: every kind is a keras.Model subclass with its own train_step/test_step."""
from gen_keras.models.registry import build_model, model_class, model_config_class, model_kinds

__all__ = ["build_model", "model_class", "model_config_class", "model_kinds"]
