"""Turn an uploaded microscope file into the PNG annotators see, with SPM-appropriate contrast.

Each scan line is flattened (X flatten: a straight line fitted per line, as capture software does in
real time), then the grey scale is stretched between robust percentiles so that a few outliers
(adsorbates, tip crashes) do not swallow the contrast. The field of view of a calibrated image is
written into the PNG (text chunk :data:`FOV_KEY`) for the classify page.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputError, ReadError


def _flatten_lines(z: np.ndarray) -> np.ndarray:
    try:
        from ..image.spm import flatten_lines
    except ImportError:  # pragma: no cover - the colleague's module is absent
        flatten_lines = None
    if flatten_lines is not None:
        try:
            return np.asarray(flatten_lines(z, method="linear"), dtype=np.float64)
        except Exception:  # pragma: no cover - fall back rather than refuse the upload
            pass
    return z - np.nanmedian(z, axis=1, keepdims=True)


def spm_contrast(z: np.ndarray, low: float = 1.0, high: float = 99.0, flatten: bool = True) -> np.ndarray:
    """Grey values in [0, 255] of a 2-D image for display.

    Parameters
    ----------
    z : ndarray, shape (y, x)
        Image values (any unit); NaN marks pixels never scanned.
    low, high : float
        Percentiles mapped to black and white.
    flatten : bool
        Subtract a straight line from every scan line first (rows are scan lines).

    Returns
    -------
    ndarray of uint8, shape (y, x)
        NaN pixels are black.

    Raises
    ------
    InputError
        If the image is not 2-D or holds no finite value.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"expected a 2-D image, got shape {z.shape}")
    finite = np.isfinite(z)
    if not finite.any():
        raise InputError("the image holds no finite values")
    if flatten:
        rows = finite.any(axis=1)
        z = z.copy()
        z[rows] = _flatten_lines(z[rows])
        finite = np.isfinite(z)
    lo, hi = np.percentile(z[finite], [low, high])
    if not hi > lo:
        lo, hi = float(np.min(z[finite])), float(np.max(z[finite]))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip((np.where(finite, z, lo) - lo) * scale, 0, 255)
    return np.round(out).astype(np.uint8)


#: PNG text key holding the field of view of the rendered image (e.g. "10 nm x 10 nm")
FOV_KEY = "scopenet:field_of_view"


def png_bytes(grey: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Encode a uint8 (y, x) array as PNG, with ``text`` as PNG text chunks."""
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    info = None
    if text:
        info = PngInfo()
        for k, v in text.items():
            info.add_itxt(k, str(v))
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(grey), mode="L").save(buf, format="PNG", optimize=False,
                                                                   pnginfo=info)
    return buf.getvalue()


def field_of_view(img) -> str | None:
    """Field of view of a Micrograph for annotators (``'10 nm x 10 nm'``), None when uncalibrated."""
    from ..image.units import field_of_view_text

    if not img.axes[-1].calibrated:
        return None
    return field_of_view_text(img)


def png_field_of_view(path: str | Path) -> str | None:
    """The field of view written into a PNG rendered by :func:`render_file` (None if absent)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            value = im.text.get(FOV_KEY) if hasattr(im, "text") else None
    except Exception:  # a missing or unreadable PNG: the page still shows, without the size
        return None
    return str(value)[:80] if value else None


#: pictures no :mod:`scopenet.io` reader takes (.npy, .png and .tif go through scopenet.read)
_PICTURES = {".jpg", ".jpeg", ".bmp"}


def _read_picture(path: Path) -> np.ndarray:
    """A JPEG or BMP picture as float32 luminance (y, x)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return np.asarray(im.convert("F"))
    except Exception as exc:
        raise ReadError(path, f"not a valid {path.suffix} picture or corrupt/truncated "
                              f"({type(exc).__name__}: {exc})") from exc


def render_file(path: str | Path) -> tuple[bytes, int, int]:
    """Read a microscope file with :func:`scopenet.read` and render its first image to PNG.

    JPEG and BMP pictures, for which :mod:`scopenet.io` has no reader, are opened with Pillow.

    Returns
    -------
    png : bytes
    width, height : int
        Size of the rendered image in pixels.

    Raises
    ------
    ReadError
        If the file cannot be read or holds no displayable image (the message names the file).
    """
    from ..io import read

    path = Path(path)
    fov = None
    try:
        img = read(path)
        data, modality, fov = np.asarray(img.data), img.modality, field_of_view(img)
    except ReadError as exc:
        if "unsupported format" not in exc.reason or path.suffix.lower() not in _PICTURES:
            raise
        data, modality = _read_picture(path), None
    if data.ndim == 3:  # a stack: show the first frame
        data = data[0]
    if data.ndim != 2:
        raise ReadError(path, f"holds no 2-D image (data shape {data.shape})")
    # Scans (and images of unknown origin) are X-flattened; electron micrographs are not.
    flatten = (modality or "").upper() not in {"TEM", "STEM", "SEM", "EM"}
    try:
        grey = spm_contrast(data, flatten=flatten)
    except InputError as exc:
        raise ReadError(path, str(exc)) from exc
    return png_bytes(grey, {FOV_KEY: fov} if fov else None), int(grey.shape[1]), int(grey.shape[0])
