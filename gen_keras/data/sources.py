"""Data sources, each named by one string: ``mnist10k``, ``dsprites[:<count>]``,
``shapes3d[:<count>]``, ``tfds:<name>[:<split>]``, ``folder:<path>``, ``npz:<path>`` (and the
image-to-image tasks ``pairs:<task>`` / ``unpaired:<task>`` of :mod:`gen_keras.data.translation`,
which yield image pairs instead).

Every source yields, per split, a ``tf.data.Dataset`` of ``{"image": uint8 [H, W, C],
"label": int64}`` plus a :class:`SourceInfo`; the pipeline turns that into model batches, so
all sources reach the model the same way. The factor data sets (``dsprites``, ``shapes3d``;
:mod:`gen_keras.data.factor_sets`) also yield each example's ``factors`` and ``factor_values``.
"""
from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import numpy as np

from gen_keras.data.factor_specs import FACTOR_SET_NAMES, is_factor_dataset, parse_factor_spec
from gen_keras.data.image_files import read_npz
from gen_keras.data.paths import default_data_dir
from gen_keras.errors import ConfigError

OFFLINE_ALTERNATIVES = (
    "offline alternatives: 'mnist10k' (bundled), 'npz:<path>' (arrays x[, y] in an .npz file), "
    "'folder:<path>' (a folder of images), or a TFDS data set already prepared in data.data_dir"
)


@dataclasses.dataclass
class SourceInfo:
    name: str  # the config string
    num_classes: int  # 0 when the source has no labels
    num_train: int
    num_test: int
    source_uri: str  # a path or URL MLflow can resolve, for mlflow.log_input
    skipped: int = 0  # files skipped (folder sources; gen_keras.data.image_files's rules)
    skipped_files: list[str] = dataclasses.field(default_factory=list)
    skip_reasons: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> why
    # folder sources: what the preparation did (gen_keras.data.folder_prepare.PreparedFolder.summary)
    folder_summary: dict = dataclasses.field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None  # native shape, when known
    factors: tuple[str, ...] = ()  # names of the ground-truth factors, when the source has them


def check_dataset_name(name: str, field: str = "data.dataset") -> None:
    """Reject a malformed data set string before anything is read."""
    if name == "mnist10k":
        return
    if is_factor_dataset(name):
        parse_factor_spec(name, field)  # raises naming the field
        return
    scheme, _, rest = name.partition(":")
    if scheme in ("pairs", "unpaired"):
        from gen_keras.data.translation import check_translation_name

        check_translation_name(name, field)
        return
    if scheme not in ("tfds", "folder", "npz") or not rest:
        factor_sets = ", ".join(f"'{n}[:<count>]'" for n in FACTOR_SET_NAMES)
        raise ConfigError(
            f"{field}={name!r} is not a known data set; use 'mnist10k', {factor_sets}, "
            "'tfds:<name>[:<split>]', 'folder:<path>', 'npz:<path>' or an image-to-image task "
            "('pairs:sr4', 'pairs:inpaint', 'pairs:scenes[:<count>]', 'unpaired:mnistm')"
        )
    if scheme == "folder" and not Path(rest).expanduser().is_dir():
        raise ConfigError(f"{field}={name!r}: folder {rest!r} does not exist")
    if scheme == "npz" and not Path(rest).expanduser().is_file():
        raise ConfigError(f"{field}={name!r}: file {rest!r} does not exist")


# ----------------------------------------------------------------------------------------------
def open_source(data_cfg, seed: int = 0, image_shape=None):
    """Return ``(splits, info)`` where ``splits`` maps 'train'/'test' to element datasets.

    ``image_shape``: the model's; a ``folder:`` is prepared at it (once, then streamed:
    :mod:`gen_keras.data.folder_prepare`), so it is required for a folder."""
    name = data_cfg.dataset
    check_dataset_name(name)
    if name == "mnist10k":
        return _open_mnist10k(data_cfg)
    if is_factor_dataset(name):
        return _open_factor_set(data_cfg, seed)
    scheme, _, rest = name.partition(":")
    if scheme == "tfds":
        return _open_tfds(rest, data_cfg, seed)
    if scheme == "npz":
        x, y = read_npz(Path(rest).expanduser(), f"data.dataset='npz:{rest}'")
        return _from_arrays(name, str(Path(rest).expanduser().resolve()), x, y, data_cfg, seed)
    if image_shape is None:
        raise ConfigError(f"data.dataset={name!r}: a folder is prepared at the model's image shape; "
                          "pass image_shape (model.image_shape)")
    return _open_folder(data_cfg, image_shape, seed)


def _open_folder(data_cfg, image_shape, seed: int, *, progress: bool = True):
    """``folder:<path>`` prepared for ``image_shape`` by ``data.resize`` (once; then streamed
    from the shards: :mod:`gen_keras.data.folder_prepare`)."""
    from gen_keras.data.folder_prepare import Settings, ensure_prepared

    root = Path(data_cfg.dataset.partition(":")[2]).expanduser()
    settings = Settings(tuple(int(d) for d in image_shape), data_cfg.resize)
    prepared = ensure_prepared(root, settings, default_data_dir(data_cfg.data_dir), progress=progress)
    _, n_train, n_test = prepared.split(data_cfg.test_fraction)
    splits = {s: prepared.elements(s, test_fraction=data_cfg.test_fraction, seed=seed)
              for s in ("train", "test")}
    skipped = [(str(prepared.root / s.path), f"{s.kind}: {s.reason}") for s in prepared.skips]
    info = SourceInfo(data_cfg.dataset, len(prepared.classes), n_train, n_test,
                      source_uri=str(prepared.root), image_shape=tuple(prepared.image_shape),
                      skipped=len(skipped), skipped_files=[p for p, _ in skipped],
                      skip_reasons=dict(skipped), folder_summary=prepared.summary())
    return splits, info


def _open_mnist10k(data_cfg):
    from gen_keras.data import mnist10k

    b = mnist10k.builder(default_data_dir(data_cfg.data_dir))
    splits = {s: b.as_dataset(split=s, shuffle_files=False) for s in ("train", "test")}
    info = SourceInfo("mnist10k", 10, mnist10k.NUM_TRAIN, mnist10k.NUM_TEST,
                      source_uri=str(Path(b.data_dir).resolve()), image_shape=(28, 28, 1))
    return splits, info


def _open_factor_set(data_cfg, seed: int = 0):
    if data_cfg.factor_stream == "render":
        from gen_keras.data.factor_render import RenderedFactorSet
        from gen_keras.data.factor_specs import parse_factor_spec

        rendered = RenderedFactorSet(parse_factor_spec(data_cfg.dataset), seed)
        fs = rendered.factor_set
        splits = {s: rendered.elements(s) for s in ("train", "test")}
        return splits, SourceInfo(data_cfg.dataset, fs.num_classes, rendered.num_examples("train"),
                                  rendered.num_examples("test"), source_uri=rendered.source_uri,
                                  image_shape=fs.image_shape, factors=fs.factor_names)
    from gen_keras.data.factor_source import open_prepared

    prepared = open_prepared(data_cfg.dataset, default_data_dir(data_cfg.data_dir))
    fs = prepared.factor_set
    splits = {s: prepared.elements(s) for s in ("train", "test")}
    info = SourceInfo(data_cfg.dataset, fs.num_classes, prepared.num_examples("train"),
                      prepared.num_examples("test"), source_uri=str(prepared.folder.resolve()),
                      image_shape=fs.image_shape, factors=fs.factor_names)
    return splits, info


def _open_tfds(spec: str, data_cfg, seed: int):
    import tensorflow_datasets as tfds

    ds_name, _, split = spec.partition(":")
    data_dir = default_data_dir(data_cfg.data_dir)
    try:
        b = tfds.builder(ds_name, data_dir=str(data_dir))
    except Exception as exc:  # DatasetNotFoundError and friends
        raise ConfigError(f"data.dataset='tfds:{spec}': TFDS has no data set {ds_name!r} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not _tfds_prepared(b):
        _require_internet(f"tfds:{spec}", data_cfg.tfds_timeout_s)
        b.download_and_prepare()
    available = list(b.info.splits)
    features = b.info.features
    label_key = "label" if "label" in features else None
    num_classes = int(features["label"].num_classes) if label_key else 0
    image_key = "image" if "image" in features else None
    if image_key is None:
        raise ConfigError(f"data.dataset='tfds:{spec}' has no 'image' feature")

    def elements(split_spec):
        ds = b.as_dataset(split=split_spec, shuffle_files=False)

        def to_element(ex):
            import tensorflow as tf

            label = tf.cast(ex[label_key], tf.int64) if label_key else tf.constant(-1, tf.int64)
            return {"image": ex[image_key], "label": label}

        return ds.map(to_element)

    if split:
        if split not in available and "[" not in split:
            raise ConfigError(f"data.dataset='tfds:{spec}': split {split!r} not in {available}")
        frac = int(round(data_cfg.test_fraction * 100))
        splits = {"train": elements(f"{split}[:{100 - frac}%]"), "test": elements(f"{split}[{100 - frac}%:]")}
        n = b.info.splits[split.split("[")[0]].num_examples
        n_train, n_test = int(n * (100 - frac) / 100), n - int(n * (100 - frac) / 100)
    elif "train" in available and "test" in available:
        splits = {"train": elements("train"), "test": elements("test")}
        n_train, n_test = b.info.splits["train"].num_examples, b.info.splits["test"].num_examples
    else:
        raise ConfigError(f"data.dataset='tfds:{spec}': name a split, one of {available}")
    shape = tuple(int(d) for d in features[image_key].shape)
    info = SourceInfo(f"tfds:{spec}", num_classes, n_train, n_test,
                      source_uri=str(Path(b.data_dir).resolve()), image_shape=shape)
    return splits, info


def _tfds_prepared(b) -> bool:
    try:
        return Path(b.data_dir, "dataset_info.json").exists() and bool(b.info.splits)
    except Exception:
        return False


def _require_internet(what: str, timeout_s: float, host: str = "storage.googleapis.com") -> None:
    """Fail within ``timeout_s`` seconds when the TFDS download host cannot be reached.

    (A plain ``tfds.load`` without internet retries for minutes before it gives up.)
    """
    result: dict[str, object] = {}

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            result["ok"] = True
        except OSError as exc:
            result["error"] = exc

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout_s + 0.5)
    if not result.get("ok"):
        reason = result.get("error") or f"no answer within {timeout_s:.0f}s"
        raise ConfigError(
            f"data.dataset={what!r} must be downloaded, but the download server cannot be reached "
            f"({reason}); {OFFLINE_ALTERNATIVES}"
        )


def _from_arrays(name, uri, x, y, data_cfg, seed, num_classes=None):
    import tensorflow as tf

    n = x.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * data_cfg.test_fraction)))
    if n - n_test < 1:
        raise ConfigError(f"data.dataset={name!r} holds {n} image(s): too few to split")
    test_idx, train_idx = order[:n_test], order[n_test:]
    labels = y if y is not None else np.full((n,), -1, np.int64)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y is not None else 0
    splits = {
        "train": tf.data.Dataset.from_tensor_slices({"image": x[train_idx], "label": labels[train_idx]}),
        "test": tf.data.Dataset.from_tensor_slices({"image": x[test_idx], "label": labels[test_idx]}),
    }
    info = SourceInfo(name, num_classes, len(train_idx), len(test_idx), uri,
                      image_shape=tuple(int(d) for d in x.shape[1:]))
    return splits, info
