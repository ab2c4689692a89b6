"""CLI commands for files: ``scopenet info``, ``convert``, ``preview`` and ``flatten``.

::

    scopenet info scan.sxm              # every channel: shape, pixel size, signal, direction, range
    scopenet info scan.sxm --json
    scopenet convert scan.sxm scan.tif --channel Z --direction forward
    scopenet preview scan.dm4 -o scan.png --cmap magma
    scopenet flatten scan.sxm -o flat.tif --method lines
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ._common import user_errors


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
    file: Path = typer.Argument(..., help="Instrument file (.sxm, .Z_mtrx, .gwy, .dm4, .emd, .tif ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Show every image in FILE: shape, pixel size, signal, scan direction, min/max/mean."""
    import scopenet as sn

    with user_errors():
        images = sn.read_all(file)
        rows = [_describe(m) for m in images]
        if as_json:
            typer.echo(json.dumps({"file": str(file), "images": rows}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{file} — {len(rows)} image(s)")
        for col in ("#", "signal", "direction", "shape", "pixel size", "min", "max", "mean"):
            table.add_column(col, justify="right" if col in ("#", "min", "max", "mean") else "left")

        def g(v):
            return "—" if v is None else f"{v:.4g}"

        for i, r in enumerate(rows):
            unit = f" {r['signal_unit']}" if r["signal_unit"] else ""
            table.add_row(str(i), f"{r['signal']}{' [' + r['signal_unit'] + ']' if r['signal_unit'] else ''}",
                          r["direction"] or "—", "x".join(map(str, r["shape"])),
                          f"{r['pixel_size'][0]:.4g} x {r['pixel_size'][1]:.4g} {r['pixel_unit']}",
                          g(r["min"]) + unit, g(r["max"]) + unit, g(r["mean"]) + unit)
        Console(width=140).print(table)


def convert(
    src: Path = typer.Argument(..., metavar="IN", help="Input file."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output file; the format follows its extension."),
    channel: Optional[str] = typer.Option(None, "--channel", "-c", help="Channel to take (e.g. Z, Current)."),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="forward, backward, forward/up ..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
):
    """Convert one image of IN to OUT (.tif keeps calibration; .h5 also provenance)."""
    import scopenet as sn

    with user_errors():
        img = sn.read(src, channel=channel, direction=direction)
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


def preview(
    file: Path = typer.Argument(..., help="Instrument file."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG file to write."),
    cmap: Optional[str] = typer.Option(None, "--cmap", help="Matplotlib colour map (default by signal)."),
    channel: Optional[str] = typer.Option(None, "--channel", "-c", help="Channel to show."),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="Scan direction to show."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the PNG if it exists."),
):
    """Write a PNG preview of FILE with a colour map and a scale bar."""
    import scopenet as sn

    with user_errors():
        img = sn.read(file, channel=channel, direction=direction)
        _save_preview(img, output, cmap, overwrite)
        typer.echo(f"wrote {output}")


def flatten_cmd(
    src: Path = typer.Argument(..., metavar="IN", help="Scanning probe file."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file (.tif, .h5, .npy, .png ...)."),
    method: FlattenMethod = typer.Option(FlattenMethod.auto, "--method", "-m",
                                         help="lines: per-line fit; plane; poly: 2-D polynomial; ransac: "
                                              "plane robust to steps; align: median of differences; "
                                              "auto: align + ransac."),
    order: Optional[int] = typer.Option(None, "--order", help="Polynomial order (poly: default 2; lines: 1)."),
    channel: Optional[str] = typer.Option(None, "--channel", "-c", help="Channel to flatten."),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="Scan direction."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
):
    """Flatten a scanning probe image (remove tilt, line offsets, bow) and write it."""
    import numpy as np

    import scopenet as sn
    from ..image.preprocess import flatten

    with user_errors():
        img = sn.read(src, channel=channel, direction=direction)
        kw = {}
        if order is not None and method in (FlattenMethod.poly, FlattenMethod.lines):
            kw["order"] = order
            if method == FlattenMethod.lines:
                kw["line_method"] = "poly"
        elif method == FlattenMethod.lines:
            kw["line_method"] = "linear"
        flat = flatten(img, method=method.value, **kw)
        sn.write(flat, output, overwrite=overwrite)
        before, after = float(np.nanstd(img.data)), float(np.nanstd(flat.data))
        typer.echo(f"wrote {output} (method {method.value}; rms {before:.4g} -> {after:.4g} {img.signal_unit})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("info")(info)
    app.command("convert")(convert)
    app.command("preview")(preview)
    app.command("flatten")(flatten_cmd)
