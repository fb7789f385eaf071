"""Where a batch job's Parquet files go. A local ``--out`` is written whole into a temporary folder
beside it (``.NAME.tmp-*``, locked by the job, :mod:`gen_keras.files`) and renamed into place when
the job has finished, with a record of what it holds (:data:`RECORD`): a reader of ``--out`` sees
the previous output or the new one, never a mixture or a part file without its footer. A job
killed half-way leaves only its temporary folder, which the next job in the same place removes.

``--out`` is refused when it is a file, or a folder holding anything but a finished output of this
tool (which a new job replaces): other Parquet files in any case or folder would be read with the
job's rows by anyone who reads the folder. Folders ``beam-temp-*`` alone, left by a killed job of
the version before this one (which wrote into ``--out`` itself), are removed.

A remote ``--out`` (``gs://``, ``s3://``, ...) has no atomic rename: it must be empty, and Beam's
own sink writes the parts (renamed from its temporary names when the job commits).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from pathlib import Path

from gen_keras.errors import ConfigError

log = logging.getLogger("gen_keras.batch")

RECORD = "_gen_keras_batch.json"  # pyarrow and Spark skip names starting with "_" or "."
TOOL = "gen-keras batch"


def prepare_output(out: str):
    """The :class:`LocalOutput` or :class:`RemoteOutput` of ``--out``, checked (ConfigError)."""
    return RemoteOutput(out) if "://" in out else LocalOutput(out)


class LocalOutput:
    def __init__(self, out: str):
        from gen_keras.files import temporary_folder

        self.target = Path(out).expanduser().resolve()  # a symlinked --out: its folder is replaced
        check_local_out(self.target, out)
        self.folder = temporary_folder(self.target)  # the job writes here
        self.prefix = str(self.folder / "part")

    def publish(self, record: dict) -> Path:
        """Record what the folder holds, then rename it into place (replacing a previous output)."""
        from gen_keras.files import atomic_write_text, publish_folder

        for leftover in self.folder.glob("beam-temp-*"):  # the sink's, should it leave one
            shutil.rmtree(leftover, ignore_errors=True)
        parts = sorted(p.name for p in self.folder.iterdir() if p.is_file())
        atomic_write_text(self.folder / RECORD, json.dumps(
            {"tool": TOOL, "files": parts, **record,
             "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, indent=1))
        return publish_folder(self.folder, self.target)

    def abandon(self) -> None:
        from gen_keras.files import release_temporary

        shutil.rmtree(self.folder, ignore_errors=True)
        release_temporary(self.folder)


def check_local_out(target: Path, given: str) -> None:
    """Refuse an ``--out`` the job must not replace; remove a killed older job's leftovers."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ConfigError(f"--out {given} is a file, not a folder; name a new or empty folder")
    entries = sorted(target.iterdir())
    if not entries or is_finished_output(target):
        if entries:
            log.warning("--out %s holds a finished %s output: the new one replaces it when it is done",
                        given, TOOL)
        return
    if all(p.name.startswith("beam-temp-") and p.is_dir() and not p.is_symlink() for p in entries):
        log.warning("--out %s: removing %d beam-temp-* folder(s) of a killed job", given, len(entries))
        for p in entries:
            shutil.rmtree(p, ignore_errors=True)
        return
    shown = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:5])
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    raise ConfigError(f"--out {given} holds {shown}{more}, which is not a finished {TOOL} output "
                      f"(no {RECORD} listing exactly these files); anything there would be read with "
                      "the job's rows — name a new or empty folder")


def is_finished_output(folder: Path) -> bool:
    """Whether ``folder`` holds exactly what a finished job of this tool recorded (and nothing else)."""
    try:
        record = json.loads((folder / RECORD).read_text())
        files = set(record["files"]) if record.get("tool") == TOOL else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if files is None:
        return False
    entries = {p.name: p for p in folder.iterdir()}
    return set(entries) == files | {RECORD} and all(
        p.is_file() and not p.is_symlink() for p in entries.values())


class RemoteOutput:
    def __init__(self, out: str):
        from apache_beam.io.filesystems import FileSystems

        self.target = out.rstrip("/")
        found = FileSystems.match([f"{self.target}/*"])[0].metadata_list
        if found:
            raise ConfigError(f"--out {out} is not empty ({found[0].path}, ...): a remote folder cannot "
                              "be replaced atomically, so name a new one")
        self.prefix = f"{self.target}/part"

    def publish(self, record: dict) -> str:
        from apache_beam.io.filesystems import FileSystems

        parts = sorted(m.path.rsplit("/", 1)[-1] for m in FileSystems.match([f"{self.prefix}*"])[0].metadata_list)
        with FileSystems.create(f"{self.target}/{RECORD}") as f:
            f.write(json.dumps({"tool": TOOL, "files": parts, **record}, indent=1).encode())
        return self.target

    def abandon(self) -> None:
        """Beam's sink leaves no final part of a failed job; its temporary files are its own."""
