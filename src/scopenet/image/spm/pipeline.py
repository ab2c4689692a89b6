"""The one-call façade :func:`flatten` (``sn.flatten``) over the SPM flattening methods."""
from __future__ import annotations

from typing import Literal

from ...errors import InputError
from .background import ransac_plane, subtract_plane, subtract_polynomial
from .lines import align_rows, flatten_lines

FLATTEN_METHODS = ("plane", "lines", "poly", "ransac", "align", "auto")


def flatten(img, method: Literal["plane", "lines", "poly", "ransac", "align", "auto"] = "auto", **kw):
    """Flatten a scanning probe image with one call (``sn.flatten``).

    Parameters
    ----------
    img : array_like, shape (y, x) or (n, y, x), or Micrograph
    method : {"plane", "lines", "poly", "ransac", "align", "auto"}
        ``"plane"``: :func:`subtract_plane`; ``"lines"``: :func:`flatten_lines` (``line_method``,
        ``order``); ``"poly"``: :func:`subtract_polynomial` (``order``, default 2); ``"ransac"``:
        :func:`ransac_plane`; ``"align"``: :func:`align_rows`; ``"auto"``: row alignment by median of
        differences, then a RANSAC plane (robust to steps, adsorbates and line offsets).
    **kw
        Passed to the chosen function (``mask``, ``threshold``, ``order``...).

    Returns
    -------
    ndarray or Micrograph, like the input.

    Examples
    --------
    >>> import scopenet as sn
    >>> img = sn.read("scan.sxm")                     # doctest: +SKIP
    >>> flat = sn.flatten(img, method="lines")        # doctest: +SKIP
    """
    if method == "plane":
        return subtract_plane(img, **kw)
    if method == "lines":
        lm = kw.pop("line_method", kw.pop("lines", "offset"))
        return flatten_lines(img, method=lm, **kw)
    if method == "poly":
        return subtract_polynomial(img, **kw)
    if method == "ransac":
        return ransac_plane(img, **kw)
    if method == "align":
        return align_rows(img, **kw)
    if method == "auto":
        mask = kw.pop("mask", None)
        return ransac_plane(align_rows(img, mask=mask), mask=mask, **kw)
    raise InputError(f"unknown flattening method {method!r}; choose one of {', '.join(FLATTEN_METHODS)}")
