"""CLI command: ``scopenet track MOVIE... -o tracks.csv [--diameter 7] [--search-range 5] [--msd msd.csv]``.

MOVIE is one file holding a stack of frames (TIFF stack, DM3 image stack, .npy ...) or several files,
one frame each, in the order given. The drift between frames is corrected first (phase correlation), the
particles are found and linked (trackpy; ``pip install 'scopenet[track]'``), and the tracks are written as
CSV: ``frame, particle, x, y, vx, vy, t, x_raw, y_raw, mass, x_m, y_m, vx_m, vy_m`` (positions in the first
frame's pixel coordinates, drift-corrected; metres for calibrated files). Scanned frames record each row
at its own time: the line time comes from the file (or ``--line-time``)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import check_absent, check_writable, note, quiet_option, read_images, user_errors


def _movie(paths: list[Path]):
    import numpy as np

    from ..errors import InputError

    if len(paths) == 1:
        imgs = read_images(paths[0])
        stacks = [m for m in imgs if m.ndim == 3]
        if stacks:
            return stacks[0]
        if len(imgs) > 1 and len({m.shape for m in imgs}) == 1:
            return imgs
        raise InputError(f"{paths[0]} holds no stack of frames; give a stack file or several frame files")
    frames = []
    for p in paths:
        m = read_images(p)[0]
        if m.ndim != 2:
            raise InputError(f"{p}: a frame must be a 2-D image, got shape {m.shape}")
        frames.append(m)
    if len({np.shape(m.data) for m in frames}) != 1:
        raise InputError("the frames differ in shape: " + ", ".join(f"{p.name} {np.shape(m.data)}"
                                                                    for p, m in zip(paths, frames)))
    return frames


def track_cmd(
    movie: List[Path] = typer.Argument(..., metavar="MOVIE...", help="A stack file, or frame files in order."),
    output: Path = typer.Option(..., "--output", "-o", help="Tracks CSV to write."),
    diameter: int = typer.Option(7, "--diameter", "-d", min=3, help="Spot size for the locator (odd, px)."),
    minmass: Optional[float] = typer.Option(None, "--minmass", help="Smallest feature brightness (default: automatic)."),
    dark: bool = typer.Option(False, "--dark", help="Particles darker than the background."),
    search_range: float = typer.Option(5.0, "--search-range", help="Largest step between frames (px)."),
    memory: int = typer.Option(2, "--memory", min=0, help="Frames a particle may vanish for."),
    drift: str = typer.Option("first", "--drift", help="first, previous or none (drift correction)."),
    frame_interval: Optional[float] = typer.Option(None, "--frame-interval", help="Seconds between frames."),
    line_time: Optional[float] = typer.Option(None, "--line-time", help="Seconds between scan lines."),
    msd_out: Optional[Path] = typer.Option(None, "--msd", help="Also write the mean squared displacement (CSV)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = quiet_option(),
):
    """Track particles through a movie: drift correction, detection, linking, velocities (CSV)."""
    from .._fileutil import atomic_output
    from ..errors import InputError

    with user_errors():
        if drift not in ("first", "previous", "none"):
            raise InputError(f"--drift must be first, previous or none, got {drift!r}")
        for p in (output, msd_out):
            if p is not None:
                check_writable(p)
                check_absent(p, overwrite)
        from ..tasks.track import msd, track

        frames = _movie(list(movie))
        df = track(frames, diameter=diameter, minmass=minmass, bright=not dark, search_range=search_range,
                   memory=memory, drift=drift, frame_interval=frame_interval, line_time=line_time)
        with atomic_output(output, overwrite=True) as tmp:
            df.to_csv(tmp, index=False)
        d = df.attrs["drift"]
        typer.echo(f"wrote {output}: {df['particle'].nunique()} tracks, {len(df)} positions in {len(d)} frames "
                   f"(drift at the last frame: dy {d[-1][0]:+.2f}, dx {d[-1][1]:+.2f} px)")
        if msd_out is not None:
            m = msd(df)
            with atomic_output(msd_out, overwrite=True) as tmp:
                m.to_csv(tmp, index=False)
            note(f"wrote {msd_out} ({len(m)} lags)", quiet)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("track")(track_cmd)
