"""Exceptions with one-line, user-facing messages (what went wrong and where)."""


class UnblurError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits non-zero."""


class InputError(UnblurError, ValueError):
    """A file, kernel, image or argument that cannot be used (unreadable, wrong shape, missing)."""


class ConfigError(UnblurError, ValueError):
    """A bad configuration key or value."""
