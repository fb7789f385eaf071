"""Loading a run config: the schema of :mod:`gen_keras.config` given the two things it must not
import itself (it sits below the models and the data, which import it) — each model kind's config
class, from the model registry, and the check of a data set string, from the data sources.

Every caller that reads a config (the commands, training, evaluation, the benches, the tests)
uses these three functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gen_keras.config import ModelConfig, RunConfig, parse_config, parse_model_config, read_config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> RunConfig:
    """A YAML config with ``key=value`` overrides (``train.epochs=3``), validated; every error
    names its field."""
    return read_config(path, overrides, base, **_lookups())


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """A config dict validated: the run sections first, then the model section."""
    return parse_config(raw, **_lookups())


def model_config_from_dict(raw: dict[str, Any]) -> ModelConfig:
    """The ``model:`` section alone (an export's or a saved model's), validated."""
    from gen_keras.models.registry import model_config_class

    return parse_model_config(raw, model_config_class)


def _lookups() -> dict:
    # Imported when a config is read, not with this module: the model registry loads every model
    # module (TensorFlow with them) only at its first lookup, after the cheap sections passed.
    from gen_keras.data.sources import check_dataset_name
    from gen_keras.models.registry import model_config_class

    return {"model_config_class": model_config_class, "check_dataset": check_dataset_name}
