"""Which run a ``gen-keras train`` trains, and the runs whose process died.

- ``tracking.run_name`` set: that run, resumed from its checkpoint when it is unfinished.
- No run name: the same command after a kill must carry on, not start a new dated run beside the
  killed one. The latest unfinished run in the checkpoint folder that this very config would
  resume (same config, same tracking store), that no process holds, and that no error ended, is
  resumed. ``resume=False`` (``--new-run``) always starts a new run; ``resume=True``
  (``--resume``) requires one to resume; ``resume="NAME"`` (``--resume NAME``) names it.
- A run whose process died without a word (SIGKILL, OOM, a lost machine) stays RUNNING in MLflow
  forever. The next start in the same checkpoint folder finds it (unfinished, its lock free) and
  marks it KILLED, with the tag ``gen_keras.stopped``; resuming it later sets it RUNNING again.

Under multi-worker training only the chief chooses (it alone keeps checkpoints); the other workers
take its weights and epoch when the model is restored (``distribute.sync_from_chief``).
"""
from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

from gen_keras.checkpoint_state import STATE, read_state, update_state
from gen_keras.errors import ArtifactIntegrityError, ConfigError
from gen_keras.files import lock_is_held

log = logging.getLogger("gen_keras.training")


def choose_run_name(cfg, layout, checkpoints: Path, resume, tracking_uri: str) -> str:
    """The name of the run to resume for ``cfg`` (no ``tracking.run_name``), or "" for a new
    run; see the module docstring for ``resume``."""
    if isinstance(resume, str) and resume:
        state = _state_or_none(checkpoints / resume)
        if state is None:
            raise ConfigError(f"--resume {resume}: no checkpoint of a run named {resume!r} in "
                              f"{checkpoints} (runs there: {', '.join(run_names(checkpoints)) or 'none'})")
        return resume
    if resume is False:
        return ""
    found = resumable_runs(cfg, layout, checkpoints, tracking_uri)
    if found:
        state = read_state(found[0])
        log.warning("resuming run %s from epoch %s: it is this config's unfinished run (%s); "
                    "pass --new-run to start a new run instead", found[0].name,
                    state.get("epochs_done", 0), state.get("stopped") or "its process ended")
        return found[0].name
    if resume is True:
        raise ConfigError(f"--resume: {checkpoints} holds no unfinished run of this config to resume "
                          "(a finished run, one that an error ended, or one made with another "
                          "config or tracking store is not resumed); name one with --resume NAME")
    return ""


def resumable_runs(cfg, layout, checkpoints: Path, tracking_uri: str) -> list[Path]:
    """Checkpoint folders under ``checkpoints`` that ``cfg`` resumes as they are, latest first:
    unfinished, not ended by an error, not held by a process, the same config (the plan's
    resumable form, ``auto`` precision adopted as a resume would) and the same store."""
    from gen_keras.plan import resolve_plan

    found = []
    for folder, state in _states(checkpoints):
        if state.get("finished") or state.get("stopped") == "FAILED" or not state.get("run_id"):
            continue
        if state.get("tracking_uri") not in (None, "", tracking_uri) or _held(folder):
            continue
        if resolve_plan(cfg, layout, checkpoint=state).resumable() == state.get("config"):
            found.append(folder)
    return found


def mark_dead_runs(checkpoints: Path, client, tracking_uri: str, skip: Path | None = None) -> list[str]:
    """Mark KILLED, in MLflow and in their state, the runs under ``checkpoints`` of the store
    ``tracking_uri`` whose process died: unfinished, not yet marked, lock free. Returns their
    names. Never raises (a run it cannot mark now is tried again at the next start)."""
    from gen_keras.files import LockBusy, exclusive_lock

    marked = []
    for folder, state in _states(checkpoints):
        if folder == skip or state.get("finished") or state.get("stopped") or not state.get("run_id"):
            continue
        if state.get("tracking_uri") != tracking_uri:
            continue  # another store's run (or a state too old to say which): not ours to mark
        try:
            with exclusive_lock(lock_path(folder), f"training run {folder.name!r}"):
                if client.get_run(state["run_id"]).info.status == "RUNNING":
                    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
                    client.set_tag(state["run_id"], "gen_keras.stopped",
                                   f"its process ended during epoch {state.get('epochs_done', 0) + 1} "
                                   f"(found by a later start at {when}); `gen-keras train --resume "
                                   f"{folder.name}` with the same config resumes it")
                    client.set_terminated(state["run_id"], "KILLED")
                    marked.append(folder.name)
                update_state(folder, stopped="KILLED")
        except LockBusy:
            continue  # alive after all
        except Exception as exc:
            log.warning("could not mark the dead run %s KILLED: %s: %s", folder.name,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
    for name in marked:
        log.warning("run %s was left RUNNING by a process that ended; marked KILLED in MLflow "
                    "(resume it with --resume %s)", name, name)
    return marked


def lock_path(checkpoint_dir: Path) -> Path:
    """The lock a training process holds on its checkpoint folder for the whole run."""
    return checkpoint_dir.parent / f".{checkpoint_dir.name}.lock"


def run_names(checkpoints: Path) -> list[str]:
    return [folder.name for folder, _ in _states(checkpoints)]


def _states(checkpoints: Path):
    """``(folder, state)`` of every run folder under ``checkpoints``, latest state first (an
    unreadable state is skipped here: resuming that very run reports it)."""
    if not checkpoints.is_dir():
        return []
    found = []
    for folder in checkpoints.iterdir():
        path = folder / STATE
        if path.is_file():
            state = _state_or_none(folder)
            if state is not None:
                found.append((path.stat().st_mtime, folder, state))
    return [(folder, state) for _, folder, state in sorted(found, key=lambda x: -x[0])]


def _state_or_none(folder: Path) -> dict | None:
    try:
        return read_state(folder)
    except ArtifactIntegrityError:
        return None


def _held(folder: Path) -> bool:
    """Whether a process holds the run's lock (is training it now)."""
    return lock_is_held(lock_path(folder))
