"""A ``folder:<path>`` data set prepared ONCE into sharded TFRecord files in the data cache, then
streamed: the file list is read every time (names, sizes, modification times — cheap), the
images are decoded only when the list has files the cache has not prepared yet.

Layout (``<data_dir>`` is ``data.data_dir`` or the default cache, :mod:`gen_keras.data.paths`)::

    <data_dir>/gen_keras_folders/<folder name>-<key>/      key: the folder's absolute path and
        manifest.json                                         the preparation settings
        part-<fingerprint>/                                 one part per preparation
            shard-00000-of-00013.tfrecord ...               ~4,096 examples each
            files.json                                      every file of the part: size, mtime,
                                                            class, kept / skipped (kind, reason)

**Settings** (:class:`Settings`): ``model.image_shape`` and ``data.resize`` (plus this module's
format version, the background colour and the enlargement limit). Other settings — another
image shape, another rule — are another folder beside it: both stay usable.

**Fingerprint**: sha256 of the settings and of every file's relative path, size and mtime (ns).
The manifest holds the fingerprint of the file list it covers; when the folder's listing has the
same fingerprint, nothing is decoded. **Appending** (the retraining case): files the manifest does
not know yet are prepared ALONE into a new part and the manifest gains it; a file that was skipped
and has changed since is retried in the new part. A file that was used (kept) and has since
changed or disappeared would leave a stale example in a shard, so the folder is prepared again
from scratch (the log says which file and why).

**Examples** (``tf.train.Example``): ``image`` (PNG bytes of the uint8 image at
``model.image_shape``), ``class`` (the sub-folder's name, ``""`` without sub-folders),
``split_key`` (int64 from sha256 of the relative path), ``path``. A part's examples are written
in a seeded random order (seed: the part's fingerprint), so reading the shards is already a
shuffle and ``data.limit_train=N`` a uniform random subset.

**Split**: the test split is the ``round(n * data.test_fraction)`` kept examples (at least 1)
with the smallest ``split_key`` — a function of the file NAMES, not of ``train.seed``: a file
stays in its split when the folder grows (a few near the boundary move when the count changes),
so a retrained model is scored on (nearly) the same held-out images.

**Atomicity**: a part is written into ``part-<fp>.incomplete-<random>`` and renamed into place;
the manifest, written last (atomically), is what makes it visible. A killed preparation leaves a
folder nothing reads and the next preparation removes. All of it runs under a file lock, so
concurrent runs prepare once. Every open checks each shard's size and sha256 against the
manifest (:class:`~gen_keras.errors.DataIntegrityError` naming the folder to delete).

**Parallelism**: files are decoded in ``workers`` processes (default: one per usable core, up
to 8; one below 500 files, where starting processes costs more than it saves), 64 files per
task, results written in order, so the shards are the same bytes whatever the worker count. :mod:`gen_keras.data.folder_beam` runs
the same preparation as an Apache Beam pipeline for folders of millions of files.
"""
from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

from gen_keras.data import resize
from gen_keras.data.image_files import Skip, is_image_name
from gen_keras.errors import ConfigError, DataIntegrityError

log = logging.getLogger("gen_keras.data")

PREPARE_FORMAT = 1  # bump when what a file becomes changes: old preparations are then not reused
CACHE_NAME = "gen_keras_folders"
MANIFEST = "manifest.json"
PART_FILES = "files.json"
SHARD_EXAMPLES = 4096
CHUNK_FILES = 64  # files per task of a worker process
SPLIT_SALT = b"gen_keras.folder_split:"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a file becomes: the model's image shape and the resize rule."""

    image_shape: tuple[int, int, int]
    resize: str = resize.DEFAULT_RULE

    def as_dict(self) -> dict:
        from gen_keras.data.folder_decode import BACKGROUND

        return {"format": PREPARE_FORMAT, "image_shape": [int(d) for d in self.image_shape],
                "resize": self.resize, "background": list(BACKGROUND),
                "max_upscale": resize.MAX_UPSCALE}


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the folder, '/'-separated
    size: int
    mtime_ns: int
    label: str = ""  # the class sub-folder, "" when the folder has none


@dataclasses.dataclass
class Listing:
    root: Path
    entries: list[FileEntry]
    has_classes: bool
    ignored: dict[str, int]  # why -> how many files were not considered

    def describe_ignored(self) -> str:
        return ", ".join(f"{n} {why}" for why, n in sorted(self.ignored.items())) or "none"


# ----------------------------------------------------------------------------------------------
# The file list
# ----------------------------------------------------------------------------------------------
def list_folder(root: Path) -> Listing:
    """Every file named like an image under ``root``, sorted. Sub-folders (not hidden) are the
    classes: then only files inside them count (at any depth), and files beside them are
    ignored. Hidden files and folders (``.name``: ``.DS_Store``, macOS ``._photo.jpg``) are
    ignored. Symbolic links to files are followed (a dangling one is listed and skipped when
    read); links to folders are not."""
    root = Path(root)
    ignored: Counter = Counter()
    top = sorted(os.scandir(root), key=lambda e: e.name)
    classes = [e for e in top if not e.name.startswith(".") and e.is_dir()]
    entries: list[FileEntry] = []

    def add(path: str, rel: str, label: str) -> None:
        name = os.path.basename(rel)
        if name.startswith("."):
            ignored["hidden"] += 1
        elif not is_image_name(name):
            ignored["not named like an image"] += 1
        else:
            try:
                st = os.stat(path)
                entries.append(FileEntry(rel, int(st.st_size), int(st.st_mtime_ns), label))
            except OSError:  # dangling link, no permission: listed, skipped with its reason
                entries.append(FileEntry(rel, -1, 0, label))

    if classes:
        ignored_top = sum(1 for e in top if not e.is_dir())
        if ignored_top:
            ignored["beside the class sub-folders"] += ignored_top
        for c in classes:
            for dirpath, dirnames, filenames in os.walk(c.path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    add(full, os.path.relpath(full, root).replace(os.sep, "/"), c.name)
    else:
        for e in top:
            if e.is_dir():
                continue  # only hidden folders get here
            add(e.path, e.name, "")
    entries.sort(key=lambda e: e.path)
    return Listing(root, entries, bool(classes), dict(ignored))


def fingerprint(settings: Settings, entries) -> str:
    h = hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode())
    for e in sorted(entries, key=lambda e: e.path):
        h.update(f"{e.path}\0{e.size}\0{e.mtime_ns}\0{e.label}\n".encode())
    return h.hexdigest()


def split_key(path: str) -> int:
    """A 63-bit number from the relative path: the split (module docstring)."""
    return int.from_bytes(hashlib.sha256(SPLIT_SALT + path.encode()).digest()[:8], "big") >> 1


def set_folder(root: Path, settings: Settings, data_dir: Path) -> Path:
    key = hashlib.sha256(json.dumps([str(Path(root).resolve()), settings.as_dict()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(root).resolve().name)[:40] or "root"
    return Path(data_dir) / CACHE_NAME / f"{slug}-{key}"


# ----------------------------------------------------------------------------------------------
# Shards: which file goes where (shared with the Beam pipeline) and how an example is written
# ----------------------------------------------------------------------------------------------
def plan_shards(entries: list[FileEntry], part_fingerprint: str,
                shard_examples: int = SHARD_EXAMPLES) -> list[list[FileEntry]]:
    """The part's files in write order, cut into shards: a seeded permutation of the sorted
    entries (seed: the part's fingerprint), ``shard_examples`` files per shard."""
    ordered = sorted(entries, key=lambda e: e.path)
    seed = int(part_fingerprint[:16], 16)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    files = [ordered[i] for i in perm]
    return [files[s:s + shard_examples] for s in range(0, len(files), shard_examples)] or [[]]


def shard_name(index: int, total: int) -> str:
    return f"shard-{index:05d}-of-{total:05d}.tfrecord"


def encode_chunk(task: tuple) -> list:
    """``(root, relative paths, image shape, rule)`` → one ``(png, notes)`` or Skip per path (the
    work of a decoding process; no TensorFlow here). A Skip names the relative path."""
    from gen_keras.data.folder_decode import prepare_file

    root, paths, image_shape, rule = task
    out = []
    for rel in paths:
        result = prepare_file(os.path.join(root, rel), image_shape, rule)
        out.append(Skip(rel, result.kind, result.reason) if isinstance(result, Skip) else result)
    return out


def serialize(png: bytes, entry: FileEntry) -> bytes:
    import tensorflow as tf

    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": f(bytes_list=tf.train.BytesList(value=[png])),
        "class": f(bytes_list=tf.train.BytesList(value=[entry.label.encode()])),
        "split_key": f(int64_list=tf.train.Int64List(value=[split_key(entry.path)])),
        "path": f(bytes_list=tf.train.BytesList(value=[entry.path.encode()])),
    })).SerializeToString(deterministic=True)  # map keys sorted: the same bytes in every process


class ShardAccount:
    """What one shard holds and skipped — the same record from the in-process writer and the
    Beam workers."""

    def __init__(self, name: str):
        self.name, self.kept, self.skips, self.notes = name, [], [], Counter()

    def add(self, entry: FileEntry, result) -> bytes | None:
        if isinstance(result, Skip):
            self.skips.append({"path": entry.path, "kind": result.kind, "reason": result.reason})
            return None
        png, notes = result
        self.kept.append(entry.path)
        self.notes.update(notes)
        return serialize(png, entry)

    def record(self, path: Path | None = None, file_bytes: int = 0, sha256: str = "") -> dict:
        if path is not None:
            from gen_keras.files import sha256_file

            file_bytes, sha256 = Path(path).stat().st_size, sha256_file(path)
        return {"file": self.name, "bytes": int(file_bytes), "sha256": sha256,
                "num_examples": len(self.kept), "kept": self.kept, "skips": self.skips,
                "notes": dict(self.notes)}


# ----------------------------------------------------------------------------------------------
# Preparing a part (in this process and its decoding workers)
# ----------------------------------------------------------------------------------------------
def default_workers(n_files: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 1 if n_files < 500 else max(1, min(cores, 8))


def write_part(root: Path, entries: list[FileEntry], settings: Settings, part_dir: Path, *,
               workers: int | None = None, progress: bool = True,
               shard_examples: int = SHARD_EXAMPLES, desc: str = "") -> list[dict]:
    """Decode ``entries`` (``workers`` processes), write the part's shards into ``part_dir``
    (which exists); returns one :meth:`ShardAccount.record` per shard."""
    import tensorflow as tf

    part_fp = fingerprint(settings, entries)
    shards = plan_shards(entries, part_fp, shard_examples)
    tasks, owners = [], []
    for i, files in enumerate(shards):
        for s in range(0, len(files), CHUNK_FILES):
            chunk = files[s:s + CHUNK_FILES]
            tasks.append((str(root), [e.path for e in chunk], tuple(settings.image_shape), settings.resize))
            owners.append((i, chunk))
    workers = workers or default_workers(len(entries))
    bar = _progress_bar(len(entries), desc or f"preparing folder:{root}", progress)
    records, writer, account, current = [], None, None, -1

    def close():
        if writer is not None:
            writer.close()
            records.append(account.record(part_dir / account.name))

    try:
        for (i, chunk), results in zip(owners, _map(encode_chunk, tasks, workers)):
            if i != current:
                close()
                current, account = i, ShardAccount(shard_name(i, len(shards)))
                writer = tf.io.TFRecordWriter(str(part_dir / account.name))
            for entry, result in zip(chunk, results):
                example = account.add(entry, result)
                if example is not None:
                    writer.write(example)
            bar.update(len(chunk))
        close()
        writer = None
        for i in range(len(records), len(shards)):  # an empty part: one empty shard
            account = ShardAccount(shard_name(i, len(shards)))
            tf.io.TFRecordWriter(str(part_dir / account.name)).close()
            records.append(account.record(part_dir / account.name))
    finally:
        bar.close()
    return records


def _map(fn, tasks, workers: int):
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(t)
        return
    import multiprocessing

    # spawn, not fork: the parent may already run TensorFlow's threads.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(fn, tasks)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc[-60:], unit="img", disable=not enabled, mininterval=1.0,
                file=sys.stderr, dynamic_ncols=True)


def part_files(entries: list[FileEntry], shards: list[dict], removed=()) -> dict:
    """The part's ``files.json``: every file it covers (kept, skipped) or marks removed."""
    status = {p: ("kept", "", "") for r in shards for p in r["kept"]}
    status.update({s["path"]: ("skipped", s["kind"], s["reason"]) for r in shards for s in r["skips"]})
    rows = [[e.path, e.size, e.mtime_ns, e.label, *status[e.path]] for e in entries]
    rows += [[p, -1, 0, "", "removed", "", ""] for p in removed]
    return {"format": PREPARE_FORMAT,
            "columns": ["path", "size", "mtime_ns", "class", "status", "kind", "reason"],
            "rows": sorted(rows)}


# ----------------------------------------------------------------------------------------------
# The prepared set: prepare or append under a lock, then verify and open
# ----------------------------------------------------------------------------------------------
def ensure_prepared(root, settings: Settings, data_dir, *, workers: int | None = None,
                    progress: bool = True, field: str = "data.dataset",
                    part_writer=None) -> PreparedFolder:
    """The prepared, verified set of the folder ``root`` for ``settings``: prepared now if the
    cache lacks it, appended to if the folder has new files (module docstring). Refuses an
    empty folder, a folder where nothing was usable and an image shape no file reaches, each
    with a ConfigError naming the folder and the counts. ``part_writer``: what writes a part's
    shards (default :func:`write_part`, in this process and its decoding workers;
    :func:`gen_keras.data.folder_beam.beam_part_writer` runs it on Apache Beam)."""
    root = Path(root).expanduser().resolve()
    name = f"{field}='folder:{root}'"
    resize.check_rule(settings.resize)
    check_image_shape(settings.image_shape, name)
    listing = list_folder(root)
    if not listing.entries:
        raise ConfigError(f"{name}: the folder holds no image files (PNG, JPEG, BMP, GIF, WebP by "
                          f"name); files not considered: {listing.describe_ignored()}")
    folder = set_folder(root, settings, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = part_writer or functools.partial(write_part, workers=workers, progress=progress)
        manifest = _update(folder, listing, settings, writer, progress)
    prepared = PreparedFolder(folder, manifest)
    prepared.verify()
    prepared.check_usable(name, listing)
    return prepared


def check_image_shape(image_shape, name: str) -> None:
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
        raise ConfigError(f"model.image_shape={list(shape)}: {name} is prepared as grey (channels 1) "
                          "or RGB (channels 3) images of at least 1x1 pixels; no resize rule "
                          "reaches other channel counts")


def _update(folder: Path, listing: Listing, settings: Settings, writer, progress) -> dict:
    """Bring the manifest up to the listing (the caller holds the lock); returns it."""
    manifest = _read_manifest(folder)
    current_fp = fingerprint(settings, listing.entries)
    if manifest is not None and manifest.get("fingerprint") == current_fp:
        return manifest
    _remove_leftovers(folder, manifest)
    parts = manifest["parts"] if manifest else []
    known = _latest_status(folder, parts)
    now = {e.path: e for e in listing.entries}
    stale = [p for p, r in known.items() if r["status"] == "kept"
             and (p not in now or (now[p].size, now[p].mtime_ns) != (r["size"], r["mtime_ns"]))]
    if stale:
        log.warning("folder:%s: %d prepared file(s) changed or disappeared since the preparation "
                    "(the first: %s); preparing the folder again", listing.root, len(stale), stale[0])
        parts, known = [], {}
    new = [e for e in listing.entries if e.path not in known
           or (known[e.path]["size"], known[e.path]["mtime_ns"]) != (e.size, e.mtime_ns)]
    removed = sorted(p for p, r in known.items() if r["status"] == "skipped" and p not in now)
    if new or removed:
        kind = "appending" if parts else "preparing"
        log.info("folder:%s: %s %d file(s) into %s", listing.root, kind, len(new), folder)
        parts = parts + [_prepare_part(folder, listing.root, new, removed, settings, writer,
                                       progress, kind)]
    manifest = {"format": PREPARE_FORMAT, "folder": str(listing.root), "settings": settings.as_dict(),
                "fingerprint": current_fp, "files": len(listing.entries), "parts": parts}
    from gen_keras.files import atomic_write_text

    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _prepare_part(folder: Path, root: Path, entries, removed, settings, writer, progress,
                  kind: str) -> dict:
    import tensorflow  # noqa: F401  (its import is not part of the preparation's time)

    part_fp = fingerprint(settings, entries)
    final = folder / f"part-{part_fp[:16]}-{uuid.uuid4().hex[:6]}"
    tmp = folder / f"{final.name}.incomplete-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    started, cpu = time.time(), cpu_seconds()
    try:
        shards = writer(root, entries, settings, tmp, desc=f"{kind} folder:{root.name}") if entries else []
        (tmp / PART_FILES).write_text(json.dumps(part_files(entries, shards, removed)))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    record = part_record(final.name, part_fp, shards, len(entries),
                         seconds=time.time() - started, cpu=cpu_seconds() - cpu,
                         workers=getattr(writer, "keywords", {}).get("workers")
                         or default_workers(len(entries)))
    log.info("folder:%s: %s", root, describe_part(record))
    if progress:
        print(f"folder:{root}: {describe_part(record)}", file=sys.stderr, flush=True)
    return record


def part_record(name: str, part_fp: str, shards: list[dict], n_files: int, *, seconds: float,
                cpu: float, workers: int) -> dict:
    """The manifest's entry for one part (without the per-file lists, which are in files.json)."""
    notes = Counter()
    skipped = Counter()
    for r in shards:
        notes.update(r["notes"])
        skipped.update(s["kind"] for s in r["skips"])
    return {"name": name, "fingerprint": part_fp, "files": n_files,
            "kept": sum(r["num_examples"] for r in shards), "skipped": dict(skipped),
            "notes": dict(notes), "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "workers": workers,
            "shards": [{k: r[k] for k in ("file", "bytes", "sha256", "num_examples")} for r in shards]}


def describe_part(r: dict) -> str:
    skipped = sum(r["skipped"].values())
    why = ", ".join(f"{k} {n}" for k, n in sorted(r["skipped"].items()))
    notes = ", ".join(f"{k} {n}" for k, n in sorted(r["notes"].items()))
    mb = sum(s["bytes"] for s in r["shards"]) / 2**20
    rate = r["files"] / max(r["seconds"], 0.01)
    return (f"{r['files']:,} file(s): {r['kept']:,} kept, {skipped:,} skipped"
            + (f" ({why})" if why else "") + (f"; converted: {notes}" if notes else "")
            + f"; {len(r['shards'])} shard(s), {mb:.1f} MB; {r['seconds']:.1f} s ({rate:,.0f} img/s, "
              f"{r['cpu_seconds']:.1f} CPU s, {r['workers']} process(es))")


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DataIntegrityError(f"{folder / MANIFEST} does not read ({exc}); delete the folder "
                                 f"{folder} and it is prepared again") from None
    return manifest if manifest.get("format") == PREPARE_FORMAT else None


def _latest_status(folder: Path, parts: list[dict]) -> dict[str, dict]:
    """path → its row in the latest part that covers it (removed files dropped)."""
    out: dict[str, dict] = {}
    for part in parts:
        for row in read_part_files(folder / part["name"]):
            out[row["path"]] = row
    return {p: r for p, r in out.items() if r["status"] != "removed"}


def read_part_files(part_dir: Path) -> list[dict]:
    data = json.loads((Path(part_dir) / PART_FILES).read_text())
    cols = data["columns"]
    return [dict(zip(cols, row)) for row in data["rows"]]


def _remove_leftovers(folder: Path, manifest: dict | None) -> None:
    """Folders of killed preparations, and parts the manifest no longer lists (the previous
    generation after a preparation from scratch: kept until the next preparation, so a run that
    was reading them when the folder changed could finish its epoch)."""
    listed = {p["name"] for p in (manifest or {}).get("parts", [])}
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith("part-") and p.name not in listed:
            shutil.rmtree(p, ignore_errors=True)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the decoding processes)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
class PreparedFolder:
    """A prepared folder: counts, classes, the split, the skipped files, and the element
    stream the training pipeline reads (``{"image": uint8 [h, w, c], "label": int64}``)."""

    PARSE_BATCH = 256
    CYCLE, BLOCK = 16, 16

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = Path(folder), manifest
        self.image_shape = tuple(manifest["settings"]["image_shape"])
        rows = _latest_status(self.folder, manifest["parts"]).values()
        kept = [r for r in rows if r["status"] == "kept"]
        self.skips = sorted((Skip(r["path"], r["kind"], r["reason"]) for r in rows
                             if r["status"] == "skipped"), key=lambda s: s.path)
        self.classes = tuple(sorted({r["class"] for r in kept if r["class"]}))
        self._keys = np.sort(np.array([split_key(r["path"]) for r in kept], np.int64))
        self._labels = Counter(r["class"] for r in kept)

    @property
    def root(self) -> Path:
        return Path(self.manifest["folder"])

    @property
    def num_kept(self) -> int:
        return len(self._keys)

    def shard_files(self) -> list[str]:
        return [str(self.folder / p["name"] / s["file"]) for p in self.manifest["parts"]
                for s in p["shards"]]

    def notes(self) -> dict[str, int]:
        total = Counter()
        for p in self.manifest["parts"]:
            total.update(p["notes"])
        return dict(total)

    def verify(self) -> None:
        from gen_keras.files import sha256_file

        fix = f"delete the folder {self.folder} and it is prepared again on next use"
        for part in self.manifest["parts"]:
            for s in part["shards"]:
                path = self.folder / part["name"] / s["file"]
                if not path.is_file():
                    raise DataIntegrityError(f"{path} is missing; {fix}")
                if path.stat().st_size != s["bytes"] or sha256_file(path) != s["sha256"]:
                    raise DataIntegrityError(f"{path}: size or sha256 differs from the manifest; {fix}")

    def check_usable(self, name: str, listing: Listing) -> None:
        """Nothing usable is a ConfigError naming the folder, the counts and why."""
        if self.num_kept:
            notes = self.notes()
            mixed = {k: notes[k] for k in ("grey_to_rgb", "colour_to_grey") if notes.get(k)}
            if mixed:
                what = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in mixed.items())
                log.warning("%s: images converted for model.image_shape %s: %s (of %d kept)", name,
                            list(self.image_shape), what, self.num_kept)
            return
        kinds = Counter(s.kind for s in self.skips)
        why = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        first = "; ".join(f"{s.path}: {s.reason}" for s in self.skips[:3])
        msg = (f"{name}: none of its {len(self.skips):,} image file(s) is usable ({why}); "
               f"the first: {first}")
        if kinds.get("too_small") == len(self.skips):
            sizes = _sizes_of(listing.root, [s.path for s in self.skips])
            h, w, _ = self.image_shape
            mw, mh = resize.max_reachable(sizes, self.manifest["settings"]["resize"], (w, h)) if sizes else (0, 0)
            msg = (f"{name}: the resize rule {self.manifest['settings']['resize']!r} cannot reach "
                   f"model.image_shape {list(self.image_shape)}: all {len(self.skips):,} image(s) "
                   f"would be enlarged more than {resize.MAX_UPSCALE:g}x (the first: {first}); "
                   f"these images reach at most {mh}x{mw}")
        raise ConfigError(msg)

    def split(self, test_fraction: float) -> tuple[int, int, int]:
        """``(threshold, n_train, n_test)``: test = split_key <= threshold."""
        n = self.num_kept
        n_test = max(1, round(n * test_fraction))
        if n - n_test < 1:
            raise ConfigError(f"data.dataset='folder:{self.root}' has {n} usable image(s): too few "
                              f"to hold out data.test_fraction={test_fraction} and train on the rest")
        return int(self._keys[n_test - 1]), n - n_test, n_test

    def elements(self, split: str, *, test_fraction: float, seed: int = 0, with_path: bool = False):
        """The split as a ``tf.data.Dataset`` of ``{"image", "label"}`` (and the file's
        relative ``path`` with ``with_path``); the training split reads its shards in an order
        seeded by ``seed`` (the same every epoch: the shuffle buffer reshuffles), the test split
        in the manifest's order."""
        import tensorflow as tf

        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r} is not one of ['train', 'test']")
        threshold, n_train, n_test = self.split(test_fraction)
        files = self.shard_files()
        if split == "train":
            files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
        spec = {"image": tf.io.FixedLenFeature([], tf.string),
                "class": tf.io.FixedLenFeature([], tf.string),
                "split_key": tf.io.FixedLenFeature([], tf.int64)}
        if with_path:
            spec["path"] = tf.io.FixedLenFeature([], tf.string)
        auto = tf.data.AUTOTUNE
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(self.CYCLE, len(files)),
            block_length=self.BLOCK, num_parallel_calls=auto, deterministic=True)
        ds = ds.batch(self.PARSE_BATCH).map(lambda x: tf.io.parse_example(x, spec),
                                            num_parallel_calls=auto, deterministic=True).unbatch()
        cut = tf.constant(threshold, tf.int64)
        ds = ds.filter((lambda ex: ex["split_key"] <= cut) if split == "test"
                       else (lambda ex: ex["split_key"] > cut))
        shape, channels = self.image_shape, self.image_shape[-1]
        if self.classes:
            table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.classes), tf.range(len(self.classes), dtype=tf.int64)), -1)
            label_of = table.lookup
        else:
            label_of = lambda name: tf.constant(-1, tf.int64)

        def decode(ex):
            image = tf.ensure_shape(tf.io.decode_png(ex["image"], channels=channels), shape)
            out = {"image": image, "label": label_of(ex["class"])}
            if with_path:
                out["path"] = ex["path"]
            return out

        ds = ds.map(decode, num_parallel_calls=auto, deterministic=True)
        return ds.apply(tf.data.experimental.assert_cardinality(n_train if split == "train" else n_test))

    def summary(self) -> dict:
        """What the preparation did, for people and for the run record (MLflow)."""
        kinds = Counter(s.kind for s in self.skips)
        return {"folder": str(self.root), "prepared": str(self.folder),
                "settings": self.manifest["settings"], "fingerprint": self.manifest["fingerprint"],
                "files": self.num_kept + len(self.skips), "kept": self.num_kept,
                "skipped": len(self.skips), "skipped_by_kind": dict(sorted(kinds.items())),
                "converted": self.notes(), "classes": {c: self._labels[c] for c in self.classes},
                "parts": [{k: p[k] for k in ("name", "files", "kept", "seconds", "cpu_seconds")}
                          for p in self.manifest["parts"]]}


def _sizes_of(root: Path, paths: list[str], limit: int = 200) -> list[tuple[int, int]]:
    """Upright sizes of (up to ``limit``) files, from their headers."""
    from PIL import Image

    sizes = []
    for rel in paths[:limit]:
        try:
            with Image.open(root / rel) as im:
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    w, h = h, w
                sizes.append((w, h))
        except Exception:
            continue
    return sizes
