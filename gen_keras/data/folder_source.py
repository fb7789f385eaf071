"""The ``folder:<path>`` source: the folder prepared once at the model's image shape
(:mod:`gen_keras.data.folder_prepare`), its splits streamed from the shards, and what the run
records about it (:func:`run_record`)."""
from __future__ import annotations

from pathlib import Path

from gen_keras.data.paths import default_data_dir


def open_folder(data_cfg, image_shape, seed: int = 0, *, progress: bool = True):
    """``(splits, info)`` of ``data_cfg.dataset`` = ``folder:<path>`` prepared for
    ``image_shape`` by ``data_cfg.resize``, as :func:`gen_keras.data.sources.open_source`
    returns them."""
    from gen_keras.data.folder_prepare import Settings, ensure_prepared
    from gen_keras.data.sources import SourceInfo

    root = Path(data_cfg.dataset.partition(":")[2]).expanduser()
    settings = Settings(tuple(int(d) for d in image_shape), getattr(data_cfg, "resize", "crop"))
    prepared = ensure_prepared(root, settings, default_data_dir(data_cfg.data_dir), progress=progress)
    _, n_train, n_test = prepared.split(data_cfg.test_fraction)
    splits = {s: prepared.elements(s, test_fraction=data_cfg.test_fraction, seed=seed)
              for s in ("train", "test")}
    info = SourceInfo(data_cfg.dataset, len(prepared.classes), n_train, n_test,
                      source_uri=str(prepared.root), image_shape=tuple(prepared.image_shape))
    info.skipped = len(prepared.skips)
    info.skipped_files = [str(prepared.root / s.path) for s in prepared.skips]
    info.skip_reasons = {str(prepared.root / s.path): f"{s.kind}: {s.reason}" for s in prepared.skips}
    info.folder_summary = prepared.summary()
    return splits, info


def run_record(info) -> dict:
    """What a training run should record about a ``folder:`` source, beyond the counts
    ``gen_keras.tracking.log_dataset`` already logs: ``{"metrics": {...}, "tags": {...},
    "artifacts": {file name: text}}`` — every skipped file with its reason (not only the first
    20) and the preparation's summary (kept, skipped by kind, conversions, classes, parts).
    Empty for other sources."""
    import json

    summary = info.folder_summary
    if not summary:
        return {"metrics": {}, "tags": {}, "artifacts": {}}
    lines = [f"{path}\t{why}" for path, why in sorted(info.skip_reasons.items())]
    metrics = {"data/kept_files": summary["kept"], "data/skipped_files": summary["skipped"]}
    metrics.update({f"data/skipped_{k}": n for k, n in summary["skipped_by_kind"].items()})
    metrics.update({f"data/converted_{k}": n for k, n in summary["converted"].items()})
    return {"metrics": metrics,
            "tags": {"gen_keras.data_fingerprint": summary["fingerprint"],
                     "gen_keras.data_prepared": summary["prepared"]},
            "artifacts": {"data/folder_summary.json": json.dumps(summary, indent=1),
                          "data/skipped_files.tsv": "path\treason\n" + "\n".join(lines) + "\n"}}
