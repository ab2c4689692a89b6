"""Test-time augmentation: the 8 flips and quarter turns of an image, for NumPy arrays and torch tensors.

``views`` is a number of views everywhere in scopenet: ``n`` averages the first ``n`` transforms of
:data:`TTA_ORDER`, whose first four keep the scan lines horizontal (identity, half turn, left-right
and up-down flips), which matters for SPM images whose fast-scan axis carries its own artefacts.

>>> import numpy as np
>>> x = np.arange(12.0).reshape(3, 4)
>>> bool(np.allclose(tta_average(lambda a: a, x, views=8), x))
True
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import InputError

__all__ = ["TTA_ORDER", "dihedral", "dihedral_inverse", "check_views", "tta_average", "tta_mean"]

#: the order in which views are taken: first those that keep the scan lines horizontal
#: (identity, half turn, left-right flip, up-down flip), then the quarter turns
TTA_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def _check_k(k: int) -> int:
    if not 0 <= int(k) < 8:
        raise InputError(f"dihedral index must be in 0..7, got {k}")
    return int(k)


def dihedral(x: Any, k: int) -> Any:
    """The ``k``-th of the 8 dihedral transforms of the last two axes (``k = 0`` is the identity).

    ``k % 4`` quarter turns, then a left-right flip when ``k >= 4``. ``x`` is a NumPy array (a
    contiguous copy is returned) or a torch tensor.
    """
    k = _check_k(k)
    if isinstance(x, np.ndarray):
        out = np.rot90(x, k % 4, axes=(-2, -1))
        if k >= 4:
            out = out[..., ::-1]
        return np.ascontiguousarray(out)
    import torch

    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def dihedral_inverse(x: Any, k: int) -> Any:
    """Undo :func:`dihedral` ``k``: ``dihedral_inverse(dihedral(a, k), k) == a`` (NumPy or torch)."""
    k = _check_k(k)
    if isinstance(x, np.ndarray):
        out = x[..., ::-1] if k >= 4 else x
        return np.ascontiguousarray(np.rot90(out, -(k % 4), axes=(-2, -1)))
    import torch

    y = x.flip(-1) if k >= 4 else x
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


def check_views(views: Any) -> int:
    """A number of views 1..8 from ``views`` (``True`` is 8 and ``False`` / ``None`` 1, for old callers)."""
    if views is None or views is False:
        return 1
    if views is True:
        return 8
    try:
        n = int(views)
    except (TypeError, ValueError):
        n = -1
    if n != views or not 1 <= n <= 8:
        raise InputError(f"tta must be a number of views 1..8 (or True for 8), got {views!r}")
    return n


def tta_average(fn: Callable[[Any], Any], x: Any, views: int = 8) -> Any:
    """Average an image-to-image ``fn`` over the first ``views`` transforms of :data:`TTA_ORDER`,
    each output mapped back.

    ``fn`` maps ``(..., H, W)`` to ``(..., H', W')`` (leading axes, e.g. channels, are carried along;
    the output's last two axes are transformed back). NumPy input averages in float64 and returns
    float32; torch input stays a tensor. ``views=1`` calls ``fn`` once.
    """
    n = check_views(views)
    if n == 1:
        return fn(x)
    acc = None
    for k in TTA_ORDER[:n]:
        y = fn(dihedral(x, k))
        y = dihedral_inverse(np.asarray(y, np.float64) if isinstance(x, np.ndarray) else y, k)
        acc = y if acc is None else acc + y
    acc = acc / n
    return acc.astype(np.float32) if isinstance(x, np.ndarray) else acc


def tta_mean(fn: Callable[[Any], Any], x: Any, views: int = 8) -> Any:
    """Average an invariant output (class logits, a score) of ``fn`` over the first ``views``
    transforms of :data:`TTA_ORDER` of its input; nothing is mapped back."""
    n = check_views(views)
    if n == 1:
        return fn(x)
    outs = [fn(dihedral(x, k)) for k in TTA_ORDER[:n]]
    if isinstance(outs[0], np.ndarray):
        return np.mean(outs, axis=0)
    import torch

    return torch.stack(outs).mean(0)
