"""Geometry operations: binning, cropping to a square and resizing (calibration follows)."""
from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from ...errors import InputError
from .._arrays import _out_dtype, _split, _wrap


def bin_image(x, factor: int | tuple[int, int], reduce: Literal["mean", "sum"] = "mean"):
    """Bin ``factor x factor`` pixel blocks into one (trailing rows/columns that do not fill a block
    are dropped). NaN pixels are ignored within a block; an all-NaN block gives NaN.

    For a Micrograph the pixel size grows by ``factor`` and the offsets move to the centre of the
    first block.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    factor : int or (int, int)
        Binning along (y, x).
    reduce : {"mean", "sum"}
    """
    arr, img = _split(x)
    fy, fx = (factor, factor) if np.isscalar(factor) else tuple(factor)
    fy, fx = int(fy), int(fx)
    if fy < 1 or fx < 1:
        raise InputError(f"bin factor must be >= 1, got {factor}")
    if reduce not in ("mean", "sum"):
        raise InputError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    h, w = arr.shape[-2:]
    ny, nx = h // fy, w // fx
    if ny == 0 or nx == 0:
        raise InputError(f"bin factor {factor} is larger than the image ({h}x{w})")
    z = arr[..., : ny * fy, : nx * fx].astype(np.float64)
    z = z.reshape(*arr.shape[:-2], ny, fy, nx, fx)
    fin = np.isfinite(z)
    s = np.where(fin, z, 0.0).sum(axis=(-3, -1))
    n = fin.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n if reduce == "mean" else s
    out = np.where(n > 0, out, np.nan).astype(_out_dtype(arr))
    axes = None
    if img is not None:
        ay, ax = img.axes[-2], img.axes[-1]
        axes = img.axes[:-2] + [
            replace(ay, size=ny, scale=ay.scale * fy, offset=ay.offset + (fy - 1) / 2 * ay.scale),
            replace(ax, size=nx, scale=ax.scale * fx, offset=ax.offset + (fx - 1) / 2 * ax.scale),
        ]
    return _wrap(out, img, "bin_image", axes=axes, factor=[fy, fx], reduce=reduce)


def crop_to_square(x, where: Literal["centre", "center", "start", "end"] = "centre"):
    """Crop the largest square: centred, at the start (top/left) or at the end (bottom/right).

    For a Micrograph the axis offsets follow the crop (via :meth:`Micrograph.crop`).
    """
    arr, img = _split(x)
    h, w = arr.shape[-2:]
    n = min(h, w)
    if where in ("centre", "center"):
        y0, x0 = (h - n) // 2, (w - n) // 2
    elif where == "start":
        y0, x0 = 0, 0
    elif where == "end":
        y0, x0 = h - n, w - n
    else:
        raise InputError(f"where must be 'centre', 'start' or 'end', got {where!r}")
    if img is not None:
        return img.crop(y0, y0 + n, x0, x0 + n)
    return arr[..., y0: y0 + n, x0: x0 + n].astype(_out_dtype(arr), copy=True)


def resize(x, shape: tuple[int, int], antialias: bool = True, order: int = 1):
    """Resize to ``shape = (rows, cols)`` with :func:`skimage.transform.resize`.

    Downsampling is Gaussian-antialiased when ``antialias``. NaN pixels are filled for the
    interpolation and put back (nearest-neighbour) afterwards. For a Micrograph the field of view is
    kept: the pixel size scales by the size ratio.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    shape : (int, int)
        Output (rows, cols).
    antialias : bool
    order : int
        Spline order (0 nearest, 1 bilinear, 3 bicubic).
    """
    from skimage.transform import resize as _sk_resize

    arr, img = _split(x)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"resize shape must be two positive integers, got {shape}")
    full = arr.shape[:-2] + shape
    z = arr.astype(np.float64)
    fin = np.isfinite(z)
    nan_mask = None
    if not fin.all():
        if not fin.any():
            raise InputError("cannot resize: no finite pixel (all NaN/inf)")
        z = np.where(fin, z, np.median(z[fin]))
        nan_mask = _sk_resize((~fin).astype(float), full, order=0, anti_aliasing=False) > 0.5
    out = _sk_resize(z, full, order=order, anti_aliasing=antialias, preserve_range=True, mode="reflect")
    if nan_mask is not None:
        out[nan_mask] = np.nan
    out = out.astype(_out_dtype(arr))
    axes = None
    if img is not None:
        axes = list(img.axes[:-2])
        for a, n in zip(img.axes[-2:], shape):
            s = a.scale * a.size / n
            axes.append(replace(a, size=n, scale=s, offset=a.offset - a.scale / 2 + s / 2))
    return _wrap(out, img, "resize", axes=axes, shape=list(shape), antialias=antialias, order=order)
