"""Helpers shared by the scanning-probe readers (sxm, matrix, gwy, ibw, bruker).

Orientation convention (all SPM readers)
----------------------------------------
Every image is returned *as seen on screen in the physical scan frame*:

* row 0 is the **top** of the image (largest physical y), rows run downwards;
* column 0 is the **left** edge (smallest physical x), columns run to the right;
* a backward (retrace) image is mirrored so that it lines up pixel for pixel with the forward one;
* an "up" scan (first line recorded at the bottom) and a "down" scan (first line at the top) both
  come back top-row-first, so forward/up and forward/down images of the same area superpose.

``scan_direction`` keeps how the data were *acquired* (``"forward/up"``, ``"backward/down"``...:
horizontal/vertical), not how they are stored. The axes hold the pixel size (scan range / pixels,
in metres) with offset 0 at the top-left pixel; the instrument's frame position and angle stay in
``metadata`` (the untouched original header).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Axis, Micrograph, provenance_entry

#: readers refuse images with more pixels than this (a corrupt header must not allocate GBs).
MAX_PIXELS = 1 << 28


def spm_axes(ny: int, nx: int, height: float | None, width: float | None,
             unit: str = "m") -> list[Axis]:
    """Calibrated ``[y, x]`` axes: pixel size = range / pixels; uncalibrated when a range is unknown.

    Parameters
    ----------
    ny, nx : int
        Number of lines and of points per line.
    height, width : float or None
        Scan range along y and x in ``unit`` (None or non-positive -> pixel axes).
    """
    def one(name, n, rng):
        if rng is None or not np.isfinite(rng) or rng <= 0:
            return Axis(name, n)
        return Axis(name, n, scale=float(rng) / n, offset=0.0, unit=unit)

    return [one("y", ny, height), one("x", nx, width)]


def direction(forward: bool, up: bool | None) -> str:
    """``"forward/up"``-style label; the vertical part is dropped when unknown."""
    h = "forward" if forward else "backward"
    return h if up is None else f"{h}/{'up' if up else 'down'}"


def check_size(path: Path, n_values: int, itemsize: int, available: int, what: str = "data") -> None:
    """Raise ReadError when a header declares more values than the file holds (or absurdly many)."""
    if n_values <= 0:
        raise ReadError(path, f"the header declares an empty or negative {what} size ({n_values} values)")
    if n_values > MAX_PIXELS * 16:
        raise ReadError(path, f"the header declares {n_values} {what} values, which is not plausible "
                              "(corrupt header?)")
    need = n_values * itemsize
    if need > available:
        raise ReadError(path, f"truncated file: the header declares {n_values} {what} values "
                              f"({need} bytes) but only {available} bytes follow the header")


def make_image(data: np.ndarray, *, axes: list[Axis], signal: str, signal_unit: str,
               scan_direction: str | None, modality: str | None, metadata: dict[str, Any],
               path: Path, fmt: str, **prov: Any) -> Micrograph:
    """A Micrograph with the standard ``read`` provenance entry."""
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become +-inf
        data = np.asarray(data, dtype=np.float32)
    return Micrograph(data, axes=axes, signal=signal,
                      signal_unit=signal_unit, scan_direction=scan_direction, modality=modality,
                      metadata=metadata, source=Path(path),
                      provenance=[provenance_entry("read", format=fmt, path=str(path), **prov)])

