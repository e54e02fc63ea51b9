"""Error types. ``UserError`` is bad input from the user: run.py prints its message on
one line and exits with code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (config, path, name, key). The message must say what is wrong and how to fix it."""


class ConfigError(UserError):
    """The config file or a ``--key value`` override is invalid."""


class UnknownNameError(UserError):
    """A registry was asked for a name it does not know."""


class ModelUnavailableError(UserError):
    """Model weights cannot be loaded (offline, missing directory, no access)."""
