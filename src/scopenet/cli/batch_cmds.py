"""CLI command: ``scopenet batch TASK IN... -o OUT_DIR [--scheduler tcp://HOST:8786] [--workers N] [--tile]``.

Runs a task (denoise, superres, inpaint, classify, and any task registered in
:data:`scopenet.scale.tasks.BATCH_TASKS`) over every readable file of the inputs (folders searched
recursively) on Dask's distributed scheduler (:mod:`scopenet.scale.batch`); without ``--scheduler`` a
LocalCluster is started for the run. ``OUT_DIR/manifest.json`` records every file's state, so running the
same command again after a crash processes only what is missing. Images larger than memory go block by
block to zarr stores (``--tile``, or automatically for files of 1 GiB and more). Exit code 1 when any file
failed (each is named)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import quiet_option, show_progress, user_errors


def batch_cmd(
    task: str = typer.Argument(..., help="Task: denoise, superres, inpaint or classify (see docs: batch)."),
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Folders (searched recursively) or files."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (created; holds manifest.json)."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Installed model name or saved model path (default: the task's)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Address of a running Dask scheduler (default: a LocalCluster)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1,
                                          help="LocalCluster worker processes (default: cores, at most 4)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Threads per LocalCluster worker (torch uses them)."),
    tile: Optional[bool] = typer.Option(None, "--tile/--no-tile",
                                        help="Process images block by block into .zarr stores (default: files "
                                             "of 1 GiB and more; denoise only)."),
    block: int = typer.Option(2048, "--block", min=16, help="Block side (px) with --tile: the zarr chunks."),
    tiff: bool = typer.Option(False, "--tiff", help="With --tile: also a tiled BigTIFF copy of each 2-D output."),
    mask: Optional[Path] = typer.Option(None, "--mask",
                                        help="inpaint: one mask for every scan (default: <stem>-mask.* beside "
                                             "each scan, or its NaN pixels)."),
    tta: Optional[int] = typer.Option(None, "--tta", min=1, max=8,
                                      help="Flipped/rotated views averaged (image tasks; default the task's)."),
    quiet: bool = quiet_option(),
):
    """Process many files with one task on a Dask cluster; resumable (see OUT/manifest.json)."""
    from ..scale import run_batch

    kw: dict = {}
    if mask is not None:
        kw["mask"] = str(mask)
    if tta is not None:
        kw["tta"] = tta
    with user_errors():
        if mask is not None and task != "inpaint":
            from ..errors import InputError

            raise InputError("--mask is an option of batch inpaint")
        report = run_batch(task, list(inputs), output, model=model, scheduler=scheduler, n_workers=workers,
                           threads_per_worker=threads, progress=show_progress(quiet), tile=tile, block=block,
                           tiff=tiff, **kw)
    typer.echo(report.summary().splitlines()[0])
    for name, why in report.failures.items():
        typer.echo(f"failed: {name}: {why}", err=True)
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``scopenet batch`` to the app."""
    app.command("batch")(batch_cmd)
