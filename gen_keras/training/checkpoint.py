"""Epoch checkpoints that survive a kill: model weights, EVERY optimizer's state, the epoch,
and the MLflow run id, so the same command resumes the same run where it stopped.

Keras' ``BackupAndRestore`` restores only the model's optimizer, not the two optimizers of a
GAN; ``tf.train.Checkpoint`` over the model and each optimizer restores them all.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from gen_keras.checkpoint_state import STATE, read_state, write_state

__all__ = ["STATE", "EpochCheckpoint", "read_state", "write_state"]


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes ``ckpt-N`` then ``state.json`` (atomically) at the end of every epoch."""

    def __init__(self, directory: Path, model_, run_id: str | None, config: dict, max_to_keep: int = 2,
                 tracking_uri: str = ""):
        super().__init__()
        self.directory = Path(directory)
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.config = config
        self.checkpoint = tf.train.Checkpoint(model=model_, **model_.optimizers_to_track())
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory / "tf"),
                                                  max_to_keep=max_to_keep)

    def on_epoch_end(self, epoch, logs=None):
        path = self.manager.save(checkpoint_number=epoch + 1)
        clean = {k: float(tf.reshape(v, [-1])[0]) for k, v in (logs or {}).items()}
        write_state(self.directory, {"run_id": self.run_id, "tracking_uri": self.tracking_uri,
                                     "epochs_done": epoch + 1,
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
