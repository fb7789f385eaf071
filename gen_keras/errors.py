"""The pipeline's error types, in one module every layer imports (it imports nothing itself).

Each names a kind of failure a user can act on; the CLI maps them to exit codes and messages
(``gen_keras.cli``) and the server to HTTP answers, so no layer needs to know another's
exceptions by name:

- :class:`ConfigError` (exit 2): a config field, CLI argument or data set string is wrong; the
  message names it. Raised before anything is read, trained or written.
- :class:`DataIntegrityError`: a bundled or prepared data file fails its checksum or format.
- :class:`ArtifactIntegrityError`: a model or export file is missing, was not written by this
  pipeline, or was altered (sha256 mismatch, unlisted file, symlink, path outside the folder).
- :class:`ModelSourceError`: a model could not be found where it was asked for: an MLflow run,
  a ``models:/`` URI, an alias, a tracking store that does not answer.
- :class:`ExportError`: an export could not be written or failed its parity check.
- :class:`NonFiniteLossError`: a reported training quantity became NaN or infinite.

All derive from :class:`GenKerasError` (exit 1 unless a subclass says otherwise).
"""
from __future__ import annotations


class GenKerasError(Exception):
    """Base of the pipeline's own errors: the message says what is wrong and what to do."""

    exit_code = 1


class ConfigError(GenKerasError, ValueError):
    """A config field, argument or name is missing, unknown or has a bad value; the message
    names it (``train.batch_size=abc must be an integer``)."""

    exit_code = 2


class DataIntegrityError(GenKerasError, RuntimeError):
    """A bundled or cached data file does not match its recorded checksum or format."""


class ArtifactIntegrityError(GenKerasError, RuntimeError):
    """A model or export file is missing, was not written by this pipeline, or was altered."""


class ModelSourceError(GenKerasError, RuntimeError):
    """A model run, registry URI or alias could not be resolved, or its store did not answer."""


class ExportError(GenKerasError, RuntimeError):
    """The export could not be written or failed its parity check; nothing was published."""


class NonFiniteLossError(GenKerasError, RuntimeError):
    """A reported loss became NaN or infinite; training stopped at that step."""


__all__ = ["ArtifactIntegrityError", "ConfigError", "DataIntegrityError", "ExportError",
           "GenKerasError", "ModelSourceError", "NonFiniteLossError"]
