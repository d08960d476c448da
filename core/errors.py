"""Errors a user can fix: one family, one exit path.

Every user-facing failure (a bad config, a missing or broken file, data that does not fit the
model) is a :class:`DomainfmError` whose message is one line naming the file, field or value and
what was expected. The CLI prints that line and exits with status 2; ``--debug`` shows the
traceback. Plugins raise these (or their own subclasses) instead of letting a library's error
escape from deep inside a run. Nothing here imports anything heavy.
"""

from __future__ import annotations


class DomainfmError(Exception):
    """An error a user can fix; the CLI prints it as one line, without a traceback."""


class ConfigError(DomainfmError):
    """A run config (or an export's config.json) that does not validate."""


class ComponentNotFound(DomainfmError, KeyError):
    """A component name no installed (enabled, working) plugin registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ComponentConflict(DomainfmError):
    """Two distributions register the same component name."""


class WeightsError(DomainfmError):
    """Weights that cannot be read, or that do not fit the model built from the specification."""


class DataError(DomainfmError):
    """Input data that cannot be read or does not fit what the run needs."""


__all__ = ["ComponentConflict", "ComponentNotFound", "ConfigError", "DataError", "DomainfmError",
           "WeightsError"]
