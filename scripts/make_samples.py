"""Write the small bundled sample files in ``src/scopenet/data/`` (total well under 1.5 MB).

Run from the repository root::

    python scripts/make_samples.py            # refuses to replace existing files
    python scripts/make_samples.py --overwrite

The samples are synthetic, generated here from a fixed seed (so the project may redistribute
them), and written as calibrated float32 TIFF:

``stm-steps.tif``
    STM topograph (height, metres) of a stepped metal surface: three monatomic steps with a wavy
    edge, hexagonal atomic corrugation, two adsorbates, a plane tilt, per-line offsets (a random
    walk, as from piezo creep / feedback drift) and one tip-change scar. 256x256, 0.04 nm pixels.
``haadf-lattice.tif``
    HAADF-STEM image (counts) of a perovskite-like [001] projection: bright A columns, dimmer B
    columns, Poisson noise. 256x256, 0.02 nm pixels.

The generation is deliberately simple and self-contained; ``scopenet.simulate`` will replace it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "src" / "scopenet" / "data"
N = 256


def stm_steps(seed: int = 7) -> tuple[np.ndarray, dict]:
    """Height map in metres and its description."""
    rng = np.random.default_rng(seed)
    px = 0.04  # nm
    yy, xx = np.mgrid[0:N, 0:N] * px  # nm
    # terraces: monatomic steps (0.235 nm, Au(111)-like) running roughly along y, with a wavy edge
    meander = 0.35 * np.sin(2 * np.pi * yy / 6.5) + 0.2 * np.sin(2 * np.pi * yy / 2.3 + 1.0)
    terrace = np.floor((xx + 0.25 * yy + meander) / 3.4)
    z = 0.235 * terrace
    # hexagonal atomic corrugation, a = 0.288 nm, 10 pm peak-to-peak
    a = 0.288
    k = 4 * np.pi / (np.sqrt(3) * a)
    corr = sum(np.cos(k * (xx * np.cos(t) + yy * np.sin(t))) for t in (0.1, 0.1 + 2 * np.pi / 3, 0.1 + 4 * np.pi / 3))
    z = z + 0.01 * (corr + 1.5) / 4.5
    # two adsorbates
    for cy, cx in ((3.1, 7.2), (7.9, 2.6)):
        z = z + 0.18 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.25**2))
    # plane tilt and per-line offsets (random walk) along the slow axis
    z = z + 0.03 * xx - 0.015 * yy
    z = z + np.cumsum(rng.normal(0, 0.006, N))[:, None]
    # a scar: the tip jumps for part of one line
    z[171, 60:118] += 0.12
    z = z + rng.normal(0, 0.002, z.shape)
    info = {"signal": "height", "signal_unit": "m", "modality": "STM", "scan_direction": "forward/up",
            "pixel_size_nm": px, "description": "synthetic stepped surface, tilt, line offsets, one scar"}
    return (z * 1e-9).astype(np.float32), info


def haadf_lattice(seed: int = 11) -> tuple[np.ndarray, dict]:
    """Counts and description."""
    rng = np.random.default_rng(seed)
    px = 0.02  # nm
    yy, xx = np.mgrid[0:N, 0:N] * px
    a = 0.3905
    theta = np.deg2rad(4.0)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    sig = 0.055
    img = np.zeros_like(xx)
    for (du, dv), amp in (((0.0, 0.0), 1.0), ((0.5, 0.5), 0.45)):  # A site (heavy), B site (light)
        fu = (u / a - du) - np.round(u / a - du)
        fv = (v / a - dv) - np.round(v / a - dv)
        img += amp * np.exp(-((fu * a) ** 2 + (fv * a) ** 2) / (2 * sig**2))
    expected = 3.0 + 40.0 * img  # mean counts per pixel
    counts = rng.poisson(expected).astype(np.float32)
    info = {"signal": "HAADF", "signal_unit": "counts", "modality": "STEM",
            "pixel_size_nm": px, "description": "synthetic perovskite [001] HAADF lattice, Poisson noise"}
    return counts, info


def _write(data: np.ndarray, info: dict, path: Path, overwrite: bool) -> None:
    """Write through scopenet's TIFF writer: ImageJ calibration + the full Micrograph state."""
    import scopenet as sn

    px = info["pixel_size_nm"]
    axes = [sn.Axis("y", N, px, 0.0, "nm"), sn.Axis("x", N, px, 0.0, "nm")]
    img = sn.Micrograph(data, axes=axes, signal=info["signal"], signal_unit=info["signal_unit"],
                        modality=info["modality"], scan_direction=info.get("scan_direction"),
                        metadata={"generator": "scripts/make_samples.py", **info})
    sn.write(img, path, overwrite=overwrite)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, gen in (("stm-steps.tif", stm_steps), ("haadf-lattice.tif", haadf_lattice)):
        data, info = gen()
        path = args.out / name
        _write(data, info, path, args.overwrite)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"total {total / 1024:.0f} KiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
