"""Model kinds by name: the one table the CLI, the trainer, the exporter and the evaluator use.

Each model module registers itself::

    @register_model("vae", VAEConfig)
    class VAE(GenerativeModel): ...

and adding a model touches only its own module (every module in ``gen_keras.models`` is
imported on first lookup).
"""
from __future__ import annotations

import importlib
import pkgutil

from gen_keras.errors import ConfigError

_KINDS: dict[str, tuple[type, type]] = {}
_LOADED = False


def register_model(kind: str, config_class: type):
    def decorate(model_class):
        if kind in _KINDS and _KINDS[kind][1] is not model_class:
            raise RuntimeError(f"model kind {kind!r} registered twice")
        _KINDS[kind] = (config_class, model_class)
        model_class.kind = kind
        return model_class

    return decorate


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    import gen_keras.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("registry",):
            importlib.import_module(f"gen_keras.models.{info.name}")
    _LOADED = True


def model_kinds() -> list[str]:
    _load_all()
    return sorted(_KINDS)


def _lookup(kind: str) -> tuple[type, type]:
    _load_all()
    if kind not in _KINDS:
        import difflib

        near = difflib.get_close_matches(str(kind), sorted(_KINDS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"model.kind={kind!r} is unknown{hint}; known kinds: {sorted(_KINDS)}")
    return _KINDS[kind]


def model_config_class(kind: str) -> type:
    return _lookup(kind)[0]


def model_class(kind: str) -> type:
    return _lookup(kind)[1]


def build_model(config, precision: str = "float32") -> "object":
    """Build (not compile) the model a ModelConfig describes, its networks computing in the
    Keras dtype policy ``precision`` (the run plan's)."""
    return model_class(config.kind)(config, precision=precision)
