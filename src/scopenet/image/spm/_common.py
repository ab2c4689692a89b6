"""Plumbing shared by the SPM flattening modules: array/Micrograph in and out, stacks, fit masks."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import InputError
from .._arrays import _out_dtype, _split, _wrap  # noqa: F401  (re-exported to the flattening modules)


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
