"""``scopenet inpaint``: complete a sparse scan, or preview what a sparse scan of a full image would give.

    scopenet inpaint SCAN --mask MASK -o OUT [--tta] [--fourier auto|on|off]
    scopenet inpaint FULL --simulate spiral --coverage 0.05 -o OUT
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ._common import user_errors


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("inpaint")
    def inpaint_cmd(
        scan: Path = typer.Argument(..., help="Partial scan (zeros / anything off the path), or a full image with --simulate."),
        output: Path = typer.Option(..., "-o", "--output", help="Output file (any writable format; calibration kept)."),
        mask: Optional[Path] = typer.Option(None, "--mask", help="Mask image: non-zero where the probe scanned."),
        simulate: Optional[str] = typer.Option(None, "--simulate",
                                               help="Scan the full image with this path first: spiral, grid, random, segments, sublattice, lissajous."),
        coverage: float = typer.Option(0.05, "--coverage", help="Fraction of pixels probed with --simulate."),
        seed: int = typer.Option(0, "--seed", help="Random seed for --simulate paths."),
        model: str = typer.Option("auto", "--model",
                                  help="auto (coverage-aware choice), default, another installed model name, or a path stem."),
        save_mask: Optional[Path] = typer.Option(None, "--save-mask", help="With --simulate: also write the mask."),
        tta: bool = typer.Option(False, "--tta", help="Average over the 8 flips/rotations (8x slower, ~2% lower error)."),
        fourier: str = typer.Option("auto", "--fourier",
                                    help="Fourier-sparsity refinement for crystal lattices: auto (when a check on the "
                                         "scan's own samples says it helps), on, off."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    ):
        """Complete a sparse scan with the pretrained model (sn.inpaint)."""
        import scopenet as sn

        from ..errors import InputError
        from ..simulate import scans
        from ..tasks.inpaint.model import inpaint

        with user_errors():
            img = sn.read(scan)
            if img.ndim != 2:
                raise InputError(f"{scan}: expected a single 2-D image, got shape {img.shape}")
            if (mask is None) == (simulate is None):
                raise InputError("give exactly one of --mask MASK or --simulate KIND")
            if not overwrite:
                for p in (output, save_mask):
                    if p is not None and p.exists():
                        raise InputError(f"{p} exists (pass --overwrite to replace it)")
            if mask is not None:
                mimg = sn.read(mask)
                m = np.asarray(mimg.data)
                if m.shape != img.shape:
                    raise InputError(f"mask {mask} has shape {m.shape} but scan {scan} has shape {img.shape}")
                m = m > 0
                partial = img
            else:
                h, w = img.shape
                n = max(h, w)
                m = scans.make_mask(simulate, n, coverage, np.random.default_rng(seed))[:h, :w]
                partial = img.with_data(np.where(m, img.data, 0).astype(np.float32), operation="partial_scan",
                                        kind=simulate, coverage=float(m.mean()), seed=seed)
                if save_mask is not None:
                    sn.write(img.with_data(m.astype(np.float32), operation="scan_mask", kind=simulate),
                             save_mask, overwrite=overwrite)
            if fourier not in ("auto", "on", "off"):
                raise InputError(f"--fourier must be auto, on or off, got {fourier!r}")
            out = inpaint(partial, m, model=model, tta=tta, fourier=fourier)
            sn.write(out, output, overwrite=overwrite)
            refined = out.provenance[-1]["params"].get("fourier")
            typer.echo(f"{output}: completed {m.sum()} scanned of {m.size} pixels (coverage 1/{m.size / max(m.sum(), 1):.1f})"
                       + ("; refined by Fourier sparsity" if refined else ""))
