"""Pad an image so that its last two sides are multiples of a network's stride, and crop back.

>>> import numpy as np
>>> p, shape = pad_to_multiple(np.zeros((5, 7)), 4)
>>> p.shape, shape
((8, 8), (5, 7))
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["pad_to_multiple"]


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes of ``x`` at the bottom and right to multiples of ``multiple``.

    Reflection is used where the image is larger than the padding, edge replication otherwise.
    Returns the padded array (``x`` itself when nothing is needed) and the original ``(H, W)``:
    crop a result with ``y[..., :H, :W]``.
    """
    k = int(multiple)
    if k < 1:
        raise InputError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    ph, pw = -h % k, -w % k
    if not (ph or pw):
        return x, (h, w)
    mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, pad, mode=mode), (h, w)
