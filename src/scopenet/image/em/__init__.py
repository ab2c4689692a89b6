"""Intensity and geometry preparation of electron micrographs (TEM/STEM).

Every function accepts either a NumPy array or a :class:`~scopenet.image.Micrograph`. Given an array
it returns an array (float32 for integer or float32 input, float64 for float64 input); given a
Micrograph it returns a new Micrograph with calibration updated where the geometry changes and one
provenance entry appended. The input is never modified.

For a stack ``(n, y, x)`` the statistics (:func:`normalise`, :func:`replace_nonfinite`) are taken
over the whole stack, not frame by frame; the geometry operations act on the last two axes. NaN
pixels are ignored by the statistics and stay NaN where the geometry allows.

Intensity (:mod:`.intensity`)
    :func:`replace_nonfinite`, :func:`normalise` (alias :func:`normalize`).
Geometry (:mod:`.geometry`)
    :func:`bin_image`, :func:`crop_to_square`, :func:`resize`.
"""
from .geometry import bin_image, crop_to_square, resize
from .intensity import normalise, normalize, replace_nonfinite

__all__ = ["replace_nonfinite", "normalise", "normalize", "bin_image", "crop_to_square", "resize"]
