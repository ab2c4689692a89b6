"""Plumbing shared by the SPM flattening modules: array/Micrograph in and out, stacks, fit masks."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import InputError
from ..micrograph import Micrograph, check_image_array


def _split(x) -> tuple[np.ndarray, Micrograph | None]:
    """The data of ``x`` as a float array (no copy when possible) and the Micrograph or None."""
    if isinstance(x, Micrograph):
        return x.data, x
    return check_image_array(x), None


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)


def _wrap(out: np.ndarray, img: Micrograph | None, operation: str, axes=None, **params):
    if img is None:
        return out
    return img.with_data(out, axes=axes, operation=operation, **params)


def _per_frame(func: Callable[[np.ndarray], np.ndarray], arr: np.ndarray) -> np.ndarray:
    """Apply a 2-D function to each frame of a stack (or to the image itself)."""
    if arr.ndim == 2:
        return func(arr)
    return np.stack([func(f) for f in arr])


def _valid(z: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Pixels usable for a fit: finite and not excluded by ``mask`` (True = exclude)."""
    ok = np.isfinite(z)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != z.shape[-2:]:
            raise InputError(f"mask shape {m.shape} does not match the image shape {z.shape[-2:]}")
        ok &= ~m
    return ok


def _unit_coords(n: int) -> np.ndarray:
    """``n`` coordinates spread over [-1, 1] (0 for n == 1), for well-conditioned fits."""
    if n == 1:
        return np.zeros(1)
    return np.linspace(-1.0, 1.0, n)
