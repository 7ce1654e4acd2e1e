"""Errors a user can fix by changing their input.

Every bad input the project can meet (a wrong config key, an unknown preset, a corrupt video, a
missing file, an alias that does not exist) raises a subclass of :class:`UserError` whose message
names what is wrong. The ``assemblenet`` command prints that message and exits with status 2
instead of a traceback; library callers can catch the specific subclass.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can correct; the message says what and where."""


class ConfigError(UserError, ValueError):
    """An experiment, environment or model configuration is invalid."""


class StructureError(ConfigError):
    """An AssembleNet structure (nodes, edges, weights) is invalid."""


class DataError(UserError):
    """Input data is missing, empty, unreadable or inconsistent with the configuration."""


class RegistryError(UserError):
    """A model-registry request cannot be satisfied (unknown model, version or alias)."""
