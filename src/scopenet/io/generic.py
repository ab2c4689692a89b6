"""Plain arrays and pictures: ``.npy`` (read/write) and ``.png`` (read; write = a preview).

``.npy``
    Read with ``numpy.load(allow_pickle=False)``: 2-D images or 3-D stacks of real numbers,
    uncalibrated unless a sidecar ``<name>.json`` written by scopenet (``scan.npy`` ->
    ``scan.npy.json``) lies beside it; then the full Micrograph state comes back. Writing stores
    float32 data and that sidecar.
``.png`` reading
    Greyscale (8/16 bit) as is; palette images through their palette; an RGB(A) picture whose
    three channels are identical becomes that one channel; a true-colour picture becomes its
    luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B), noted in ``metadata["scopenet_note"]``.
    Alpha is dropped. PNGs are uncalibrated.
``.png`` writing
    A preview for people, not data: a colour map (``gray``; ``afmhot`` for scanning-probe
    signals), robust contrast (0.5-99.5 percentiles of the finite values), a scale bar when the
    image is calibrated ("uncalibrated" written otherwise) and, for scanning-probe images and values
    with a physical unit, a colour bar in pm/nm (heights), pA/nA (currents) ... A stack previews its
    first frame.
    :func:`save_preview` is the same with the overwrite protection of :func:`scopenet.write`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, ReadError
from ..image.micrograph import Micrograph, as_micrograph, provenance_entry
from ._state import micrograph_from_state, parse_state, state_to_json
from .registry import Format, register_format

NPY_MAGIC = b"\x93NUMPY"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: modalities / signals previewed with the 'afmhot' colour map.
SPM_MODALITIES = {"STM", "AFM", "SPM", "KPFM", "MFM", "PFM", "NC-AFM"}
_LUMA = np.array([0.299, 0.587, 0.114])
#: name of the temporary file that scopenet.io.registry.write / _fileutil.atomic_output hands writers.


def is_npy(head: bytes) -> bool:
    return head.startswith(NPY_MAGIC)


def is_png(head: bytes) -> bool:
    return head.startswith(PNG_MAGIC)


def rgb_to_gray(rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """One channel from an ``(..., 3)`` colour array.

    Returns
    -------
    gray : ndarray, shape ``rgb.shape[:-1]``
        The common channel when R == G == B everywhere, else the BT.601 luminance (float64).
    how : str
        ``"identical channels"`` or a note saying that luminance was taken.
    """
    rgb = np.asarray(rgb)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(r, g) and np.array_equal(r, b):
        return r, "identical channels"
    lum = rgb[..., :3].astype(np.float64) @ _LUMA
    return lum, "true-colour image converted to luminance 0.299 R + 0.587 G + 0.114 B"


# ---------------------------------------------------------------------------------- npy
def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of an ``.npy`` file: ``scan.npy`` -> ``scan.npy.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_npy(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """A 2-D or 3-D numeric ``.npy`` array (with its scopenet sidecar when present).

    With ``lazy`` the array is memory-mapped and wrapped in a dask array (nothing is read until computed).
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r" if lazy else None)
    except ValueError as exc:  # object arrays, bad header
        raise ReadError(path, f"not a plain numeric .npy array ({exc})") from exc
    if not isinstance(data, np.ndarray) or data.dtype.names or data.dtype == object \
            or not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ReadError(path, f"the .npy array has dtype {getattr(data, 'dtype', '?')}, not numbers")
    if np.iscomplexobj(data):
        raise ReadError(path, "the .npy array is complex; save np.abs() or np.angle() of it")
    if data.ndim not in (2, 3) or data.size == 0:
        raise ReadError(path, f"the .npy array has shape {data.shape}; scopenet reads 2-D images "
                              f"(y, x) and 3-D stacks (n, y, x)")
    if lazy:
        from ._lazyimage import lazy_array

        data = lazy_array(data)
    side = sidecar_path(path)
    if side.is_file():
        try:
            state = parse_state(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            state = None
        if state is None:
            raise ReadError(side, "the sidecar of the .npy file is not a scopenet description")
        return [micrograph_from_state(path, data, state, "NPY")]
    from ._lazyimage import make_micrograph

    return [make_micrograph(data, signal="intensity", source=path,
                            provenance=[provenance_entry("read", format="NPY", path=str(path))])]


def write_npy(img: Micrograph, path: Path, **kwargs) -> list[Path]:
    """float32 ``.npy`` plus the ``<name>.json`` sidecar holding calibration, metadata, provenance.

    Both go to ``path`` (a temporary name when called by :func:`scopenet.io.write`) and
    ``sidecar_path(path)``; the sidecar is returned as a companion that ``write`` renames beside
    the final file once that is in place.
    """
    path = Path(path)
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(img.data, dtype=np.float32), allow_pickle=False)
    side = sidecar_path(path)
    try:
        side.write_text(state_to_json(img), encoding="ascii")
    except BaseException:
        side.unlink(missing_ok=True)
        raise
    return [side]


# ---------------------------------------------------------------------------------- png read
def read_png(path: Path, **kwargs) -> list[Micrograph]:
    """A PNG picture as one greyscale image (see the module notes for colour handling)."""
    from PIL import Image

    path = Path(path)
    note = None
    with Image.open(path) as im:
        im.load()
        info = {k: v for k, v in im.info.items() if isinstance(v, (str, int, float, tuple))}
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("LA", "La", "PA"):
            im = im.convert("L")
        elif mode in ("1", "CMYK", "YCbCr", "HSV", "LAB"):
            im = im.convert("L" if mode == "1" else "RGB")
        arr = np.asarray(im)
    if arr.ndim == 3:
        gray, how = rgb_to_gray(arr[..., :3])
        arr = gray
        if how != "identical channels":
            note = how
    meta = {"png_mode": mode, **info}
    if note:
        meta["scopenet_note"] = note
    prov = provenance_entry("read", format="PNG", path=str(path), **({"note": note} if note else {}))
    return [Micrograph(arr, signal="intensity", metadata=meta, source=path, provenance=[prov])]


# ---------------------------------------------------------------------------------- png preview
def default_cmap(img: Micrograph) -> str:
    """``"afmhot"`` for scanning-probe images (SPM modality or a scan direction), else ``"gray"``."""
    if (img.modality or "").upper() in SPM_MODALITIES or img.scan_direction is not None:
        return "afmhot"
    return "gray"


def robust_limits(data: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    """Display limits: the ``lo``/``hi`` percentiles of the finite values (min/max if degenerate)."""
    vals = np.asarray(data)[np.isfinite(data)]
    if vals.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(vals, [lo, hi])
    if not vmax > vmin:
        vmin, vmax = float(vals.min()), float(vals.max())
    if not vmax > vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    return float(vmin), float(vmax)


def preview_figure(img: Micrograph, *, cmap: str | None = None, colorbar: bool | None = None,
                   scale_bar: bool = True, robust: bool = True, size: int | None = None, dpi: int = 100):
    """The matplotlib figure of a preview (see :func:`render_preview`); the caller closes it.

    The image fills the left part of the figure exactly (``size`` pixels on its longer side at
    ``dpi``); a colour bar, when drawn, lies to its right.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    from ..report import add_colorbar, add_scale_bar, display_data, wants_colorbar

    img = as_micrograph(img)
    frame = img[0] if img.is_stack else img
    cmap = cmap or default_cmap(img)
    if cmap not in colormaps:
        raise InputError(f"unknown colour map {cmap!r}; try 'gray', 'afmhot', 'viridis', 'inferno'")
    if colorbar is None:
        colorbar = wants_colorbar(img)
    data, vmin, vmax, unit, _ = display_data(frame, robust)
    h, w = data.shape
    aspect = 1.0
    ay, ax_ = frame.axes
    if ay.calibrated and ay.unit == ax_.unit and ax_.scale > 0 and ay.scale > 0:
        aspect = ay.scale / ax_.scale
    ph, pw = h * aspect, float(w)
    long_side = size or int(min(max(max(ph, pw), 256), 2048))
    f = long_side / max(ph, pw)
    fig_w, fig_h = pw * f / dpi, ph * f / dpi
    # room for the colour bar, its tick labels and its label (all sized to the image's shorter side)
    cb_frac = 0.38 * min(ph, pw) / pw if colorbar else 0.0
    fig = plt.figure(figsize=(fig_w * (1 + cb_frac), fig_h), dpi=dpi)
    try:
        ax = fig.add_axes((0, 0, 1 / (1 + cb_frac), 1))
        ax.set_axis_off()
        im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=vmin, vmax=vmax,
                       interpolation="nearest" if max(h, w) < long_side else "antialiased",
                       aspect=aspect)
        if scale_bar:
            add_scale_bar(ax, frame)
        if colorbar:
            add_colorbar(ax, im, img, unit)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def render_preview(img: Micrograph, path: Path, *, cmap: str | None = None, colorbar: bool | None = None,
                   scale_bar: bool = True, robust: bool = True, size: int | None = None,
                   dpi: int = 100) -> None:
    """Draw ``img`` (first frame of a stack) to a PNG at ``path`` (no overwrite check).

    Parameters
    ----------
    cmap : str, optional
        Matplotlib colour map; default :func:`default_cmap`.
    colorbar : bool, optional
        Add a colour (height) bar labelled with the signal and its unit in a readable prefix
        (heights in pm or nm, currents in pA or nA; :func:`scopenet.image.units.display_unit`).
        Default: for scanning-probe images and images whose values have a physical unit (m, A,
        V, Hz ...).
    scale_bar : bool
        Draw a scale bar (white with a black outline, text sized to the image) when the x axis is
        calibrated, else the word "uncalibrated".
    robust : bool
        Clip the contrast to the 0.5-99.5 percentiles (else min-max).
    size : int, optional
        Length in pixels of the longer image side in the PNG; default the image's own, at
        least 256 and at most 2048.
    """
    fig = preview_figure(img, cmap=cmap, colorbar=colorbar, scale_bar=scale_bar, robust=robust, size=size,
                         dpi=dpi)
    import matplotlib.pyplot as plt

    try:
        with open(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def write_png(img: Micrograph, path: Path, **kwargs) -> None:
    """Registry writer for ``.png``: a preview (see :func:`render_preview` for the options)."""
    render_preview(img, path, **kwargs)


def save_preview(img, path: str | os.PathLike, cmap: str | None = None, overwrite: bool = False,
                 **kwargs) -> Path:
    """Write a PNG preview of ``img`` (Micrograph or array) with colour map and scale bar.

    The PNG is written under a temporary name and renamed when complete; an existing ``path`` is
    only replaced with ``overwrite=True`` (else :class:`~scopenet.errors.WriteError`). An image
    without any finite value (all NaN/inf) is refused with a WriteError too.

    Examples
    --------
    >>> save_preview(sn.read("scan.sxm"), "scan.png")       # doctest: +SKIP
    """
    from .._fileutil import atomic_output

    from .registry import check_has_data

    path = Path(path)
    img = as_micrograph(img)
    check_has_data(img, path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        render_preview(img, tmp, cmap=cmap, **kwargs)
    return path


register_format(Format("NPY", (".npy",), reader=read_npy, writer=write_npy, magic=is_npy, lazy=True,
                       description="NumPy .npy array (+ scopenet JSON sidecar)"))
register_format(Format("PNG", (".png",), reader=read_png, writer=write_png, magic=is_png,
                       description="PNG picture (read greyscale; write a preview with scale bar)",
                       kwargs_doc={"cmap": "colour map", "colorbar": "add a colour bar",
                                   "scale_bar": "draw a scale bar", "robust": "percentile contrast",
                                   "size": "longer side in pixels"}))
