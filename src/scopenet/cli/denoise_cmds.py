"""CLI command: ``scopenet denoise IN... -o OUT [--model NAME] [--tta] [--dose-estimate] [--overwrite]``.

``--model auto`` (the default) routes each image to the low-dose or high-dose model by the noise
measured on the raw image (:mod:`scopenet.tasks.denoise.dose`)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ._common import user_errors


def _targets(inputs: List[Path], output: Path) -> list[tuple[Path, Path]]:
    from ..errors import InputError

    # one input and an output with a file extension: that file; otherwise -o is a folder
    if len(inputs) == 1 and not output.is_dir() and output.suffix:
        return [(inputs[0], output)]
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: with several inputs, -o must be a folder")
    output.mkdir(parents=True, exist_ok=True)
    pairs = [(p, output / f"{p.stem}-denoised.tif") for p in inputs]
    dup = {o for _, o in pairs if sum(o == q for _, q in pairs) > 1}
    if dup:
        raise InputError(f"several inputs would write {sorted(map(str, dup))[0]}; rename them")
    return pairs


def denoise_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IN...", help="Micrograph files (any format scopenet reads)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file (one input, with an extension) or folder (created if needed)."),
    model: str = typer.Option("auto", "--model", "-m",
                              help="'auto' (route each image by its measured noise to the low- or high-dose "
                                   "model), 'default', 'high-dose', another installed name or a saved model path."),
    tta: bool = typer.Option(False, "--tta", help="Average over the 8 flips/rotations (8x slower)."),
    dose_estimate: bool = typer.Option(False, "--dose-estimate",
                                       help="Print the electron dose estimated from the noise (shot-noise model)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
):
    """Denoise electron/probe micrographs with a pretrained model; calibration and provenance are kept."""
    import numpy as np

    import scopenet as sn
    from ..errors import WriteError
    from ..tasks.denoise.model import AutoDenoiser, Denoiser, estimate_dose

    with user_errors():
        pairs = _targets(list(inputs), output)
        if not overwrite:
            for _, o in pairs:
                if o.exists():
                    raise WriteError(o, "file exists (pass --overwrite to replace it)")
        images = [(sn.read(i), o) for i, o in pairs]  # read everything first: bad input changes nothing
        den = Denoiser.load(Path(model)) if ("/" in model or model.endswith(".json")
                                             or model.endswith(".safetensors")) else Denoiser.pretrained(model)
        for img, o in images:
            out = den.predict(img, tta=tta)
            msg = ""
            if isinstance(den, AutoDenoiser):
                r = den.route(img)[0]
                msg = (f"; auto: equivalent dose {r['dose']:.4g} counts -> high-dose weight {r['weight']:.2f}"
                       + (f" (first of {img.data.shape[0]} frames)" if img.data.ndim == 3 else ""))
            if dose_estimate:
                frame_in = img.data if img.data.ndim == 2 else img.data[0]
                frame_out = out.data if out.data.ndim == 2 else out.data[0]
                d = estimate_dose(frame_in, frame_out)
                out.metadata = {**out.metadata, "dose_estimate": d}
                msg += (f"; estimated dose: {d['counts_range']:.4g} counts across the range, "
                       f"mean {d['mean_counts']:.4g} counts/px" if np.isfinite(d["counts_range"])
                       else "; dose estimate: noise is not signal-dependent (not shot-noise limited)")
            sn.write(out, o, overwrite=overwrite)
            typer.echo(f"wrote {o}{msg}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("denoise")(denoise_cmd)
