"""CLI command: ``scopenet exitwave IMAGE -o OUT [--model restricted|single] [--input amplitude|intensity]``.

The exit-wave amplitude in IMAGE (any format scopenet reads) goes through a pretrained exit-wave
model; four files are written beside OUT (a path stem; an extension such as ``.tif`` is dropped):

- ``OUT-amplitude.tif``: the amplitude scaled to mean 1 (float32, calibration kept);
- ``OUT-phase.tif``: the phase in radians, in ``[-pi, pi)`` (float32);
- ``OUT-phase.png``: the phase on a cyclic colour map (matplotlib's ``twilight``; -pi and pi share
  one colour) with a fixed range ``[-pi, pi)``;
- ``OUT-confidence.tif``: the per-pixel phase confidence in ``[0, 1]``.

Nothing is overwritten without ``--overwrite``; every file is written under a temporary name first. A
warning is printed when the image is unlike the model's training data.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ._common import check_absent, check_writable, note, pick_image, quiet_option, signal_option, user_errors

SUFFIXES = {"amplitude": ".tif", "phase": ".tif", "phase-png": ".png", "confidence": ".tif"}


def output_paths(out: Path) -> dict[str, Path]:
    """The four files of ``scopenet exitwave -o OUT`` (``OUT`` a path stem; a known image suffix is dropped)."""
    out = Path(out)
    if out.suffix.lower() in (".tif", ".tiff", ".png", ".npy"):
        out = out.with_suffix("")
    return {k: out.with_name(f"{out.name}-{k.replace('-png', '')}{ext}") for k, ext in SUFFIXES.items()}


def phase_png(phase: np.ndarray, path: Path, overwrite: bool = False) -> Path:
    """Write ``phase`` (radians) as an RGB PNG on the cyclic ``twilight`` map over ``[-pi, pi)``."""
    from matplotlib import colormaps
    from PIL import Image

    from .._fileutil import atomic_output

    u = np.mod(np.asarray(phase, np.float64) + np.pi, 2 * np.pi) / (2 * np.pi)  # [-pi, pi) -> [0, 1)
    rgb = (colormaps["twilight"](u)[..., :3] * 255 + 0.5).astype(np.uint8)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return path


def exitwave_cmd(
    image: Path = typer.Argument(..., metavar="IMAGE", help="Exit-wave amplitude (any format scopenet reads)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output path stem: writes OUT-amplitude.tif, OUT-phase.tif, OUT-phase.png "
                                     "(cyclic colour map) and OUT-confidence.tif."),
    model: str = typer.Option("restricted", "--model", "-m",
                              help="'restricted' (many materials, restricted simulation ranges), 'single' "
                                   "(SrTiO3 only), another installed name or a saved model path."),
    input_kind: str = typer.Option("amplitude", "--input",
                                   help="'amplitude' (|psi|) or 'intensity' (|psi|^2, its square root is used)."),
    scale: str = typer.Option("mean", "--scale",
                              help="'mean' (divide by the mean; values must be >= 0) or 'range' "
                                   "(map the image's range onto [0, 2])."),
    signal: Optional[str] = signal_option(),
    tta: int = typer.Option(1, "--tta", min=1, max=8, help="Number of flipped/rotated views averaged."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = quiet_option(),
):
    """Recover the exit-wave phase from its amplitude with a pretrained model."""
    import scopenet as sn
    from scopenet.tasks.exitwave import ExitWaveEstimator, UnfamiliarInputWarning

    with user_errors():
        paths = output_paths(output)
        for p in paths.values():
            check_writable(p)
            check_absent(p, overwrite)
        if input_kind not in ("amplitude", "intensity") or scale not in ("mean", "range"):
            raise sn.InputError(f"--input must be amplitude or intensity and --scale mean or range, got "
                                f"{input_kind!r} and {scale!r}")
        est = ExitWaveEstimator.pretrained(model, input=input_kind, scale=scale)
        img = pick_image(image, signal, quiet=quiet)
        if img.is_stack:
            raise sn.InputError(f"{image}: a stack of {len(img)} frames; exitwave takes one 2-D image")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnfamiliarInputWarning)
            wave = est.predict(img, tta=tta)
        for w in caught:
            if issubclass(w.category, UnfamiliarInputWarning):
                typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        conf = est.confidence(img, tta=tta)
        amp = wave.with_data(np.abs(wave.data).astype(np.float32))
        amp.signal, amp.signal_unit = "exit-wave amplitude (mean 1)", ""
        phase = wave.with_data(np.angle(wave.data).astype(np.float32))
        phase.data[phase.data >= np.pi] -= np.float32(2 * np.pi)
        phase.signal, phase.signal_unit = "exit-wave phase", "rad"
        conf.signal, conf.signal_unit = "phase confidence", ""
        sn.write(amp, paths["amplitude"], overwrite=overwrite)
        sn.write(phase, paths["phase"], overwrite=overwrite)
        phase_png(phase.data, paths["phase-png"], overwrite=overwrite)
        sn.write(conf, paths["confidence"], overwrite=overwrite)
    note(f"model {est.name}; mean phase confidence {float(np.mean(conf.data)):.2f}", quiet)
    for p in paths.values():
        typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("exitwave")(exitwave_cmd)
