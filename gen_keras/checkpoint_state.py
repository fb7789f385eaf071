"""A run's checkpoint state: ``state.json`` in its checkpoint folder, the commit point of every
epoch (written after the weights) and the record that lets the same command resume the same run.

Plain JSON, no TensorFlow: the trainer writes it (:mod:`gen_keras.training.checkpoint`),
``gen-keras sync`` and the resume lookup read it.

Fields: ``run_id`` (the MLflow run), ``tracking_uri`` (the store it is in), ``epochs_done``,
``checkpoint`` (the ``ckpt-N`` prefix), ``config`` (what a resume must match), ``last_logs``,
``finished``; after training ``model_path`` and ``export_dir``; ``stopped`` (``FAILED`` when an
error ended the process, ``KILLED`` for an interrupt or once a later start found it dead).
"""
from __future__ import annotations

import json
from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.files import atomic_write_text

STATE = "state.json"


def read_state(directory: str | Path) -> dict | None:
    """The checkpoint state of a run folder, None when there is none. An unreadable state is an
    error naming the file and how to start over — never a silent restart from epoch 0."""
    path = Path(directory) / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return state
    except (OSError, ValueError) as exc:
        raise ArtifactIntegrityError(
            f"{path} is unreadable ({exc}); the run's checkpoint cannot be trusted. To start this "
            f"run over, remove {Path(directory)} (or pick a new tracking.run_name); the MLflow run it "
            "belonged to keeps what it logged") from None


def write_state(directory: str | Path, state: dict) -> None:
    atomic_write_text(Path(directory) / STATE, json.dumps(state, indent=1))


def update_state(directory: str | Path, **fields) -> dict:
    """Merge ``fields`` into the state of ``directory`` (which must have one); returns it."""
    state = {**(read_state(directory) or {}), **fields}
    write_state(directory, state)
    return state
