"""The classical methods super-resolution must beat, and the sampling models of coarse scans.

Two models of how a coarse scan samples the fine grid (``sampling``):

- ``"block_mean"`` (SPM, the default): each coarse pixel is the mean of its ``factor x factor``
  block of the fine one (the tip integrates over its footprint); pixel centres on the half-pixel
  convention (``align_corners=False``): coarse pixel ``i`` sits at fine coordinate ``f*i + (f-1)/2``.
- ``"decimate"`` (STEM sub-lattice scans): the probe visits every ``factor``-th position of the fine
  grid, ``coarse = fine[::f, ::f]``, so coarse pixel ``i`` sits exactly on fine pixel ``f*i``. The
  interpolation maps fine pixel ``x`` to coarse coordinate ``x / f`` and passes through the samples;
  the last ``f - 1`` rows and columns, past the last sample, are extrapolated by edge replication.

:func:`upsample` (nearest, bilinear, bicubic, aligned to the sampling) is the baseline family.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...image.micrograph import Micrograph

MAX_FACTOR = 8
INTERP_MODES = ("nearest", "bilinear", "bicubic")
#: how a coarse scan samples the fine grid; a card without the field is ``"block_mean"``
SAMPLINGS = ("block_mean", "decimate")
DEFAULT_SAMPLING = "block_mean"


# ----------------------------------------------------------------------------- pure functions
def check_factor(factor: Any) -> int:
    """Validate an integer upsampling factor in ``2..MAX_FACTOR`` (``InputError`` otherwise)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 2 <= int(factor) <= MAX_FACTOR:
        raise InputError(f"super-resolution factor must be an integer from 2 to {MAX_FACTOR}, got {factor!r}")
    return int(factor)


def _check_image(img: Any, what: str = "image") -> np.ndarray:
    a = np.asarray(img.data if isinstance(img, Micrograph) else img)
    if a.ndim != 2 or min(a.shape) < 2:
        raise InputError(f"{what} must be a 2-D array of at least 2x2 pixels, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise InputError(f"{what} must be finite numbers")
    return a.astype(np.float32)


def check_sampling(sampling: Any) -> str:
    """Validate a sampling name (one of :data:`SAMPLINGS`; ``InputError`` otherwise)."""
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    return sampling


def block_mean(img: np.ndarray, factor: int) -> np.ndarray:
    """Coarse scan of ``img``: mean over ``factor x factor`` blocks.

    Parameters
    ----------
    img : ndarray (..., H, W)
        ``H`` and ``W`` are cropped down to multiples of ``factor``.
    factor : int

    Returns
    -------
    ndarray (..., H // factor, W // factor), float32
    """
    f = check_factor(factor)
    a = np.asarray(img, np.float32)
    h, w = a.shape[-2] // f * f, a.shape[-1] // f * f
    if h == 0 or w == 0:
        raise InputError(f"image of shape {a.shape} is smaller than one {f}x{f} block")
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1)).astype(np.float32)


def decimate(img: np.ndarray, factor: int) -> np.ndarray:
    """Coarse STEM sub-lattice scan of ``img``: every ``factor``-th pixel, ``img[..., ::f, ::f]``.

    Parameters
    ----------
    img : ndarray (..., H, W)
        ``H`` and ``W`` are cropped down to multiples of ``factor`` first, so the shape matches
        :func:`block_mean`.
    factor : int

    Returns
    -------
    ndarray (..., H // factor, W // factor), float32; pixel ``(i, j)`` is ``img[..., f*i, f*j]``
    (the positions of :func:`scopenet.simulate.scans.sublattice_mask` with ``step=f``).
    """
    f = check_factor(factor)
    a = np.asarray(img, np.float32)
    h, w = a.shape[-2] // f * f, a.shape[-1] // f * f
    if h == 0 or w == 0:
        raise InputError(f"image of shape {a.shape} is smaller than one {f}x{f} block")
    return np.ascontiguousarray(a[..., :h:f, :w:f])


def coarsen(img: np.ndarray, factor: int, sampling: str = DEFAULT_SAMPLING) -> np.ndarray:
    """The coarse scan of a fine image under ``sampling`` (:func:`block_mean` or :func:`decimate`)."""
    return block_mean(img, factor) if check_sampling(sampling) == "block_mean" else decimate(img, factor)


def _upsample_decimated(t: torch.Tensor, f: int, mode: str) -> torch.Tensor:
    """Interpolate ``(B, C, h, w)`` so that output pixel ``f*i`` lies on input pixel ``i``."""
    h, w = t.shape[-2:]
    if mode == "nearest":  # each fine pixel takes the closest sample (ties to the later one)
        iy = torch.clamp((torch.arange(f * h) + f // 2) // f, max=h - 1)
        ix = torch.clamp((torch.arange(f * w) + f // 2) // f, max=w - 1)
        return t[..., iy, :][..., ix]
    # one replicated row/column past the end, then align_corners=True onto f*h + 1 points maps
    # output x to input x/f exactly; crop the extra point
    p = F.pad(t, (0, 1, 0, 1), mode="replicate")
    out = F.interpolate(p, size=(f * h + 1, f * w + 1), mode=mode, align_corners=True)
    return out[..., :f * h, :f * w]


def upsample(img: np.ndarray | torch.Tensor, factor: int, mode: str = "bicubic",
             sampling: str = DEFAULT_SAMPLING) -> np.ndarray | torch.Tensor:
    """Interpolate a coarse image (or a ``(B, 1, h, w)`` tensor) ``factor`` times larger.

    Parameters
    ----------
    img : ndarray (h, w) or Tensor (B, C, h, w)
    factor : int
        2..8.
    mode : {"nearest", "bilinear", "bicubic"}
        Bicubic is Keys' kernel with a = -0.75, as torch.
    sampling : {"block_mean", "decimate"}
        The grid convention of the coarse scan: ``"block_mean"`` puts the coarse pixel centres at
        the centres of their blocks (half-pixel convention, consistent with :func:`block_mean`);
        ``"decimate"`` puts coarse pixel ``i`` on fine pixel ``f*i`` (consistent with
        :func:`decimate`), so bilinear and bicubic pass through the samples.

    Returns
    -------
    ndarray (factor*h, factor*w) float32, or Tensor (B, C, factor*h, factor*w)
    """
    f = check_factor(factor)
    if mode not in INTERP_MODES:
        raise InputError(f"interpolation mode must be one of {INTERP_MODES}, got {mode!r}")
    check_sampling(sampling)
    is_tensor = isinstance(img, torch.Tensor)
    t = img if is_tensor else torch.from_numpy(np.ascontiguousarray(img, np.float32))[None, None]
    if sampling == "decimate":
        out = _upsample_decimated(t, f, mode)
    else:
        kw = {} if mode == "nearest" else {"align_corners": False}
        out = F.interpolate(t, scale_factor=f, mode=mode, **kw)
    return out if is_tensor else out[0, 0].numpy()
