"""Deliver what a training process buffered while MLflow was down.

A run's ``TrackingSink`` mirrors undelivered metrics, params, tags and artifacts to
``pending.json`` beside its checkpoints (``<outputs>/checkpoints/<run name>/``). This module
sends them, in order, to the run recorded in ``state.json``, and closes the run as FINISHED when
training had finished. ``gen-keras sync`` and ``gen-keras retrain`` both call it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from gen_keras.errors import ConfigError

PENDING = "pending.json"


@dataclasses.dataclass
class SyncResult:
    run_id: str
    tracking_uri: str
    delivered: int  # records sent now
    remaining: int  # records still pending (the server is still unreachable)
    finished: bool  # training had finished (state.json says so)
    closed: bool  # the run is marked FINISHED in MLflow (only once nothing remains)


def sync_pending(checkpoint_dir: str | Path, tracking_uri: str | None = None) -> SyncResult:
    """Send ``pending.json`` of the run whose checkpoints are in ``checkpoint_dir``.

    The tracking URI is, in order: ``tracking_uri``, the store the run recorded in ``state.json``
    (the run config's ``tracking.tracking_uri`` for a checkpoint written before it recorded
    one), then :func:`gen_keras.stores.tracking_uri`'s default.
    """
    from mlflow import MlflowClient

    from gen_keras.checkpoint_state import read_state
    from gen_keras.stores import server_problem
    from gen_keras.stores import tracking_uri as resolve_store
    from gen_keras.tracking import TrackingSink

    checkpoint_dir = Path(checkpoint_dir)
    state = read_state(checkpoint_dir)
    if state is None or not state.get("run_id"):
        raise ConfigError(f"{checkpoint_dir} holds no state.json with a run id: not the checkpoint "
                          "folder of a tracked run (see --run-name / --outputs-dir)")
    uri = resolve_store(tracking_uri, state.get("tracking_uri"),
                        ((state.get("config") or {}).get("tracking") or {}).get("tracking_uri"))
    sink = TrackingSink(MlflowClient(tracking_uri=uri), state["run_id"], checkpoint_dir / PENDING)
    sink.load_pending()
    before = len(sink.pending)
    finished, closed = bool(state.get("finished")), False
    if uri.startswith(("http://", "https://")) and server_problem(uri):  # bounded, then try later
        return SyncResult(sink.run_id, uri, 0, before, finished, False)
    if sink.flush() and finished:
        try:
            run = sink.client.get_run(sink.run_id)
            if run.info.status == "RUNNING":  # train() leaves it open when the end was buffered
                sink.client.set_terminated(sink.run_id, "FINISHED")
            closed = True
        except Exception:  # unreachable again: the next sync closes it
            closed = False
    remaining = len(sink.pending)
    return SyncResult(sink.run_id, uri, before - remaining, remaining, finished, closed)
