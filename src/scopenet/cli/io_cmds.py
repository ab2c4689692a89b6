"""CLI commands for files: ``scopenet info``, ``convert``, ``preview`` and ``flatten``.

::

    scopenet info scan.sxm              # every channel: shape, pixel size, signal, direction, range
    scopenet info scan.sxm --json
    scopenet convert scan.sxm scan.tif --signal Z --direction forward
    scopenet preview scan.dm4 -o scan.png --cmap magma
    scopenet preview *.emd -o previews/               # one PNG per file; a bad file does not stop the rest
    scopenet flatten scan.sxm -o flat.tif --method lines
    scopenet flatten *.sxm -o flat/                   # flat/<name>-flat.tif

``--signal`` (also ``--channel``/``-c``) picks the image of a multi-image file by index or title as
``info`` lists them; by default the image signal is taken (HAADF before EDS maps) and named on stderr.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from ._common import (check_absent, check_writable, output_targets, pick_image, quiet_option, read_images,
                      run_batch, signal_option, user_errors)


class FlattenMethod(str, Enum):
    lines = "lines"
    plane = "plane"
    poly = "poly"
    ransac = "ransac"
    align = "align"
    auto = "auto"


def _describe(img) -> dict:
    s = img.summary()
    py, px = img.pixel_size
    return {
        "signal": img.signal,
        "signal_unit": img.signal_unit,
        "direction": img.scan_direction,
        "modality": img.modality,
        "shape": list(img.shape),
        "pixel_size": [py, px],
        "pixel_unit": img.pixel_unit,
        "min": s["min"],
        "max": s["max"],
        "mean": s["mean"],
        "nan_fraction": s["nan_fraction"],
    }


def info(
    file: Path = typer.Argument(..., help="Instrument file (.sxm, .Z_mtrx, .gwy, .dm4, .emd, .tif, .npz ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Show every image in FILE: shape, pixel size, signal, scan direction, min/max/mean."""
    with user_errors():
        images = read_images(file)
        rows = [_describe(m) for m in images]
        if as_json:
            typer.echo(json.dumps({"file": str(file), "images": rows}, indent=2))
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from ..image.units import field_of_view_text, pixel_size_text, value_format

        table = Table(title=f"{file} — {len(rows)} image(s)", title_justify="left")
        for col in ("#", "signal", "direction", "shape", "pixel size", "field of view", "min", "max", "mean"):
            table.add_column(col, justify="right" if col in ("#", "min", "max", "mean") else "left",
                             overflow="fold")

        for i, (m, r) in enumerate(zip(images, rows)):
            # values in one readable unit per image: heights in pm/nm, currents in pA/nA ...
            vunit, g = value_format(r["min"], r["max"], r["signal_unit"])
            # escaped: rich would read "[nm]" as a style tag and drop it
            table.add_row(str(i), escape(f"{r['signal']}{' [' + vunit + ']' if vunit else ''}"),
                          r["direction"] or "—", "x".join(map(str, r["shape"])),
                          pixel_size_text(m), field_of_view_text(m), g(r["min"]), g(r["max"]), g(r["mean"]))
        Console(width=140, soft_wrap=False).print(table)


def convert(
    src: Path = typer.Argument(..., metavar="IN", help="Input file."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output file; the format follows its extension."),
    signal: Optional[str] = signal_option(),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="forward, backward, forward/up ..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    quiet: bool = quiet_option(),
):
    """Convert one image of IN to OUT (.tif keeps calibration; .h5 also provenance)."""
    import scopenet as sn

    with user_errors():
        check_absent(dst, overwrite)
        check_writable(dst)
        img = pick_image(src, signal, direction, quiet)
        sn.write(img, dst, overwrite=overwrite)
        typer.echo(f"wrote {dst} ({img.signal}, {'x'.join(map(str, img.shape))})")


def _save_preview(img, out: Path, cmap: str | None, overwrite: bool) -> None:
    """PNG preview through :func:`scopenet.io.generic.save_preview` when present, else ``sn.write``."""
    import scopenet as sn

    try:
        from ..io.generic import save_preview
    except ImportError:  # pragma: no cover - older builds
        sn.write(img, out, overwrite=overwrite, **({"cmap": cmap} if cmap else {}))
        return
    save_preview(img, out, cmap=cmap, overwrite=overwrite)


def _prepare_outputs(inputs: List[Path], output: Path, tag: str, ext: str) -> list[tuple[Path, Path]]:
    """Input/output pairs; the output location is checked (and a folder created) before any work."""
    pairs, is_folder = output_targets(inputs, output, tag, ext)
    check_writable(output, folder=is_folder)
    if is_folder:
        output.mkdir(parents=True, exist_ok=True)
    return pairs


def preview(
    files: List[Path] = typer.Argument(..., metavar="FILE...", help="Instrument files."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="PNG file (one input) or folder (created; one <name>.png per input)."),
    cmap: Optional[str] = typer.Option(None, "--cmap", help="Matplotlib colour map (default by signal)."),
    signal: Optional[str] = signal_option(),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="Scan direction to show."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the PNG if it exists."),
    quiet: bool = quiet_option(),
):
    """Write a PNG preview of each FILE with a colour map and a scale bar."""
    with user_errors():
        pairs = _prepare_outputs(files, output, "", ".png")

    def one(pair):
        src, out = pair
        check_absent(out, overwrite)
        img = pick_image(src, signal, direction, quiet)
        _save_preview(img, out, cmap, overwrite)
        typer.echo(f"wrote {out}")

    run_batch(pairs, one, description="preview", name=lambda p: str(p[0]), quiet=quiet)


def flatten_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Scanning probe files."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output file (one input: .tif, .h5, .npy, .png ...) or folder "
                                     "(created; <name>-flat.tif per input)."),
    method: FlattenMethod = typer.Option(FlattenMethod.auto, "--method", "-m",
                                         help="lines: per-line fit; plane; poly: 2-D polynomial; ransac: "
                                              "plane robust to steps; align: median of differences; "
                                              "auto: align + ransac."),
    order: Optional[int] = typer.Option(None, "--order", help="Polynomial order (poly: default 2; lines: 1)."),
    signal: Optional[str] = signal_option(),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="Scan direction."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    quiet: bool = quiet_option(),
):
    """Flatten scanning probe images (remove tilt, line offsets, bow) and write them."""
    import numpy as np

    import scopenet as sn

    with user_errors():
        pairs = _prepare_outputs(inputs, output, "-flat", ".tif")
    kw = {}
    if order is not None and method in (FlattenMethod.poly, FlattenMethod.lines):
        kw["order"] = order
        if method == FlattenMethod.lines:
            kw["line_method"] = "poly"
    elif method == FlattenMethod.lines:
        kw["line_method"] = "linear"

    def one(pair):
        src, out = pair
        check_absent(out, overwrite)
        img = pick_image(src, signal, direction, quiet)
        flat = sn.flatten(img, method=method.value, **kw)
        sn.write(flat, out, overwrite=overwrite)
        before, after = float(np.nanstd(img.data)), float(np.nanstd(flat.data))
        typer.echo(f"wrote {out} (method {method.value}; rms {before:.4g} -> {after:.4g} {img.signal_unit})")

    run_batch(pairs, one, description="flatten", name=lambda p: str(p[0]), quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("info")(info)
    app.command("convert")(convert)
    app.command("preview")(preview)
    app.command("flatten")(flatten_cmd)
