"""Typed run configuration: one dataclass per section, loaded from YAML, validated on load.

A run config has five sections::

    model:      kind + the model's own fields (each model kind registers its config class)
    data:       which data set, split, and pipeline options
    train:      epochs, global batch, optimizer, seed, speed options
    distribute: strategy and devices
    tracking:   MLflow experiment / tracking URI, outputs

Every error names the offending field with its dotted path (``train.batch_size``), so a bad
config is rejected before any data is read or any model is built.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from gen_keras import precision
from gen_keras.errors import ConfigError


# --------------------------------------------------------------------------------------------
# Model configs (each model kind subclasses ModelConfig; see gen_keras.models.registry)
# --------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    kind: str = "vae"
    image_shape: tuple[int, int, int] = (28, 28, 1)
    latent_dim: int = 16
    num_classes: int = 0  # > 0 for class-conditional models

    # The value range the model's outputs live in, which the data pipeline scales to.
    value_range: typing.ClassVar[tuple[float, float]] = (0.0, 1.0)
    supported_image_shapes: typing.ClassVar[tuple[tuple[int, int, int], ...]] = (
        (28, 28, 1), (32, 32, 3), (64, 64, 3), (32, 32, 1), (64, 64, 1), (28, 28, 3),
    )
    conditional: typing.ClassVar[bool] = False

    def validate(self, prefix: str = "model") -> None:
        if tuple(self.image_shape) not in self.supported_image_shapes:
            raise ConfigError(
                f"{prefix}.image_shape={list(self.image_shape)} is not supported by kind "
                f"{self.kind!r}; choose one of {[list(s) for s in self.supported_image_shapes]}"
            )
        _positive(self.latent_dim, f"{prefix}.latent_dim")
        if self.conditional and self.num_classes < 2:
            raise ConfigError(
                f"{prefix}.num_classes={self.num_classes}: the conditional model {self.kind!r} "
                "needs the number of classes (>= 2)"
            )
        if not self.conditional and self.num_classes not in (0,):
            raise ConfigError(
                f"{prefix}.num_classes={self.num_classes}: {self.kind!r} is not conditional; "
                "leave num_classes at 0"
            )


# --------------------------------------------------------------------------------------------
# Run sections
# --------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    # mnist10k | dsprites[:<count>] | shapes3d[:<count>] | tfds:<name>[:<split>] |
    # folder:<path> | npz:<path> | pairs:<task> | unpaired:<task>
    # (factor sets: docs/disentanglement.md; image-to-image tasks: gen_keras/data/translation.py,
    # and a translation kind defaults to its task)
    dataset: str = "mnist10k"
    # For mnist10k, `train` is images 0..7999 and `test` 8000..9999 (the shared split protocol);
    # dsprites and shapes3d hold out 10% by a seeded hash of the factor tuple.
    # For other sources, `test_fraction` of the examples (after a seeded shuffle) is held out,
    # unless the source has its own test split.
    test_fraction: float = 0.2
    limit_train: int = 0  # > 0: use only the first N training examples (smoke runs)
    limit_test: int = 0
    # Keep each split's prepared images in memory after the first epoch — only when they fit
    # cache_budget_mb (float32 bytes); a larger split streams from its shards every epoch.
    cache: bool = True
    cache_budget_mb: int = 1024
    shuffle_buffer: int = 10_000
    prefetch: bool = True  # overlap input with training (tf.data AUTOTUNE)
    parallel_map: bool = True  # decode/scale images on several threads (tf.data AUTOTUNE)
    # Factor sets only: "shards" reads the prepared TFRecord shards (prepared once, on first use);
    # "render" draws every example with the set's renderer as it is read, in a fresh seeded order
    # each epoch (no preparation, no PNG decoding; gen_keras/data/factor_render.py).
    factor_stream: str = "shards"
    data_dir: str = ""  # TFDS data dir / cache for prepared data; "" = $GEN_KERAS_CACHE/tfds (~/.cache/gen_keras/tfds)
    tfds_timeout_s: float = 5.0
    # folder:<path> only: how each image is brought to model.image_shape — crop (shorter side to
    # the target, centre crop) | pad (longer side to the target, centred on white) | stretch
    # (both sides to the target); docs/data.md
    resize: str = "crop"

    def validate(self, prefix: str = "data", check_dataset: Callable[[str, str], None] | None = None) -> None:
        """``check_dataset(name, field)``: the data layer's check of the data set string
        (``gen_keras.data.sources.check_dataset_name``, passed in by :mod:`gen_keras.config_loader`:
        the config layer does not import the data sources)."""
        if check_dataset is not None:
            check_dataset(self.dataset, f"{prefix}.dataset")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{prefix}.test_fraction={self.test_fraction} must be in (0, 1)")
        _non_negative(self.limit_train, f"{prefix}.limit_train")
        _non_negative(self.limit_test, f"{prefix}.limit_test")
        _positive(self.shuffle_buffer, f"{prefix}.shuffle_buffer")
        _non_negative(self.cache_budget_mb, f"{prefix}.cache_budget_mb")
        _choice(self.factor_stream, ("shards", "render"), f"{prefix}.factor_stream")
        _choice(self.resize, ("crop", "pad", "stretch"), f"{prefix}.resize")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128  # the GLOBAL batch, split across replicas
    learning_rate: float = 1e-3
    # none: the configured rate is used as is; linear: multiplied by the number of replicas
    lr_scaling: str = "none"
    optimizer: str = "adam"
    beta_1: float = 0.9
    beta_2: float = 0.999
    seed: int = 0
    steps_per_execution: int = 1
    jit_compile: bool = False
    # auto (mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs with native bf16, else
    # none) | none | mixed_float16 | mixed_bfloat16; see gen_keras/precision.py
    mixed_precision: str = "auto"
    intra_op_threads: int = 0  # TF thread pools; 0 = TF's choice (one per core)
    inter_op_threads: int = 0
    checkpoint_dir: str = ""  # "" = <outputs>/checkpoints/<run name>
    evaluate_at_end: bool = True
    export_at_end: bool = True
    sample_every_epoch: bool = True
    progress: bool = True

    def validate(self, prefix: str = "train") -> None:
        _positive(self.epochs, f"{prefix}.epochs")
        _positive(self.batch_size, f"{prefix}.batch_size")
        _positive(self.learning_rate, f"{prefix}.learning_rate")
        _positive(self.steps_per_execution, f"{prefix}.steps_per_execution")
        _non_negative(self.intra_op_threads, f"{prefix}.intra_op_threads")
        _non_negative(self.inter_op_threads, f"{prefix}.inter_op_threads")
        _choice(self.lr_scaling, ("none", "linear"), f"{prefix}.lr_scaling")
        _choice(self.optimizer, ("adam", "rmsprop", "sgd"), f"{prefix}.optimizer")
        _choice(self.mixed_precision, precision.POLICIES,
                f"{prefix}.mixed_precision")


@dataclass
class DistributeConfig:
    strategy: str = "default"  # default | mirrored | multi_worker | tpu
    devices: list[str] = field(default_factory=list)  # for mirrored; [] = all local GPUs (or CPU)

    def validate(self, prefix: str = "distribute") -> None:
        _choice(self.strategy, ("default", "mirrored", "multi_worker", "tpu"),
                f"{prefix}.strategy")


@dataclass
class TrackingConfig:
    experiment: str = "gen-keras"
    tracking_uri: str = ""  # "" = $MLFLOW_TRACKING_URI or the local SQLite store under mlflow/
    run_name: str = ""
    outputs_dir: str = "outputs"  # checkpoints and exports go under here
    log_model: bool = True

    def validate(self, prefix: str = "tracking") -> None:
        if not self.experiment:
            raise ConfigError(f"{prefix}.experiment must not be empty")


@dataclass
class RunConfig:
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, check_dataset: Callable[[str, str], None] | None = None) -> "RunConfig":
        self.model.validate("model")
        self.data.validate("data", check_dataset)
        self.train.validate("train")
        self.distribute.validate("distribute")
        self.tracking.validate("tracking")
        # Checks of a model section against the others (a model config may define one).
        check = getattr(self.model, "validate_run", None)
        if check is not None:
            check(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
_SECTIONS = {"data": DataConfig, "train": TrainConfig, "distribute": DistributeConfig,
             "tracking": TrackingConfig}


def read_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None, *, model_config_class: Callable[[str], type],
                check_dataset: Callable[[str, str], None] | None = None) -> RunConfig:
    """Load a YAML config, apply ``key=value`` overrides (``train.epochs=3``) and validate it
    (see :func:`parse_config`; callers use :func:`gen_keras.config_loader.load_config`)."""
    raw: dict[str, Any] = {}
    if base is not None:
        raw = json.loads(json.dumps(base))
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}{_shipped_configs_hint(path)}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        raw = _deep_merge(raw, loaded)
    for item in overrides or []:
        raw = _apply_override(raw, item)
    return parse_config(raw, model_config_class=model_config_class, check_dataset=check_dataset)


def parse_config(raw: dict[str, Any], *, model_config_class: Callable[[str], type],
                 check_dataset: Callable[[str, str], None] | None = None) -> RunConfig:
    """Validate a config dict: the run sections first (cheap), then the model section, whose
    config class ``model_config_class(kind)`` gives (the model registry, which loads the model
    modules, TensorFlow with them) — so a typo in ``train``/``data`` is reported before anything
    heavy loads. Both lookups are passed in (:mod:`gen_keras.config_loader`): this module is the
    schema, below the models and the data sources."""
    unknown = set(raw) - {"model", *_SECTIONS}
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; expected "
                          f"{['model', *_SECTIONS]}{_did_you_mean(unknown, ['model', *_SECTIONS])}")
    sections = {name: _build(cls, raw.get(name) or {}, name) for name, cls in _SECTIONS.items()}
    for name, section in sections.items():
        if name == "data":
            section.validate(name, check_dataset)
        else:
            section.validate(name)
    model_raw = dict(raw.get("model") or {})
    kind = model_raw.get("kind", "vae")
    model_cls = model_config_class(kind)  # raises ConfigError naming model.kind
    model = _build(model_cls, model_raw, "model")
    raw = _with_default_dataset(raw, model_cls)
    sections["data"] = _build(DataConfig, raw.get("data") or {}, "data")
    return RunConfig(model=model, **sections).validate(check_dataset)


def _shipped_configs_hint(path: Path) -> str:
    """The configs shipped in the clone's ``pipelines/configs/`` (the closest name first), where
    there is such a folder: the absolute path, so the hint works from any folder."""
    import difflib

    shipped = Path(__file__).resolve().parents[1] / "pipelines" / "configs"
    names = sorted(p.name for p in shipped.glob("*.yaml")) if shipped.is_dir() else []
    if not names:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {shipped / close[0]}?" if close else ""
    return f"{hint} The shipped configs, in {shipped}/: {', '.join(names)}"


def _did_you_mean(given, known) -> str:
    """``"; did you mean 'epochs'?"`` for the near misses among ``given``, else ``""``."""
    import difflib

    hints = [f"{g!r} → {m[0]!r}" for g in sorted(given)
             if (m := difflib.get_close_matches(str(g).rsplit(".", 1)[-1], known, n=1, cutoff=0.6))]
    return f"; did you mean {', '.join(hints)}?" if hints else ""


def _with_default_dataset(raw: dict, model_cls) -> dict:
    """A kind that cannot train on the default data set names its own (``default_dataset``: the
    translation kinds' tasks), used when the config names none."""
    default = getattr(model_cls, "default_dataset", "")
    data = raw.get("data") or {}
    if not default or not isinstance(data, dict) or "dataset" in data:
        return raw
    return {**raw, "data": {**data, "dataset": default}}


def parse_model_config(raw: dict[str, Any], model_config_class: Callable[[str], type]) -> ModelConfig:
    cfg = _build(model_config_class(raw.get("kind", "vae")), dict(raw), "model")
    cfg.validate()
    return cfg


def _build(cls, values: dict[str, Any], prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(f'{prefix}.{u}' for u in sorted(unknown))}"
                          f"{_did_you_mean(unknown, list(fields))}; known fields: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{prefix}.{name}") for name, value in values.items()}
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name}={value!r} must be true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{name}={value!r} must be an integer")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} must be an integer") from None
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} must be a number") from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be a string")
        return str(value)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} must be a list")
        args = typing.get_args(hint)
        item_hint = args[0] if args else Any
        items = [value_ if item_hint is Any else _coerce(value_, item_hint, f"{name}[{i}]")
                 for i, value_ in enumerate(value)]
        if origin is tuple:
            if len(args) > 1 and args[1] is not Ellipsis and len(items) != len(args):
                raise ConfigError(f"{name}={value!r} must have {len(args)} items")
            return tuple(items)
        return items
    return value


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(raw: dict, item: str) -> dict:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.field=value")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override key {key!r} must look like section.field (e.g. train.epochs)")
    section, name = parts
    raw = dict(raw)
    raw[section] = dict(raw.get(section) or {})
    raw[section][name] = yaml.safe_load(value) if value.strip() else ""
    return raw


def _positive(value, name):
    if value <= 0:
        raise ConfigError(f"{name}={value} must be > 0")


def _non_negative(value, name):
    if value < 0:
        raise ConfigError(f"{name}={value} must be >= 0")


def _choice(value, choices, name):
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {list(choices)}")
