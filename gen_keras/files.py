"""Crash-safe files: every file and folder the pipeline publishes goes through here.

A write is: a temporary file with a unique name in the target's folder, the data, flush and
fsync, a rename over the target, then an fsync of the folder. A reader sees the old file or the
new one, never a torn one, and after a crash or power cut the rename has reached the disk. A
folder (an export) is written whole under a temporary name, every file and sub-folder fsynced,
then renamed into place the same way.

A folder being written is locked by its writer (``flock`` on the folder itself) until it is
published: a temporary folder nobody holds belongs to a writer that died (killed during an
export, say), and the next :func:`temporary_folder` in the same place removes it — never one a
live writer holds.

:func:`exclusive_lock` is the one advisory lock (``flock``): held for the life of a job, dropped
by the kernel when the holder dies, even by SIGKILL, so a crash never leaves a stale lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from gen_keras.errors import GenKerasError


def cache_dir(*parts: str) -> Path:
    """The project's cache, ``$GEN_KERAS_CACHE`` (default ``~/.cache/gen_keras``), or a folder in
    it: ``tfds`` (prepared data), ``evaluators``, ``probe_baselines``, ``models`` and ``runs``
    (fetched exports), ``locks``. The one place that reads the variable."""
    return Path(os.environ.get("GEN_KERAS_CACHE", Path.home() / ".cache" / "gen_keras")).joinpath(*parts)


class LockBusy(GenKerasError):
    """Another process holds the lock; nothing was done."""

    exit_code = 4


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Publish ``path`` atomically: ``write(tmp)`` fills a temporary file beside it (any writer:
    bytes, ``model.save``, a CSV), which is fsynced and renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


# The folders this process is writing (temporary_folder) -> the descriptor holding their lock.
_HELD: dict[str, int] = {}
# What temporary_folder and publish_folder leave behind when their writer dies: the folder being
# built (mkdtemp's 8 characters) and the previous version moved aside during a publish.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[A-Za-z0-9_]{8}$")


def temporary_folder(target: str | Path) -> Path:
    """A new empty folder beside ``target`` (hidden, unique name) to build it in, locked by this
    process until :func:`publish_folder` (or :func:`release_temporary`). Leftovers of writers that
    died in the same folder are removed first (:func:`remove_stale_temporaries`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _forget_removed()
    remove_stale_temporaries(target.parent)
    while True:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        # Between mkdtemp and the lock another process's cleanup may take the new folder for a
        # dead writer's and remove it: then the lock is held on a removed folder; make another.
        fd = _lock_folder(tmp, wait=True)
        if fd is not None:
            _HELD[str(tmp)] = fd
            return tmp


def release_temporary(tmp: str | Path) -> None:
    """Drop this process's lock on a temporary folder it made (publish_folder does it; call it
    after removing a folder that is not published)."""
    fd = _HELD.pop(str(tmp), None)
    if fd is not None:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the leftovers of dead writers in ``folder``: ``.NAME.tmp-*`` folders that no live
    process holds locked (every writer holds its lock until it publishes; a leftover of an older
    version of this code holds none), and ``.NAME.old-*`` previous versions a publish moved aside
    (put back as ``NAME`` when that is missing). Symlinks and files are never touched."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if not match or entry.path in _HELD or not entry.is_dir(follow_symlinks=False):
            continue
        fd = _lock_folder(entry.path, wait=False)
        if fd is None:
            continue  # a live writer holds it (or it is gone already)
        try:
            final = folder / match["name"]
            if match["kind"] == "old" and not os.path.lexists(final):
                with contextlib.suppress(OSError):
                    os.rename(entry.path, final)  # the writer died between its two renames
                    removed.append(final)
                    continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def _lock_folder(path: str | Path, wait: bool) -> int | None:
    """A descriptor of folder ``path`` holding an exclusive ``flock`` on it, or None when the
    folder is gone, is not a folder, or (``wait=False``) another open file holds the lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        if os.fstat(fd).st_nlink == 0:  # removed while we waited
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return fd


def _forget_removed() -> None:
    """Release the locks of temporary folders removed without being published."""
    for path in [p for p in _HELD if not os.path.isdir(p)]:
        release_temporary(path)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file and folder under ``folder``, deepest first, then ``folder`` itself."""
    folder = Path(folder)
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            _fsync_file(Path(root) / name)
        fsync_dir(root)


def publish_folder(tmp: str | Path, target: str | Path) -> Path:
    """Move the finished folder ``tmp`` to ``target`` durably; an existing ``target`` is replaced
    only at the end (moved aside, then removed), so a failure keeps it whole."""
    tmp, target = Path(tmp), Path(target)
    fsync_tree(tmp)
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        held = _lock_folder(target, wait=True)  # so no cleanup takes the moved-aside copy for a leftover
        try:
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)
                raise
            fsync_dir(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if held is not None:
                os.close(held)
    else:
        os.replace(tmp, target)
        fsync_dir(target.parent)
    # The lock of the temporary folder (tmp itself, or the one tmp was built in) is not needed now.
    for held_path in [p for p in _HELD if tmp == Path(p) or Path(p) in tmp.parents]:
        release_temporary(held_path)
    return target


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str, wait_s: float = 0.0):
    """Hold an exclusive ``flock`` on ``path`` for the block; raise :class:`LockBusy` (naming
    ``what``, the holder and the lock file) when another process holds it after ``wait_s``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.seek(0)
                holder = f.read().strip() or "unknown holder"
                f.close()
                raise LockBusy(f"{what} is already running ({holder}; lock {path}); nothing was done") from None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}\n")
        f.flush()
        yield path
    finally:
        f.truncate(0)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def lock_is_held(path: str | Path) -> bool:
    """Whether another process holds the ``flock`` of ``path`` now (:func:`exclusive_lock`);
    False when there is no such file."""
    path = Path(path)
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read a MiB at a time."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
