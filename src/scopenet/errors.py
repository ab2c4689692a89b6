"""Exceptions raised by scopenet.

Every error a user can trigger with bad input is a subclass of :class:`ScopenetError` and names
what went wrong and where, so that a message alone is enough to fix the problem.
"""
from __future__ import annotations

from pathlib import Path


class ScopenetError(Exception):
    """Base class of all scopenet errors."""


class ReadError(ScopenetError):
    """A file could not be read: missing, empty, truncated, corrupt, or of an unsupported format.

    Parameters
    ----------
    path : str or Path
        The file that could not be read.
    reason : str
        Why, in words a microscopist can act on.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"cannot read {where}{reason}")


class WriteError(ScopenetError):
    """A file could not be written (unsupported extension, existing file without overwrite, ...)."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"cannot write {where}{reason}")


class InputError(ScopenetError, ValueError):
    """An in-memory input (array, image, parameter) is unusable: wrong shape, NaN-filled, empty..."""


class MissingExtraError(ScopenetError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` to run."""

    def __init__(self, package: str, extra: str, feature: str = ""):
        what = f" for {feature}" if feature else ""
        super().__init__(
            f"the optional package '{package}' is needed{what}; install it with "
            f"`pip install 'scopenet[{extra}]'` (or `pip install {package}`)"
        )


def require(module: str, extra: str, feature: str = ""):
    """Import an optional module or raise :class:`MissingExtraError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module.split(".")[0], extra, feature) from exc
