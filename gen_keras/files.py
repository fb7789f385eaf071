"""Crash-safe files: every file and folder the pipeline publishes goes through here.

A write is: a temporary file with a unique name in the target's folder, the data, flush and
fsync, a rename over the target, then an fsync of the folder. A reader sees the old file or the
new one, never a torn one, and after a crash or power cut the rename has reached the disk. A
folder (an export) is written whole under a temporary name, every file and sub-folder fsynced,
then renamed into place the same way.

:func:`exclusive_lock` is the one advisory lock (``flock``): held for the life of a job, dropped
by the kernel when the holder dies, even by SIGKILL, so a crash never leaves a stale lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from gen_keras.errors import GenKerasError


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


def temporary_folder(target: str | Path) -> Path:
    """A new empty folder beside ``target`` (hidden, unique name) to build it in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))


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
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
        fsync_dir(target.parent)
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


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read a MiB at a time."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
