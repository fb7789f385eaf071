"""Batch jobs on Apache Beam: generate, embed, score or reconstruct (or translate) many items
through an export, on any Beam runner (the DirectRunner here; Dataflow, Flink or Spark by their
flags). ``gen-keras batch`` is the command; docs/batch.md the guide.

- :mod:`.work`: the work units (fixed chunks of seeds or of images), so the same inputs give
  byte-identical outputs whatever the number of workers or shards;
- :mod:`.handler`: the RunInference model handler over the one export reader (the manifest's
  sha256s verified once per worker);
- :mod:`.rows`: results as Parquet rows (one per item: id, seed/label, PNG, code, score);
- :mod:`.pipeline`: the pipeline, its options and its counters.
"""
