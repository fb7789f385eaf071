"""Data: named sources (mnist10k, dsprites, shapes3d, tfds:, folder:, npz:) → one tf.data
pipeline; for the factor data sets also their factors (:func:`load_factor_split`) and a
ground-truth sampler (:func:`factor_sampler`); image-to-image tasks (pairs:<task>,
unpaired:<task>, :mod:`gen_keras.data.translation`) → (input, target) batches."""
from __future__ import annotations

import dataclasses

import numpy as np

from gen_keras.data.sources import SourceInfo, check_dataset_name, open_source
from gen_keras.data.translation import is_translation_dataset
from gen_keras.errors import ConfigError


@dataclasses.dataclass
class Datasets:
    train: "object"  # tf.data.Dataset of (images, labels) — or (input, target) / (a, b) for
    test: "object"  # image-to-image tasks — in GLOBAL batches
    info: SourceInfo  # a TranslationInfo for image-to-image tasks


def make_datasets(run_config, *, prefetch: bool = True) -> Datasets:
    """Open the configured source and build the train/test pipelines for the configured model."""
    from gen_keras.data.pipeline import cache_fits, make_pipeline

    model, data, train = run_config.model, run_config.data, run_config.train
    if is_translation_dataset(data.dataset) or is_translation_model(model):
        return _make_translation_datasets(run_config, prefetch)
    splits, info = open_source(data, seed=train.seed, image_shape=tuple(model.image_shape))
    check_compatible(model, info)
    image_shape = tuple(model.image_shape)
    common = dict(image_shape=image_shape, value_range=type(model).value_range,
                  batch_size=train.batch_size, seed=train.seed,
                  shuffle_buffer=data.shuffle_buffer, prefetch=prefetch and data.prefetch,
                  parallel_map=data.parallel_map)
    n_train = min(info.num_train, data.limit_train) if data.limit_train else info.num_train
    n_test = min(info.num_test, data.limit_test) if data.limit_test else info.num_test
    if n_train < train.batch_size:
        raise ConfigError(f"train.batch_size={train.batch_size} is larger than the "
                          f"{n_train} training images of data.dataset={data.dataset!r}")
    return Datasets(
        train=make_pipeline(splits["train"], training=True, limit=data.limit_train,
                            cache=data.cache and cache_fits(n_train, image_shape, data.cache_budget_mb),
                            **common),
        test=make_pipeline(splits["test"], training=False, limit=data.limit_test,
                           cache=data.cache and cache_fits(n_test, image_shape, data.cache_budget_mb),
                           **common),
        info=info,
    )


def is_translation_model(model_config) -> bool:
    """Whether the model translates images (its config says which pairing of data it takes)."""
    return getattr(type(model_config), "pairing", None) is not None


def _make_translation_datasets(run_config, prefetch: bool) -> Datasets:
    from gen_keras.data.translation import make_translation_pipeline, open_translation

    model, data, train = run_config.model, run_config.data, run_config.train
    if not is_translation_dataset(data.dataset):
        from gen_keras.data.translation import TASKS

        tasks = [f"{p}:{t}" for p, ts in TASKS.items() for t in ts]
        raise ConfigError(f"model.kind={model.kind!r} translates images; data.dataset={data.dataset!r} "
                          f"is not an image-to-image task (one of {tasks})")
    splits, info = open_translation(data, tuple(model.image_shape))
    check_translation_compatible(model, info)
    n_train = min(info.num_train, data.limit_train) if data.limit_train else info.num_train
    if n_train < train.batch_size:
        raise ConfigError(f"train.batch_size={train.batch_size} is larger than the "
                          f"{n_train} training examples of data.dataset={data.dataset!r}")
    common = dict(paired=info.paired, value_range=type(model).value_range, batch_size=train.batch_size,
                  seed=train.seed, shuffle_buffer=data.shuffle_buffer, prefetch=prefetch and data.prefetch)
    return Datasets(
        train=make_translation_pipeline(splits["train"], training=True, limit=data.limit_train, **common),
        test=make_translation_pipeline(splits["test"], training=False, limit=data.limit_test, **common),
        info=info,
    )


def check_translation_compatible(model_config, info) -> None:
    """The model must translate the task's pairing and shapes (input → target)."""
    from gen_keras.data.translation import TASKS

    if not is_translation_model(model_config):
        tasks = [f"{p}:{t}" for p, ts in TASKS.items() for t in ts]
        raise ConfigError(f"data.dataset={info.name!r} is an image-to-image task (one of {tasks}); "
                          f"model.kind={model_config.kind!r} is not a translation model")
    pairing = "paired" if info.paired else "unpaired"
    if type(model_config).pairing != pairing:
        raise ConfigError(f"model.kind={model_config.kind!r} trains on {type(model_config).pairing} "
                          f"data; data.dataset={info.name!r} is {pairing}")
    if tuple(model_config.input_shape) != tuple(info.input_shape):
        raise ConfigError(f"model.kind={model_config.kind!r} with model.image_shape="
                          f"{list(model_config.image_shape)} takes inputs of shape "
                          f"{list(model_config.input_shape)}; data.dataset={info.name!r} gives "
                          f"{list(info.input_shape)} inputs for {list(info.image_shape)} targets")


def check_compatible(model_config, info: SourceInfo) -> None:
    if model_config.conditional:
        if info.num_classes == 0:
            raise ConfigError(f"model.kind={model_config.kind!r} is class-conditional but "
                              f"data.dataset={info.name!r} has no labels")
        if info.num_classes > model_config.num_classes:
            raise ConfigError(f"model.num_classes={model_config.num_classes} is smaller than the "
                              f"{info.num_classes} classes of data.dataset={info.name!r}")


def load_split_arrays(run_config, split: str, limit: int = 0):
    """A whole split as numpy ``(images in the model's range, labels)`` — for evaluation."""
    return load_split(run_config.data, split, tuple(run_config.model.image_shape),
                      type(run_config.model).value_range, limit=limit, seed=run_config.train.seed)


# Splits of the sets that never change once prepared (mnist10k, the rendered factor sets), kept
# per process: an evaluation reads the same split several times (probes, reference sets,
# baselines), each read a TFDS open and a decode of every image. Callers get copies.
_SPLITS: dict = {}
_SPLITS_KEPT = 6


def load_split(data_cfg, split: str, image_shape, value_range, limit: int = 0, seed: int = 0):
    """One split of ``data_cfg.dataset`` as numpy ``(images in value_range, int32 labels)``,
    prepared as the training pipeline prepares it. ``seed`` is the split seed of sources
    without their own test split (a training run's ``train.seed``)."""
    from gen_keras.data.factor_specs import is_factor_dataset
    from gen_keras.data.pipeline import make_pipeline
    from gen_keras.data.sources import default_data_dir

    if split not in ("train", "test"):
        raise ConfigError(f"split={split!r} is not one of ['train', 'test']")
    if is_translation_dataset(data_cfg.dataset):
        raise ConfigError(f"data.dataset={data_cfg.dataset!r} is an image-to-image task: read it "
                          "with gen_keras.data.translation.load_translation_split")
    key = None
    if data_cfg.dataset == "mnist10k" or is_factor_dataset(data_cfg.dataset):
        key = (repr(data_cfg), str(default_data_dir(data_cfg.data_dir)), split, tuple(image_shape),
               tuple(value_range), int(limit), int(seed))
        if key in _SPLITS:
            images, labels = _SPLITS[key]
            return images.copy(), labels.copy()
    splits, _ = open_source(data_cfg, seed=seed, image_shape=tuple(image_shape))
    ds = make_pipeline(splits[split], image_shape=tuple(image_shape), value_range=tuple(value_range),
                       batch_size=1000, training=False, seed=0, cache=False, limit=limit)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    images, labels = np.concatenate(xs), np.concatenate(ys).astype(np.int32)
    if key is not None:
        while len(_SPLITS) >= _SPLITS_KEPT:
            _SPLITS.pop(next(iter(_SPLITS)))
        _SPLITS[key] = (images.copy(), labels.copy())
    return images, labels


def load_factor_split(data_cfg, split: str, limit: int = 10_000, *, value_range=None,
                      label_maps: bool = False):
    """Up to ``limit`` examples of one split of a factor data set (``dsprites``, ``shapes3d``,
    ``dsprites:20000``, ...) with their factors, as a
    :class:`~gen_keras.data.factor_source.FactorSplit`: images uint8 at the native shape (or
    float32 in ``value_range`` when given), labels, factor indices ``[N, K]`` and real values,
    and for ``shapes3d`` with ``label_maps=True`` the per-pixel label maps. The first ``limit``
    examples are a uniform random sample of the split (the shards hold it in a seeded random
    order). A data set without factors is a ConfigError naming it."""
    from gen_keras.data.factor_source import open_prepared
    from gen_keras.data.sources import default_data_dir

    require_factors(data_cfg.dataset)
    if int(limit) < 1:
        raise ConfigError(f"limit={limit} must be >= 1: a factor split is read into memory, so "
                          "name how many examples to read")
    prepared = open_prepared(data_cfg.dataset, default_data_dir(data_cfg.data_dir))
    out = prepared.read(split, limit, label_maps=label_maps)
    if value_range is not None:
        lo, hi = value_range
        out.images = out.images.astype(np.float32) / 255.0 * (hi - lo) + lo
    return out


def factor_sampler(dataset: str, value_range=(0.0, 1.0)):
    """The ground-truth sampler of a factor data set string (renders on demand; nothing is
    prepared): :class:`~gen_keras.data.ground_truth.FactorSampler`."""
    from gen_keras.data.factor_specs import parse_factor_spec
    from gen_keras.data.ground_truth import FactorSampler

    require_factors(dataset)
    return FactorSampler(parse_factor_spec(dataset).factor_set, value_range)


def require_factors(dataset: str, field: str = "data.dataset") -> None:
    """A factor metric or factor read on a data set without ground-truth factors fails here,
    naming the data set and the ones that have factors."""
    from gen_keras.data.factor_specs import FACTOR_SET_NAMES, is_factor_dataset

    if not is_factor_dataset(dataset):
        raise ConfigError(f"{field}={dataset!r} has no ground-truth factors; the factor "
                          f"metrics and factor reads need a factor data set: "
                          f"{', '.join(f'{n}[:<count>]' for n in FACTOR_SET_NAMES)}")


__all__ = ["Datasets", "SourceInfo", "check_dataset_name", "factor_sampler", "load_factor_split",
           "load_split", "load_split_arrays", "make_datasets", "require_factors"]
