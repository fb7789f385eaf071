"""The bundled data set: the 10,000 real MNIST test digits, behind the TFDS API.

Source: the MNIST database of handwritten digits (Yann LeCun, Corinna Cortes, Christopher J.C.
Burges), the t10k files; license Creative Commons Attribution-Share Alike 3.0.

Split protocol (used by every test, benchmark and quality figure): ``train`` = images 0..7999 in
file order, ``test`` = images 8000..9999. The files are verified against their sha256 before
they are parsed, and prepared once into a TFDS dataset (``TfDataBuilder``) in the cache dir, so
this source reaches the model through the same ``tfds`` reader as any catalog data set.
"""
from __future__ import annotations

import fcntl
import gzip
from importlib import resources
from pathlib import Path

import numpy as np

from gen_keras.errors import DataIntegrityError
from gen_keras.files import sha256_file

NAME = "mnist10k"
VERSION = "1.0.1"
NUM_TRAIN = 8000
NUM_TEST = 2000
FILES = {
    "images": ("t10k-images-idx3-ubyte.gz",
               "fa1df4cb74e6e16586f395ed87c5759f799135c5fd1515996bc02340fba92f5f"),
    "labels": ("t10k-labels-idx1-ubyte.gz",
               "604e4e0dcbdf2b978afd53c607ab784f8c99e680fd61d7983bc70839ed6528bb"),
}



def _file(name: str) -> Path:
    return Path(str(resources.files("gen_keras.data") / "mnist10k_files" / name))


def parse_idx(raw: bytes, magic: int, what: str) -> np.ndarray:
    """Parse an IDX file (big-endian header: magic, dims, then uint8 data)."""
    if len(raw) < 8 or int.from_bytes(raw[0:4], "big") != magic:
        raise DataIntegrityError(f"{what}: not an IDX file with magic {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataIntegrityError(f"{what}: header says {dims} but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_arrays(images_path: Path | None = None, labels_path: Path | None = None):
    """All 10,000 images ``[N, 28, 28, 1] uint8`` and labels ``[N] int64``, checksums verified."""
    arrays = {}
    for key, magic, given in (("images", 2051, images_path), ("labels", 2049, labels_path)):
        name, digest = FILES[key]
        path = Path(given) if given else _file(name)
        actual = sha256_file(path)
        if actual != digest:
            raise DataIntegrityError(
                f"{path}: sha256 {actual} does not match the recorded {digest}; the bundled "
                "MNIST file is corrupt or was replaced — reinstall gen-keras"
            )
        arrays[key] = parse_idx(gzip.decompress(path.read_bytes()), magic, str(path))
    images = arrays["images"][..., None]
    labels = arrays["labels"].astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise DataIntegrityError("mnist10k: image and label counts differ")
    return images, labels


def split_arrays(split: str):
    images, labels = load_arrays()
    if split == "train":
        return images[:NUM_TRAIN], labels[:NUM_TRAIN]
    if split == "test":
        return images[NUM_TRAIN:], labels[NUM_TRAIN:]
    raise ValueError(f"mnist10k has splits 'train' and 'test', not {split!r}")


def builder(data_dir: Path):
    """The prepared TFDS builder for mnist10k under ``data_dir`` (prepared once, under a lock)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    def make(split_datasets):
        return tfds.dataset_builders.TfDataBuilder(
            name=NAME,
            version=VERSION,
            split_datasets=split_datasets,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            description="The 10,000 MNIST test digits; train = first 8,000, test = last 2,000.",
            homepage="http://yann.lecun.com/exdb/mnist/",
            citation="LeCun, Cortes, Burges. The MNIST database of handwritten digits. CC BY-SA 3.0.",
            data_dir=str(data_dir),
            disable_shuffling=True,  # keep file order: test example i is image 8000 + i
        )

    # Prepare once; concurrent processes (multi-worker, parallel tests) wait on the lock.
    with open(data_dir / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        images, labels = load_arrays()  # verifies checksums every time, prepared or not
        splits = {
            "train": tf.data.Dataset.from_tensor_slices(
                {"image": images[:NUM_TRAIN], "label": labels[:NUM_TRAIN]}),
            "test": tf.data.Dataset.from_tensor_slices(
                {"image": images[NUM_TRAIN:], "label": labels[NUM_TRAIN:]}),
        }
        b = make(splits)
        if not _is_prepared(b):
            b.download_and_prepare()
        return b


def _is_prepared(b) -> bool:
    try:
        return (b.info.splits["train"].num_examples == NUM_TRAIN
                and b.info.splits["test"].num_examples == NUM_TEST
                and Path(b.data_dir, "dataset_info.json").exists())
    except Exception:
        return False
