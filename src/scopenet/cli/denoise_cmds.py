"""CLI command: ``scopenet denoise IN... -o OUT [--model NAME] [--signal S] [--tta] [--dose-estimate] [--dose N]``.

``--model auto`` (the default) routes each image to the low-dose or high-dose model by the noise
measured on the raw image (:mod:`scopenet.tasks.denoise.dose`). A file that cannot be read or
denoised is reported at the end and the others are still done (exit code 1 if any failed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import (check_absent, check_writable, output_targets, pick_image, quiet_option, run_batch,
                      show_progress, signal_option, user_errors)


def _targets(inputs: List[Path], output: Path) -> list[tuple[Path, Path]]:
    """Input/output pairs; the output location is checked (and a folder created) before any work."""
    pairs, is_folder = output_targets(inputs, output, "-denoised", ".tif")
    check_writable(output, folder=is_folder)
    if is_folder:
        output.mkdir(parents=True, exist_ok=True)
    return pairs


def _load_model(model: str):
    import scopenet as sn

    if "/" in model or model.endswith(".json") or model.endswith(".safetensors"):
        return sn.Denoiser.load(Path(model))
    return sn.Denoiser.pretrained(model)


def denoise_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Micrograph files (any format scopenet reads)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Output file (one input, with an extension) or folder (created if needed)."),
    model: str = typer.Option("auto", "--model", "-m",
                              help="'auto' (route each image by its measured noise to the low- or high-dose "
                                   "model), 'default', 'high-dose', another installed name or a saved model path."),
    signal: Optional[str] = signal_option(),
    tta: bool = typer.Option(False, "--tta", help="Average over the 8 flips/rotations (8x slower)."),
    dose_estimate: bool = typer.Option(False, "--dose-estimate",
                                       help="Print the electron dose estimated from the noise (shot-noise model)."),
    dose: Optional[float] = typer.Option(None, "--dose",
                                         help="Known mean counts (electrons) per pixel, for images proportional "
                                              "to counts: remove no more than that shot noise (never expected "
                                              "to be worse than the input)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = quiet_option(),
):
    """Denoise electron/probe micrographs with a pretrained model; calibration and provenance are kept."""
    import numpy as np

    import scopenet as sn

    with user_errors():
        if dose is not None and not dose > 0:
            from ..errors import InputError

            raise InputError(f"--dose must be a positive number of counts per pixel, got {dose}")
        pairs = _targets(list(inputs), output)
        den = _load_model(model)
        den.progress = show_progress(quiet)  # a bar over the tiles of large images, at a terminal

    def one(pair):
        src, o = pair
        check_absent(o, overwrite)
        img = pick_image(src, signal, quiet=quiet)
        out = sn.denoise(img, model=den, tta=tta, dose=dose)
        msg = ""
        params = (out.provenance[-1].get("params") or {}) if out.provenance else {}
        if params.get("model") == "denoise-auto" and params.get("equivalent_dose"):
            eq_dose, weight = params["equivalent_dose"][0], params["high_dose_weight"][0]
            msg = (f"; auto: equivalent dose {eq_dose:.4g} counts -> high-dose weight {weight:.2f}"
                   + (f" (first of {img.data.shape[0]} frames)" if img.data.ndim == 3 else ""))
        if params.get("guard_weight"):
            msg += f"; known dose {dose:.4g} counts/px -> denoiser weight {params['guard_weight'][0]:.2f}"
        if dose_estimate:
            from ..tasks.denoise.model import estimate_dose

            frame_in = img.data if img.data.ndim == 2 else img.data[0]
            frame_out = out.data if out.data.ndim == 2 else out.data[0]
            d = estimate_dose(frame_in, frame_out)
            out.metadata = {**out.metadata, "dose_estimate": d}
            msg += (f"; estimated dose: {d['counts_range']:.4g} counts across the range, "
                    f"mean {d['mean_counts']:.4g} counts/px" if np.isfinite(d["counts_range"])
                    else "; dose estimate: noise is not signal-dependent (not shot-noise limited)")
        sn.write(out, o, overwrite=overwrite)
        typer.echo(f"wrote {o}{msg}")

    run_batch(pairs, one, description="denoise", name=lambda p: str(p[0]), quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("denoise")(denoise_cmd)
