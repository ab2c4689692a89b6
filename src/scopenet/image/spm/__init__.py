"""Flattening and repair of scanning probe (STM/AFM) images.

Every function accepts either a NumPy array or a :class:`~scopenet.image.Micrograph`. Given an array
it returns an array (float32 for integer or float32 input, float64 for float64 input); given a
Micrograph it returns a new Micrograph with calibration updated where the geometry changes and one
provenance entry appended. The input is never modified.

Images are ``(y, x)`` with ``x`` the fast-scan axis (one scan line per row). Stacks ``(n, y, x)``
are processed frame by frame. Non-finite pixels (NaN: unscanned lines of a scan stopped early) are
ignored by every fit and stay NaN in the output.

Lines (:mod:`.lines`)
    :func:`flatten_lines`, :func:`align_rows`.
Backgrounds (:mod:`.background`)
    :func:`subtract_plane`, :func:`subtract_polynomial`, :func:`plane_coefficients`,
    :func:`ransac_plane`.
Scars (:mod:`.scars`)
    :func:`detect_scars`, :func:`repair_scars`.
Unfinished scans (:mod:`.unscanned`)
    :func:`crop_unscanned`.
One call (:mod:`.pipeline`)
    :func:`flatten` (``sn.flatten``), with the method names in :data:`FLATTEN_METHODS`.
"""
from .background import plane_coefficients, ransac_plane, subtract_plane, subtract_polynomial
from .lines import align_rows, flatten_lines
from .pipeline import FLATTEN_METHODS, flatten
from .scars import detect_scars, repair_scars
from .unscanned import crop_unscanned

__all__ = [
    "flatten", "flatten_lines", "align_rows", "subtract_plane", "subtract_polynomial", "ransac_plane",
    "plane_coefficients", "detect_scars", "repair_scars", "crop_unscanned", "FLATTEN_METHODS",
]
