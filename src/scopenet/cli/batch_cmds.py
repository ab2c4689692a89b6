"""CLI command: ``scopenet batch TASK IN... -o OUT_DIR [--scheduler tcp://HOST:8786] [--workers N]``.

Runs an image task over every readable file of the inputs (folders searched recursively) on Dask's
distributed scheduler (:mod:`scopenet.scale.batch`); without ``--scheduler`` a LocalCluster is started for
the run. ``OUT_DIR/manifest.json`` records every file's state, so running the same command again after a
crash processes only what is missing. Exit code 1 when any file failed (each is named)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import quiet_option, show_progress, user_errors


def batch_cmd(
    task: str = typer.Argument(..., help="Image task: denoise or superres."),
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Folders (searched recursively) or files."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (created; holds manifest.json)."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Installed model name or saved model path (default: the task's)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Address of a running Dask scheduler (default: a LocalCluster)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1,
                                          help="LocalCluster worker processes (default: cores, at most 4)."),
    quiet: bool = quiet_option(),
):
    """Process many files with one task on a Dask cluster; resumable (see OUT/manifest.json)."""
    from ..scale import run_batch

    with user_errors():
        report = run_batch(task, list(inputs), output, model=model, scheduler=scheduler, n_workers=workers,
                           progress=show_progress(quiet))
    typer.echo(report.summary().splitlines()[0])
    for name, why in report.failures.items():
        typer.echo(f"failed: {name}: {why}", err=True)
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``scopenet batch`` to the app."""
    app.command("batch")(batch_cmd)
