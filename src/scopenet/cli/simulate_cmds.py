"""CLI: ``scopenet simulate spm|em|scan`` writes synthetic training data as ``.npz`` shards + manifest.

::

    scopenet simulate spm  --n 10000 -o data/spm  --seed 0 --size 128
    scopenet simulate em   --n 2000  -o data/em   --seed 0 --size 512 --kind mixed
    scopenet simulate scan --n 500   -o data/scan --kind spiral --coverage 0.05 --size 512

Every sample depends only on ``(seed, index)``, so reruns are identical. A non-empty output folder is
refused unless ``--overwrite`` is given; an output folder that cannot be created or written is refused
before any work. ``--gallery`` also writes ``gallery.png`` beside the shards. ``scopenet info`` and
``scopenet classify`` read the shards (``scopenet classify data/spm/spm-00000.npz``: one row per image).
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from ._common import check_writable, user_errors

simulate_app = typer.Typer(help="Generate synthetic training data with exact ground truth.", no_args_is_help=True)


class EMKind(str, Enum):
    stem = "stem"
    hrtem = "hrtem"
    meso = "meso"
    mixed = "mixed"


class ScanKind(str, Enum):
    spiral = "spiral"
    grid = "grid"
    sublattice = "sublattice"
    random = "random"
    segments = "segments"
    lissajous = "lissajous"
    mixed = "mixed"


def _check_out(out: Path, overwrite: bool, n: int) -> None:
    from ..errors import InputError, WriteError

    if n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    if out.exists() and not out.is_dir():
        raise WriteError(out, "exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise WriteError(out, "directory is not empty (pass --overwrite to replace its shards)")
    check_writable(out, folder=True)


def _finish(out: Path, gallery: bytes | None, what: str) -> None:
    if gallery is not None:
        from .._fileutil import atomic_output

        with atomic_output(out / "gallery.png", overwrite=True) as tmp:
            tmp.write_bytes(gallery)
    man = out / "manifest.json"
    n = json.loads(man.read_text())["n"] if man.exists() else "?"
    typer.echo(f"wrote {n} {what} to {out}")


N_OPT = typer.Option(..., "--n", "-n", help="Number of samples.")
OUT_OPT = typer.Option(..., "--out", "-o", help="Output folder (created; must be empty unless --overwrite).")
SEED_OPT = typer.Option(0, "--seed", help="Random seed (sample i depends only on seed and i).")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace shards in a non-empty OUT.")
QUIET_OPT = typer.Option(False, "--quiet", "-q", help="No progress bar.")
SHARD_OPT = typer.Option(None, "--shard-size", help="Samples per .npz shard.")
GALLERY_OPT = typer.Option(False, "--gallery", help="Also write gallery.png into OUT.")


@simulate_app.command("spm")
def spm_cmd(n: int = N_OPT, out: Path = OUT_OPT, seed: int = SEED_OPT,
            size: int = typer.Option(128, "--size", help="Image side, px."),
            shard_size: int = SHARD_OPT, overwrite: bool = OVERWRITE_OPT, quiet: bool = QUIET_OPT,
            gallery: bool = GALLERY_OPT):
    """STM images of model surfaces with tip artefacts and the six Nottingham + DeepSPM labels."""
    with user_errors():
        _check_out(out, overwrite, n)
        from ..simulate import spm

        spm.write_dataset(out, n, seed=seed, size=size, shard_size=shard_size or 1000, progress=not quiet,
                          overwrite=overwrite)
        _finish(out, spm.gallery_png(seed, size) if gallery else None, "SPM images")


@simulate_app.command("em")
def em_cmd(n: int = N_OPT, out: Path = OUT_OPT, seed: int = SEED_OPT,
           size: int = typer.Option(512, "--size", help="Image side, px."),
           kind: EMKind = typer.Option(EMKind.mixed, "--kind", help="stem, hrtem, meso or mixed."),
           shard_size: int = SHARD_OPT, overwrite: bool = OVERWRITE_OPT, quiet: bool = QUIET_OPT,
           gallery: bool = GALLERY_OPT):
    """Clean electron micrographs (STEM/HRTEM lattices with atom labels, mesoscale textures)."""
    with user_errors():
        _check_out(out, overwrite, n)
        from ..simulate import em

        em.write_dataset(out, n, seed=seed, size=size, kind=kind.value, progress=not quiet,
                         shard_size=shard_size or 256, overwrite=overwrite)
        _finish(out, em.gallery_png(seed, min(size, 256)) if gallery else None, f"EM images ({kind.value})")


@simulate_app.command("scan")
def scan_cmd(n: int = N_OPT, out: Path = OUT_OPT, seed: int = SEED_OPT,
             size: int = typer.Option(512, "--size", help="Mask side, px."),
             kind: ScanKind = typer.Option(ScanKind.spiral, "--kind", help="Scan path / mask kind."),
             coverage: float = typer.Option(0.05, "--coverage", help="Fraction of probed pixels, e.g. 0.05."),
             shard_size: int = SHARD_OPT, overwrite: bool = OVERWRITE_OPT, quiet: bool = QUIET_OPT,
             gallery: bool = GALLERY_OPT):
    """Partial-scan sampling masks (spiral, jittered grid, sub-lattice, random, segments, Lissajous)."""
    with user_errors():
        _check_out(out, overwrite, n)
        from ..simulate import scans

        scans.write_dataset(out, n, seed=seed, size=size, kind=kind.value, coverage=coverage,
                            shard_size=shard_size or 1000, progress=not quiet, overwrite=overwrite)
        _finish(out, scans.gallery_png(seed, min(size, 256), coverage) if gallery else None,
                f"{kind.value} masks")


def register(app: typer.Typer) -> None:
    """Add ``scopenet simulate ...`` to the app."""
    app.add_typer(simulate_app, name="simulate")
