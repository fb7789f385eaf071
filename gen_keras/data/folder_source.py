"""What a training run records about a ``folder:`` source (:func:`run_record`), beyond the
counts ``gen_keras.tracking.log_dataset`` logs for every source."""
from __future__ import annotations

import json


def run_record(info) -> dict:
    """``{"metrics": {...}, "tags": {...}, "artifacts": {file name: text}}`` for the run of a
    ``folder:`` source (``info``: its :class:`~gen_keras.data.sources.SourceInfo`): the kept,
    skipped (by kind) and converted counts, the data's fingerprint and prepared folder, and as
    artifacts every skipped file with its reason (not only the first 20) and the preparation's
    summary. Empty dicts for other sources."""
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
