"""Write small, faithful electron-microscopy test files into ``tests/data/em/``.

Run ``python tests/data/make_em_testdata.py`` to (re)generate them. Every image encodes the known
pattern :func:`pattern` (value = 100 * row + col, row 0 = first stored row), written with the
reference library of each format (mrcfile, tifffile, h5py) exactly as instruments/other programs
write them, so reader tests can check values, orientation and calibration exactly.

Files (all < 10 kB):

* ``generated.mrc``: MRC2014 2-D image, 24 x 32, float32, voxel size 2.5 Å (= 0.25 nm).
* ``generated_stack.mrc``: MRC2014 image stack (ISPG 0), 3 x 8 x 12, int16, voxel 10 Å (1 nm).
* ``generated_imagej.tif``: ImageJ TIFF, 24 x 32 float32, ``unit=nm``, 0.5 nm/px in x,
  0.25 nm/px in y, ``xorigin=4`` (x offset -2 nm).
* ``generated_imagej_micron.tif``: ImageJ TIFF, 16 x 16 uint16, ``unit=micron``, 0.125 µm/px.
* ``generated_imagej_stack.tif``: ImageJ z-stack 4 x 8 x 10 float32, ``unit=nm``, 0.2 nm/px,
  ``spacing=1.5`` nm.
* ``generated_plain.tif``: plain (non-ImageJ) TIFF without calibration, 10 x 12 uint16.
* ``generated_ncem.emd``: Berkeley EMD v0.2 as ncempy writes it: ``data/single/data`` (Y, X) =
  (12, 20) uint16, ``dim1`` = Y and ``dim2`` = X with units ``n_m`` and a 0.05 step.
* ``generated_plain.h5``: a foreign HDF5 file with one 2-D dataset ``/images/frame`` (6 x 7 int32)
  and a 1-D dataset ``/spectrum`` (ignored).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "em"


def pattern(*shape: int, dtype=np.float32) -> np.ndarray:
    """``100 * row + col`` (plus ``10000 * frame`` for stacks), as ``dtype``."""
    if len(shape) == 2:
        r, c = np.mgrid[0:shape[0], 0:shape[1]]
        return (100 * r + c).astype(dtype)
    f, r, c = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    return (10000 * f + 100 * r + c).astype(dtype)


def write_mrc(path: Path, data: np.ndarray, voxel_angstrom: float, stack: bool = False) -> None:
    import mrcfile

    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        if stack:
            m.set_image_stack()
        m.voxel_size = voxel_angstrom


def write_imagej(path: Path, data: np.ndarray, scale_xy: tuple[float, float], unit: str,
                 **ij) -> None:
    """ImageJ TIFF: resolution = 1 / pixel size (pixels per unit), unit in the description."""
    import tifffile

    sx, sy = scale_xy
    meta = {"unit": unit, "axes": "ZYX" if data.ndim == 3 else "YX", **ij}
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / sx, 1 / sy), metadata=meta)


def write_ncem(path: Path, data: np.ndarray, step: float = 0.05) -> None:
    """Berkeley EMD v0.2 with one 2-D dataset, laid out like ncempy's ``emd.fileEMD.put_emdgroup``."""
    import h5py

    ny, nx = data.shape
    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        g = f.create_group("data/single")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data)
        for i, (name, n) in enumerate((("Y", ny), ("X", nx)), start=1):
            d = g.create_dataset(f"dim{i}", data=(np.arange(n) * step).astype(np.float32))
            d.attrs["name"] = np.bytes_(name)
            d.attrs["units"] = np.bytes_("n_m")
        mic = f.create_group("microscope")
        mic.attrs["high tension"] = 200000.0
        f.create_group("user")
        f.create_group("sample")
        f.create_group("comments")


def main() -> None:
    import h5py
    import tifffile

    OUT.mkdir(parents=True, exist_ok=True)
    write_mrc(OUT / "generated.mrc", pattern(24, 32), 2.5)
    write_mrc(OUT / "generated_stack.mrc", pattern(3, 8, 12, dtype=np.int16), 10.0, stack=True)
    write_imagej(OUT / "generated_imagej.tif", pattern(24, 32), (0.5, 0.25), "nm", xorigin=4.0)
    write_imagej(OUT / "generated_imagej_micron.tif", pattern(16, 16, dtype=np.uint16),
                 (0.125, 0.125), "micron")
    write_imagej(OUT / "generated_imagej_stack.tif", pattern(4, 8, 10), (0.2, 0.2), "nm", spacing=1.5)
    tifffile.imwrite(OUT / "generated_plain.tif", pattern(10, 12, dtype=np.uint16))
    write_ncem(OUT / "generated_ncem.emd", pattern(12, 20, dtype=np.uint16))
    with h5py.File(OUT / "generated_plain.h5", "w") as f:
        f["images/frame"] = pattern(6, 7, dtype=np.int32)
        f["spectrum"] = np.arange(5.0)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, in {OUT}")


if __name__ == "__main__":
    main()
