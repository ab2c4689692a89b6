"""Helpers shared by the CLI modules: error reporting that exits cleanly with a message."""
from __future__ import annotations

import contextlib
import sys

import typer

from ..errors import ScopenetError


@contextlib.contextmanager
def user_errors():
    """Turn scopenet errors into a one-line red message and exit code 1 (no traceback)."""
    try:
        yield
    except ScopenetError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:  # pragma: no cover
        typer.secho("interrupted", err=True)
        sys.exit(130)
