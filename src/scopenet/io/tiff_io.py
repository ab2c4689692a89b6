"""TIFF: read any greyscale TIFF with its calibration; write float32 TIFF that keeps everything.

Reading (:func:`read_tiff`), in order of precedence:

1. a TIFF written by scopenet: the JSON state in the ImageJ description (key ``scopenet``) or in a
   plain ImageDescription restores axes, signal, unit, scan direction, modality, metadata and
   provenance exactly (see :mod:`scopenet.io._state`);
2. otherwise the file is read with RosettaSciIO's TIFF reader, which understands FEI/Thermo,
   Zeiss, TVIPS, Olympus, JEOL and Hamamatsu calibrations and DM-exported tags;
3. ImageJ calibration is then taken from the file itself (``XResolution``/``YResolution`` in
   pixels per unit, the ``unit``, ``spacing`` and ``xorigin``/``yorigin`` of the description),
   because rsciio 0.15 keeps the unit only when it is ``micron``. ImageJ's ``micron`` becomes
   ``"µm"``; any other unit is kept as written.

``metadata`` is rsciio's ``original_metadata`` (the TIFF tags, plus the instrument's own metadata).
Before any library decodes it, the page (IFD) chain is walked with plain reads
(:func:`check_structure`): a chain that loops, IFDs or tag tables outside the file and implausible
tag/page counts raise ReadError at once (tifffile and rsciio could loop forever on such files). A
TIFF whose strips/tiles point beyond the end of the file raises ReadError ("truncated").

Writing (:func:`write_tiff`): float32, ImageJ hyperstack layout (``YX`` or ``ZYX``), resolution tags
= 1 / pixel size with the unit in the ImageJ description (so ImageJ/Fiji show the calibration), and
the full Micrograph state as one-line JSON under ``scopenet=`` in the same description.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Axis, Micrograph
from ._state import parse_state, state_to_json
from .registry import Format, register_format

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: ImageJ unit spellings -> ours (ImageJ writes micrometres as "micron").
_IJ_UNITS_IN = {"micron": "µm", "microns": "µm", "\\u00B5m": "µm", "\\u00b5m": "µm", "um": "µm",
                "pixel": "px", "pixels": "px", "": "px", "\\u00C5": "Å", "\\u00c5": "Å"}
_IJ_UNITS_OUT = {"µm": "micron", "μm": "micron", "um": "micron", "Å": "\\u00C5"}


def is_tiff(head: bytes) -> bool:
    """Classic or BigTIFF, either byte order."""
    return head[:4] in _TIFF_MAGIC


# ---------------------------------------------------------------------------------- reading
#: (tag-count format, count size, entry size, offset format, offset size) of classic and BigTIFF.
_LAYOUT = {42: ("H", 2, 12, "I", 4), 43: ("Q", 8, 20, "Q", 8)}
#: at most this many tags per IFD (tifffile refuses more than 4096 too).
MAX_TAGS = 4096
#: at most this many IFDs (pages) are walked; a longer chain is refused as implausible.
MAX_IFDS = 1 << 20


def check_structure(path: Path) -> int:
    """Walk the IFD chain with plain reads before any TIFF library decodes it; return the page count.

    Refuses, with a :class:`ReadError` naming the file, what makes readers hang or allocate
    wildly: a chain that loops back on itself (e.g. a flipped byte in a next-IFD offset), an IFD
    offset or tag table outside the file, more than :data:`MAX_TAGS` tags in an IFD or more than
    :data:`MAX_IFDS` pages. Each step reads a few bytes, so this takes milliseconds even on damaged
    files.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise ReadError(path, "not a TIFF file (no II/MM byte-order mark)")
        bo = "<" if head[:2] == b"II" else ">"
        version = struct.unpack(bo + "H", head[2:4])[0]
        if version not in _LAYOUT:
            raise ReadError(path, f"not a TIFF file (version field {version}, expected 42 or 43)")
        cnt_fmt, cnt_size, entry_size, off_fmt, off_size = _LAYOUT[version]
        if version == 43:
            if len(head) < 16:
                raise ReadError(path, "truncated BigTIFF header")
            offset = struct.unpack(bo + "Q", head[8:16])[0]
        else:
            offset = struct.unpack(bo + "I", head[4:8])[0]
        seen: set[int] = set()
        while offset:
            if len(seen) >= MAX_IFDS:
                raise ReadError(path, f"corrupt TIFF: more than {MAX_IFDS} pages (IFDs) chained")
            if offset in seen:
                raise ReadError(path, f"corrupt TIFF: the next-page offset of page (IFD) {len(seen) - 1} "
                                      f"points back to byte {offset}, so the page chain loops forever")
            if offset < 8 or offset + cnt_size > size:
                raise ReadError(path, f"corrupt or truncated TIFF: page (IFD) {len(seen)} is at byte {offset}, "
                                      f"outside the file ({size} bytes)")
            seen.add(offset)
            fh.seek(offset)
            n = struct.unpack(bo + cnt_fmt, fh.read(cnt_size))[0]
            end = offset + cnt_size + n * entry_size + off_size
            if n > MAX_TAGS:
                raise ReadError(path, f"corrupt TIFF: page (IFD) {len(seen) - 1} at byte {offset} declares "
                                      f"{n} tags")
            if end > size:
                raise ReadError(path, f"corrupt or truncated TIFF: page (IFD) {len(seen) - 1} at byte {offset} "
                                      f"declares {n} tags, which run past the end of the file ({size} bytes)")
            fh.seek(offset + cnt_size + n * entry_size)
            offset = struct.unpack(bo + off_fmt, fh.read(off_size))[0]
    if not seen:
        raise ReadError(path, "the TIFF file holds no image (no pages)")
    return len(seen)


def _check_complete(path: Path, tf) -> None:
    """Raise ReadError when a page's data run past the end of the file."""
    size = path.stat().st_size
    for i, page in enumerate(tf.pages):
        if i > 4096:
            break
        offs = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        for o, c in zip(offs, counts):
            if o + c > size:
                raise ReadError(path, f"truncated TIFF: page {i} needs bytes up to {o + c}, the file "
                                      f"holds {size}")


def _ij_unit(u) -> str:
    u = str(u).strip() if u is not None else ""
    return _IJ_UNITS_IN.get(u, _IJ_UNITS_IN.get(u.lower(), u))


def _imagej_axes(tf, img: Micrograph) -> list[Axis] | None:
    """Calibrated axes from an ImageJ description + resolution tags, or None when uncalibrated."""
    ij = tf.imagej_metadata or {}
    unit = _ij_unit(ij.get("unit"))
    if unit == "px":
        return None
    tags = tf.pages[0].tags

    def step(tag: str) -> float | None:
        t = tags.get(tag)
        if t is None:
            return None
        num, den = t.value
        return den / num if num > 0 and den > 0 else None

    sx, sy = step("XResolution"), step("YResolution")
    if sx is None:
        return None
    sy = sy if sy is not None else sx
    ox = -float(ij.get("xorigin", 0.0)) * sx
    oy = -float(ij.get("yorigin", 0.0)) * sy
    axes = [Axis("y", img.shape[-2], sy, oy, unit), Axis("x", img.shape[-1], sx, ox, unit)]
    if img.is_stack:
        a0 = img.axes[0]
        spacing = ij.get("spacing")
        if spacing is not None and float(spacing) > 0:
            a0 = Axis("z", a0.size, float(spacing), 0.0, unit)
        else:
            a0 = Axis(a0.name if a0.name not in ("", "depth") else "frame", a0.size)
        axes.insert(0, a0)
    return axes


def _lazy_series(path: Path, tf):
    """Series 0 of an open TIFF as a dask array: a memory map when its pixels are contiguous and
    uncompressed, else tifffile's zarr store (one dask chunk per tile/strip group)."""
    import tifffile

    from ._lazyimage import lazy_array

    series = tf.series[0]
    if series.dataoffset is not None:
        return lazy_array(tifffile.memmap(path, series=0, mode="r"))
    import zarr

    return lazy_array(zarr.open(store=tifffile.imread(path, aszarr=True, series=0), mode="r"))


def read_tiff(path: Path, lazy: bool = False, **kwargs) -> list[Micrograph]:
    """Read a TIFF (greyscale 2-D image or stack; RGB -> one channel) with its calibration.

    With ``lazy`` the pixels of the first series stay in the file (see :func:`_lazy_series`); the
    calibration is read as usual.

    Returns
    -------
    list of Micrograph
        One per image series of the file.
    """
    import tifffile

    path = Path(path)
    check_structure(path)
    with tifffile.TiffFile(path) as tf:
        if not tf.pages:
            raise ReadError(path, "the TIFF file holds no image (no pages)")
        _check_complete(path, tf)
        state = None
        if tf.is_imagej and tf.imagej_metadata:
            state = parse_state(tf.imagej_metadata.get("scopenet"))
        if state is None:
            state = parse_state(tf.pages[0].description)
        if state is not None:
            from ._state import micrograph_from_state

            if lazy:
                data = _lazy_series(path, tf)
            else:
                data = tf.series[0].asarray()
            return [micrograph_from_state(path, data, state, "TIFF")]
    return _read_foreign_tiff(path, lazy)


def _read_foreign_tiff(path: Path, lazy: bool = False) -> list[Micrograph]:
    import tifffile
    from rsciio.tiff import file_reader

    from .em import signals_to_micrographs

    images = signals_to_micrographs(path, file_reader(str(path), lazy=lazy), "TIFF")
    if lazy and len(images) == 1:  # rsciio's dask array is one chunk: read the pixels chunk-wise instead
        with tifffile.TiffFile(path) as tf:
            data = _lazy_series(path, tf)
        if tuple(data.shape) == tuple(images[0].shape) and data.dtype.kind in "iufb":
            images[0].data = data.astype(np.float32)
    with tifffile.TiffFile(path) as tf:
        if tf.is_imagej and len(images) == 1:
            axes = _imagej_axes(tf, images[0])
            if axes is not None:
                images[0].axes = axes
    for img in images:  # rsciio names tiff axes height/width/depth; 'depth' of a plain stack -> frame
        if img.is_stack and img.axes[0].name == "depth" and not img.axes[0].calibrated:
            img.axes = [Axis("frame", img.axes[0].size)] + img.axes[1:]
    return images


# ---------------------------------------------------------------------------------- writing
def _ij_unit_out(unit: str) -> str:
    u = _IJ_UNITS_OUT.get(unit, unit)
    return u if u.isascii() else u.encode("ascii", "backslashreplace").decode("ascii")


def _rational(v: float) -> tuple[int, int] | None:
    """``v`` as a TIFF RATIONAL (two uint32), about 1e-6 relative precision; None if impossible."""
    if not (math.isfinite(v) and v > 0):
        return None
    u32 = 2**32 - 1
    den = int(min(1_000_000, u32 // max(v, 1.0))) if v >= 1 else int(min(u32, 1_000_000 / v))
    num = round(v * den) if den >= 1 else 0
    return (num, den) if 1 <= num <= u32 else None


def _imagej_calibration(scale: float, unit: str) -> tuple[float, str]:
    """Pixel size and unit for ImageJ: SI metres become nm/micron/mm (ImageJ's usual units)."""
    if unit != "m":
        return scale, _ij_unit_out(unit)
    for limit, factor, name in ((1e-6, 1e9, "nm"), (1e-3, 1e6, "micron"), (1.0, 1e3, "mm")):
        if abs(scale) < limit:
            return scale * factor, name
    return scale, "m"


def write_tiff(img: Micrograph, path: Path, **kwargs) -> None:
    """Write ``img`` as a float32 ImageJ TIFF with resolution tags and the full state as JSON.

    The ImageJ calibration (resolution tags = pixels per unit, ``unit``, ``spacing``,
    ``xorigin``/``yorigin``) is what ImageJ/Fiji show; pixel sizes in metres are written in nm,
    micron or mm. The exact axes are in the JSON state.

    Parameters
    ----------
    img : Micrograph
        2-D image or 3-D stack.
    path : Path
        Output file (the registry passes a temporary name, renamed when complete).
    compression : str, optional
        tifffile compression (e.g. ``"zlib"``); default none, which every reader understands.
    """
    import tifffile

    data = np.ascontiguousarray(img.data, dtype=np.float32)
    ij: dict = {"axes": "ZYX" if img.is_stack else "YX"}
    ay, ax = img.axes[-2], img.axes[-1]
    resolution = None
    if ax.calibrated and ax.scale > 0 and math.isfinite(ax.scale):
        sy_raw = ay.scale if (ay.calibrated and ay.unit == ax.unit and ay.scale > 0) else ax.scale
        sx, unit = _imagej_calibration(ax.scale, ax.unit)
        sy = sy_raw * (sx / ax.scale)
        rx, ry = _rational(1.0 / sx), _rational(1.0 / sy)
        if rx is not None and ry is not None:
            resolution = (rx, ry)
            ij["unit"] = unit
            if ax.offset:
                ij["xorigin"] = -ax.offset / ax.scale
            if ay.offset and ay.unit == ax.unit:
                ij["yorigin"] = -ay.offset / sy_raw
            a0 = img.axes[0]
            if img.is_stack and a0.unit == ax.unit and a0.scale > 0:
                ij["spacing"] = a0.scale * (sx / ax.scale)
    ij["scopenet"] = state_to_json(img)
    extra = {}
    if kwargs.get("compression"):
        extra["compression"] = kwargs["compression"]
    tifffile.imwrite(path, data, imagej=True, resolution=resolution, metadata=ij, **extra)


register_format(Format("TIFF", (".tif", ".tiff"), reader=read_tiff, writer=write_tiff, magic=is_tiff, lazy=True,
                       description="TIFF (tifffile + rsciio calibration; float32 ImageJ writer)",
                       kwargs_doc={"compression": "tifffile compression for writing, e.g. 'zlib'"}))
