"""The ``scopenet`` command. Each command group lives in its own module with a ``register(app)``."""
from __future__ import annotations

import importlib

import typer

from .._version import __version__

app = typer.Typer(
    name="scopenet",
    help="Deep learning for scanning probe and electron microscopy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

#: command modules, each exposing register(app)
COMMAND_MODULES = ["io_cmds", "simulate_cmds", "train_cmds", "bench_cmds", "denoise_cmds",
                   "inpaint_cmds", "superres_cmds", "classify_cmds", "batch_cmds", "label_cmds",
                   "models_cmds", "embed_cmds", "exitwave_cmds", "segment_cmds", "track_cmds", "atoms_cmds", "autopilot_cmds"]


def _version(value: bool):
    if value:
        typer.echo(f"scopenet {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """scopenet: read, flatten, denoise, complete and classify microscope images."""


for _m in COMMAND_MODULES:
    importlib.import_module(f"scopenet.cli.{_m}").register(app)


def run():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
