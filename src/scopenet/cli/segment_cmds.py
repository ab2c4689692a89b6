"""CLI command: ``scopenet segment IMAGE... -o OUT [--model particles] [--method model|otsu|local] [--particles]``.

Each image is segmented into a label image (class per pixel; ``--probabilities``: the class
probabilities, a ``(classes, y, x)`` stack) written as TIFF, calibration kept. ``--particles`` also
writes, beside each output, ``<stem>-particles.csv`` (one row per particle: centre, area, equivalent
diameter, ellipse axes and orientation, in pixels and, for calibrated images, metres), a size histogram
``<stem>-sizes.png`` and an outline overlay ``<stem>-overlay.png``. A file that cannot be read or
segmented is reported at the end and the others are still done (exit code 1 if any failed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import (check_absent, check_writable, output_targets, pick_image, quiet_option, run_batch,
                      show_progress, signal_option, user_errors)


def segment_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IMAGE...", help="Images (any format scopenet reads)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output file (one input, with an extension) or folder (created if needed)."),
    model: str = typer.Option("particles", "--model", "-m",
                              help="Installed segmentation model ('particles' = segment-particles) or a saved "
                                   "model path."),
    method: str = typer.Option("model", "--method", help="model, or a threshold baseline: otsu, local."),
    probabilities: bool = typer.Option(False, "--probabilities",
                                       help="Write class probabilities instead of labels (model only)."),
    particles: bool = typer.Option(False, "--particles",
                                   help="Also write a particle table (CSV), a size histogram and an overlay (PNG)."),
    split: bool = typer.Option(False, "--split", help="Split touching particles (distance-transform watershed)."),
    min_area: int = typer.Option(4, "--min-area", min=1, help="Smallest particle kept (px)."),
    signal: Optional[str] = signal_option(),
    tta: int = typer.Option(1, "--tta", min=1, max=8, help="Number of flipped/rotated views averaged."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = quiet_option(),
):
    """Segment images (nanoparticles by default) into label images; optionally measure the particles."""
    import numpy as np

    import scopenet as sn
    from ..errors import InputError

    with user_errors():
        if method not in ("model", "otsu", "local"):
            raise InputError(f"--method must be model, otsu or local, got {method!r}")
        if probabilities and method != "model":
            raise InputError("--probabilities needs --method model")
        pairs, is_folder = output_targets(list(inputs), output, "-labels" if not probabilities else "-probs", ".tif")
        check_writable(output, folder=is_folder)
        if is_folder:
            output.mkdir(parents=True, exist_ok=True)
        est = None
        if method == "model":
            from ..tasks.segment import Segmenter

            est = Segmenter.pretrained(model)
            est.progress = show_progress(quiet)

    def one(pair):
        from ..tasks.segment.baselines import BASELINES
        from ..tasks.segment.particles import label_particles, overlay_png, particle_table, size_histogram_png

        src, o = pair
        side = {k: o.with_name(f"{src.stem}-{k}") for k in ("particles.csv", "sizes.png", "overlay.png")}
        for p in [o, *(side.values() if particles else [])]:
            check_absent(p, overwrite)
        img = pick_image(src, signal, quiet=quiet)
        if img.ndim != 2:
            raise InputError(f"{src}: segment takes 2-D images, got shape {img.shape}")
        if probabilities:
            out = est.predict(img, tta=tta)
            sn.write(out, o, overwrite=overwrite)
            typer.echo(f"wrote {o} (class probabilities {out.shape}, model {est.name})")
            return
        if est is not None:
            mask = np.asarray(est.predict_labels(img, tta=tta).data)
        else:
            mask = BASELINES[method](np.asarray(img.data, np.float32)).astype(np.int32)
        lab = label_particles(mask > 0, min_area=min_area, split=split) if particles else mask
        sn.write(img.with_data(lab.astype(np.int32), operation="segment", method=method,
                               model=est.name if est is not None else None), o, overwrite=overwrite)
        msg = f"wrote {o} ({method}{', model ' + est.name if est is not None else ''})"
        if particles:
            tab = particle_table(lab, image=img)
            from .._fileutil import atomic_output

            with atomic_output(side["particles.csv"], overwrite=True) as tmp:
                tab.to_csv(tmp, index=False)
            if len(tab):
                size_histogram_png(tab, side["sizes.png"], title=src.name, overwrite=True)
            overlay_png(img, lab, side["overlay.png"], title=f"{src.name}: {len(tab)} particles", overwrite=True,
                        table=tab)
            msg += f"; {len(tab)} particles -> {side['particles.csv'].name}"
        typer.echo(msg)

    run_batch(pairs, one, description="segment", name=lambda p: str(p[0]), quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("segment")(segment_cmd)
