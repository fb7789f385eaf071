"""Epoch checkpoints that survive a kill: model weights, EVERY optimizer's state, the epoch,
and the MLflow run id, so the same command resumes the same run where it stopped.

Keras' ``BackupAndRestore`` restores only the model's optimizer, not the two optimizers of a
GAN; ``tf.train.Checkpoint`` over the model and each optimizer restores them all.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.files import atomic_write_text

STATE = "state.json"


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes ``ckpt-N`` then ``state.json`` (atomically) at the end of every epoch."""

    def __init__(self, directory: Path, model_, run_id: str | None, config: dict, max_to_keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.run_id = run_id
        self.config = config
        self.checkpoint = tf.train.Checkpoint(model=model_, **model_.optimizers_to_track())
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory / "tf"),
                                                  max_to_keep=max_to_keep)

    def on_epoch_end(self, epoch, logs=None):
        path = self.manager.save(checkpoint_number=epoch + 1)
        clean = {k: float(tf.reshape(v, [-1])[0]) for k, v in (logs or {}).items()}
        write_state(self.directory, {"run_id": self.run_id, "epochs_done": epoch + 1,
                                     "checkpoint": path, "config": self.config,
                                     "last_logs": clean, "finished": False})

    def restore(self) -> int:
        """Restore the checkpoint ``state.json`` names; returns the number of completed epochs
        (0 if none).

        ``state.json`` is written after ``ckpt-N``, so it is the commit point: a kill between
        the two leaves a newer ``ckpt-N`` whose epoch has no logs in the state, and resuming
        from it would re-send epoch N-1's logs as epoch N's. That epoch is trained again instead.
        """
        state = read_state(self.directory) or {}
        named = state.get("checkpoint")
        latest = named if named and Path(named + ".index").exists() else self.manager.latest_checkpoint
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(latest.rsplit("-", 1)[1])


def read_state(directory: Path) -> dict | None:
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


def write_state(directory: Path, state: dict) -> None:
    atomic_write_text(Path(directory) / STATE, json.dumps(state, indent=1))
