"""CLI command: ``scopenet superres IN... -o OUT [--factor 4] [--model spm-x4|stem-x4] [--signal S]``.

A scan recorded on a coarse regular grid (block means for SPM, every f-th probe position for a STEM
sub-lattice scan) is upsampled ``--factor`` times; the pixel size is divided by the factor and the field
of view kept. A file that cannot be read or super-resolved is reported at the end and the others are
still done (exit code 1 if any failed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import (check_absent, check_writable, output_targets, pick_image, quiet_option, run_batch,
                      show_progress, signal_option, user_errors)


def superres_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Coarse scans (any format scopenet reads)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output file (one input, with an extension) or folder (created if needed)."),
    factor: int = typer.Option(4, "--factor", "-f", min=2, max=8, help="Upsampling factor (2..8)."),
    model: str = typer.Option("spm-x4", "--model", "-m",
                              help="'spm-x4' (block-mean SPM scans), 'stem-x4' (STEM sub-lattice scans, "
                                   "coarse = fine[::f, ::f]), another installed name or a saved model path."),
    signal: Optional[str] = signal_option(),
    tta: int = typer.Option(1, "--tta", min=1, max=8,
                            help="Number of flipped/rotated views averaged (block-mean models only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = quiet_option(),
):
    """Super-resolve coarse regular-grid scans with a pretrained model; calibration and provenance kept."""
    import scopenet as sn

    with user_errors():
        pairs, is_folder = output_targets(list(inputs), output, f"-x{factor}", ".tif")
        check_writable(output, folder=is_folder)
        if is_folder:
            output.mkdir(parents=True, exist_ok=True)
        est = sn.SuperResolver.pretrained(model)
        est.progress = show_progress(quiet)  # a bar over the tiles of large images, at a terminal

    def one(pair):
        src, o = pair
        check_absent(o, overwrite)
        img = pick_image(src, signal, quiet=quiet)
        out = est.predict(img, factor, tta=tta)
        sn.write(out, o, overwrite=overwrite)
        typer.echo(f"wrote {o} ({img.shape[-2]}x{img.shape[-1]} -> {out.shape[-2]}x{out.shape[-1]} px, "
                   f"model {est.name})")

    run_batch(pairs, one, description="superres", name=lambda p: str(p[0]), quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("superres")(superres_cmd)
