"""``scopenet inpaint``: complete a sparse scan, or preview what a sparse scan of a full image would give.

    scopenet inpaint SCAN --mask MASK -o OUT [--tta] [--fourier auto|on|off] [--signal S]
    scopenet inpaint FULL --simulate spiral --coverage 0.05 -o OUT
    scopenet inpaint SCAN1 SCAN2 ... --mask MASK -o DIR      # the same scan path: DIR/<name>-inpainted.tif

With several scans a file that fails is reported at the end and the others are still done.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from ._common import (check_absent, check_writable, output_targets, pick_image, quiet_option, run_batch,
                      show_progress, signal_option, user_errors)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("inpaint")
    def inpaint_cmd(
        scans_in: List[Path] = typer.Argument(
            ..., metavar="SCAN...",
            help="Partial scan(s) (zeros / anything off the path), or full images with --simulate."),
        output: Path = typer.Option(..., "-o", "--output",
                                    help="Output file (one scan; any writable format, calibration kept) or "
                                         "folder (several scans; <name>-inpainted.tif each)."),
        mask: Optional[Path] = typer.Option(None, "--mask", help="Mask image: non-zero where the probe scanned."),
        simulate: Optional[str] = typer.Option(
            None, "--simulate",
            help="Scan the full image with this path first: spiral, grid, random, segments, sublattice, lissajous."),
        coverage: float = typer.Option(0.05, "--coverage", help="Fraction of pixels probed with --simulate."),
        seed: int = typer.Option(0, "--seed", help="Random seed for --simulate paths."),
        model: str = typer.Option("auto", "--model",
                                  help="auto (coverage-aware choice), default, another installed model name, "
                                       "or a path stem."),
        save_mask: Optional[Path] = typer.Option(None, "--save-mask",
                                                 help="With --simulate and one scan: also write the mask."),
        signal: Optional[str] = signal_option(),
        tta: bool = typer.Option(False, "--tta",
                                 help="Average over the 8 flips/rotations (8x slower, ~2% lower error)."),
        fourier: str = typer.Option("auto", "--fourier",
                                    help="Fourier-sparsity refinement for crystal lattices: auto (when a check on "
                                         "the scan's own samples says it helps), on, off."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
        quiet: bool = quiet_option(),
    ):
        """Complete sparse scans with the pretrained model (sn.inpaint)."""
        import scopenet as sn

        from ..errors import InputError
        from ..simulate import scans

        with user_errors():
            if (mask is None) == (simulate is None):
                raise InputError("give exactly one of --mask MASK or --simulate KIND")
            if fourier not in ("auto", "on", "off"):
                raise InputError(f"--fourier must be auto, on or off, got {fourier!r}")
            if save_mask is not None and (simulate is None or len(scans_in) != 1):
                raise InputError("--save-mask needs --simulate and a single scan")
            pairs, is_folder = output_targets(scans_in, output, "-inpainted", ".tif")
            check_writable(output, folder=is_folder)
            check_absent(save_mask, overwrite)
            check_writable(save_mask)
            mask_arr = None
            if mask is not None:
                mask_arr = np.asarray(pick_image(mask, None, quiet=quiet).data) > 0
            if is_folder:
                output.mkdir(parents=True, exist_ok=True)
            est = sn.Inpainter.pretrained(model)  # once, before any file: a bad name fails here
            est.progress = show_progress(quiet)  # a bar over the tiles of large scans, at a terminal

        def one(pair):
            scan, out_path = pair
            check_absent(out_path, overwrite)
            img = pick_image(scan, signal, quiet=quiet)
            if img.ndim != 2:
                raise InputError(f"{scan}: expected a single 2-D image, got shape {img.shape}")
            if mask_arr is not None:
                m = mask_arr
                if m.shape != img.shape:
                    raise InputError(f"mask {mask} has shape {m.shape} but scan {scan} has shape {img.shape}")
                partial = img
            else:
                h, w = img.shape
                m = scans.make_mask(simulate, max(h, w), coverage, np.random.default_rng(seed))[:h, :w]
                partial = img.with_data(np.where(m, img.data, 0).astype(np.float32), operation="partial_scan",
                                        kind=simulate, coverage=float(m.mean()), seed=seed)
                if save_mask is not None:
                    sn.write(img.with_data(m.astype(np.float32), operation="scan_mask", kind=simulate),
                             save_mask, overwrite=overwrite)
            out = sn.inpaint(partial, m, model=est, tta=tta, fourier=fourier)
            sn.write(out, out_path, overwrite=overwrite)
            refined = out.provenance[-1]["params"].get("fourier")
            typer.echo(f"{out_path}: completed {m.sum()} scanned of {m.size} pixels "
                       f"(coverage 1/{m.size / max(m.sum(), 1):.1f})"
                       + ("; refined by Fourier sparsity" if refined else ""))

        run_batch(pairs, one, description="inpaint", name=lambda p: str(p[0]), quiet=quiet)
