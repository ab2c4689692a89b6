"""Preprocessing and augmentation for tip-state classification.

Inputs follow the Gordon & Landon recipe: each scan line is X-flattened (its least-squares line
removed, as MATRIX does while scanning), the image is resized to a preset side (32 or 64 pixels, area
averaging) and standardised per image (zero mean, unit standard deviation).

Augmentations act on torch batches ``[B, 1, H, W]``: the 8 dihedral transforms (rotations by 90
degrees and flips) and scan-line artefacts (random per-line offsets, as a feedback loop or drift
leaves them, and per-line white noise). Line artefacts are added along the rows only, since rows are
scan lines; a dihedral transform is applied *after* them, which is what a rotated scan would show.
"""
from __future__ import annotations

import numpy as np
import torch

from ...errors import InputError
from ...image.tta import dihedral

#: image sides of the two input presets
SIZE_PRESETS = (32, 64)


def _numeric(x, what: str) -> np.ndarray:
    """``x`` as a float64 array, or an ``InputError`` saying what it is instead."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numeric image data, got {type(x).__name__} ({exc})") from None


def _as_stack(images) -> np.ndarray:
    """A float64 stack ``[N, H, W]`` from a Micrograph, a 2-D array or a list/stack of arrays."""
    from ...image.micrograph import Micrograph

    if isinstance(images, Micrograph):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no images to classify (an empty list)")
        arrs = []
        for i, im in enumerate(images):
            a = _numeric(im.data if isinstance(im, Micrograph) else im, f"image {i}")
            a = np.squeeze(a)
            if a.ndim != 2:
                raise InputError(f"image {i} has shape {a.shape}; a classifier input must be 2-D")
            arrs.append(a)
        return arrs  # type: ignore[return-value]
    a = _numeric(images, "classifier input")
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise InputError(f"expected images [N, H, W] or [H, W], got shape {a.shape}")
    return a


def flatten_x(image: np.ndarray) -> np.ndarray:
    """Subtract each row's least-squares straight line (X flattening); NaNs become the row mean.

    Parameters
    ----------
    image : ndarray [H, W]

    Returns
    -------
    ndarray [H, W] float64
    """
    z = np.asarray(image, dtype=np.float64)
    if not np.isfinite(z).all():
        fin = np.isfinite(z)
        if not fin.any():
            raise InputError("image has no finite pixel")
        z = np.where(fin, z, np.nanmean(np.where(fin, z, np.nan)))
    w = z.shape[1]
    if w < 2:
        return z - z.mean(axis=1, keepdims=True)
    t = np.linspace(-1.0, 1.0, w)
    mean = z.mean(axis=1, keepdims=True)
    slope = ((z - mean) @ t / (t @ t))[:, None]
    return z - mean - slope * t[None, :]


def standardise(x: np.ndarray) -> np.ndarray:
    """Per-image zero mean and unit standard deviation over the last two axes (flat images -> 0).

    In any units: an image is flat when its standard deviation is below 1e-7 of its largest magnitude
    (a fixed floor would flatten topographs in metres, whose deviations are ~1e-10).
    """
    x = np.asarray(x, dtype=np.float64)
    m = x.mean(axis=(-2, -1), keepdims=True)
    d = x - m
    s = d.std(axis=(-2, -1), keepdims=True)
    scale = np.abs(x).max(axis=(-2, -1), keepdims=True)
    flat = s <= 1e-7 * scale + np.finfo(np.float64).tiny
    return np.where(flat, 0.0, d / np.where(flat, 1.0, s)).astype(np.float32)


def _area_resize(z: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    if z.shape == (size, size):
        return z
    h, w = z.shape
    if h % size == 0 and w % size == 0:  # exact block means (the common 128 -> 64/32 case)
        return z.reshape(size, h // size, size, w // size).mean(axis=(1, 3))
    return resize(z, (size, size), anti_aliasing=True, preserve_range=True, mode="reflect")


def prepare(images, size: int = 64, flatten: bool = True) -> np.ndarray:
    """Turn images of any size into network inputs ``[N, 1, size, size]`` float32.

    Parameters
    ----------
    images : Micrograph, ndarray [H, W] or [N, H, W], or a list of 2-D arrays / Micrographs
        Raw or already flattened topographs (any units; only contrast matters).
    size : int
        Output side in pixels (32 and 64 are the presets; any size >= 8 works).
    flatten : bool
        X-flatten each scan line first (harmless on already flattened images).

    Returns
    -------
    ndarray [N, 1, size, size] float32, standardised per image.
    """
    if int(size) < 8:
        raise InputError(f"classifier input size must be >= 8 pixels, got {size}")
    stack = _as_stack(images)
    out = np.empty((len(stack), 1, size, size), np.float32)
    for i, z in enumerate(stack):
        z = np.asarray(z, dtype=np.float64)
        if min(z.shape) < 2:
            raise InputError(f"image {i} is too small ({z.shape}) to classify")
        if not np.isfinite(z).any():
            raise InputError(f"image {i} has no finite pixel")
        z = flatten_x(z) if flatten else np.nan_to_num(z, nan=float(np.nanmean(z)))
        out[i, 0] = _area_resize(z, int(size))
    return standardise(out)


# ----------------------------------------------------------------------------- augmentation


def random_dihedral(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent random dihedral transform to every image of ``x`` [B, C, H, W] (square)."""
    ks = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for k in range(8):
        sel = ks == k
        if sel.any():
            out[sel] = dihedral(x[sel], k)
    return out


def line_artefacts(x: torch.Tensor, p: float = 0.5, offset_std: float = 0.3, noise_std: float = 0.15,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add scan-line artefacts to a fraction ``p`` of a standardised batch ``[B, C, H, W]``.

    Each chosen image gets per-row offsets (a random walk plus occasional jumps, in units of the
    image's standard deviation, scaled by a random factor in [0, ``offset_std``]) and per-row white
    noise of random amplitude up to ``noise_std``; the image is re-standardised afterwards.
    """
    b, c, h, w = x.shape
    chosen = (torch.rand(b, generator=generator) < p).float().view(b, 1, 1, 1)
    amp = torch.rand(b, 1, 1, 1, generator=generator) * offset_std
    walk = torch.randn(b, 1, h, 1, generator=generator).cumsum(2) / np.sqrt(h)
    jumps = torch.randn(b, 1, h, 1, generator=generator) * (torch.rand(b, 1, h, 1, generator=generator) < 0.05)
    offs = amp * (walk + jumps)
    namp = torch.rand(b, 1, 1, 1, generator=generator) * noise_std
    lnoise = namp * torch.randn(b, 1, h, w, generator=generator) * torch.rand(b, 1, h, 1, generator=generator)
    y = x + chosen * (offs + lnoise)
    m = y.mean(dim=(2, 3), keepdim=True)
    s = y.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return (y - m) / s


def augment(x: torch.Tensor, line_p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scan-line artefacts (on rows) followed by a random dihedral transform, per image."""
    if line_p > 0:
        x = line_artefacts(x, p=line_p, generator=generator)
    return random_dihedral(x, generator=generator)
