"""Omicron MATRIX image files (``*.Z_mtrx``, ``*.I_mtrx``, ...) with their ``*_0001.mtrx`` index.

Read with access2theMatrix. A data file ``<prefix>--<session>_<cycle>.<channel>_mtrx`` is only
interpretable together with its parameter/index file ``<prefix>_0001.mtrx`` (same folder), which
holds the dimensions, calibration and channel definitions. access2theMatrix reports a missing or
broken index only through its message string (it does not raise); this reader turns every message
other than "Successfully opened ..." into :class:`~scopenet.errors.ReadError`.

Traces: up to four, ``forward/up``, ``backward/up``, ``forward/down``, ``backward/down`` (those
recorded, per ``XYScanner.X_Retrace`` / ``Y_Retrace``). Values are in SI units (metres for Z,
amperes for I).

Orientation (see :mod:`scopenet.io._spm_common`)
------------------------------------------------
access2theMatrix returns every trace bottom-row-first (row 0 = first line of the up scan) with
backward traces already mirrored to line up with forward ones. This reader flips all traces upside
down, so row 0 is the top of the frame, x to the right, as for every scopenet SPM reader: the
returned ``img.data`` equals ``np.flipud(MtrxData.scan[i])``.

Scans stopped early
-------------------
Every image has the full configured ``Lines x Points`` shape; lines that were never scanned are
NaN (an up scan stopped early has NaN top rows; a down scan stopped early has NaN bottom rows).
If the scan stopped during the up pass there are no down traces. :func:`crop_unscanned` removes
the all-NaN rows.

Pixel size = ``XYScanner.Width / Points`` and ``Height / Lines`` (metres); a rotated frame
(``XYScanner.Angle``) is returned in the scan frame, the angle is in ``metadata``.

The index is a log of the whole session; the parameters of a data file are those in force at the
index entry that names it. An index without that entry (cut short, or of another session), one
without the scanner parameters, or one whose raster is smaller than the data file's is a
:class:`~scopenet.errors.ReadError`: its calibration would belong to another image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Micrograph
from ..image.spm import crop_unscanned  # noqa: F401  (public re-export)
from .registry import Format, register_format
from ._spm_common import MAX_PIXELS, make_image, spm_axes

MAGIC = b"ONTMATRX0101"


def index_path(path: str | Path) -> Path:
    """The ``<prefix>_0001.mtrx`` index file that belongs to a MATRIX data file."""
    path = Path(path)
    name = path.name
    if "--" not in name:
        raise ReadError(path, "not a MATRIX data file name (expected '<prefix>--<session>_<cycle>."
                              "<channel>_mtrx')")
    return path.with_name(name[:name.rindex("--")] + "_0001.mtrx")


#: blocks whose length field counts the whole block (the others have an 8-byte time stamp more).
_UNTIMED = {b"REFX", b"NACS", b"TCID", b"SCHC", b"TSNI", b"SXNC", b"LNEG"}


def _index_problem(raw: bytes, data_name: str) -> str:
    """Why an index does not describe ``data_name``: truncated (cut inside a block) or no entry."""
    import struct

    dp, n = len(MAGIC), len(raw)
    while dp < n:
        if dp + 8 > n:
            return (f"it is truncated: it ends at byte {n}, inside the header of a block at byte {dp}, "
                    f"before the entry for this data file")
        ident = raw[dp:dp + 4]
        length = struct.unpack("<L", raw[dp + 4:dp + 8])[0] + (0 if ident in _UNTIMED else 8)
        if dp + 8 + length > n:
            return (f"it is truncated: the block at byte {dp} needs {8 + length} bytes, the file ends at "
                    f"byte {n}, before the entry for this data file")
        dp += 8 + length
    return ("it holds no entry for this data file (an incomplete index, or the index of another "
            "session), so the scan size and calibration it gives would be those of another image")


def _check_index(path: Path, idx: Path, m) -> None:
    """Refuse an index that does not describe ``path``: the calibration would silently be wrong.

    access2theMatrix reads the index up to the entry (``BREF``) naming the data file and takes the
    parameters in force at that point; when the entry is missing (a truncated index, or one of
    another session) it reads to the end and returns whatever parameters the file ends with.
    """
    if str(m.param.get("BREF", "")) != path.name:
        raise ReadError(path, f"its MATRIX index file '{idx.name}' does not describe it: "
                              + _index_problem(getattr(m, "raw_param", b"") or b"", path.name))
    try:
        points = int(m.param["EEPA::XYScanner.Points"][0])
        lines = int(m.param["EEPA::XYScanner.Lines"][0])
        width = float(m.param["EEPA::XYScanner.Width"][0])
        height = float(m.param["EEPA::XYScanner.Height"][0])
        xm = bool(m.param["EEPA::XYScanner.X_Retrace"][0])
        ym = bool(m.param["EEPA::XYScanner.Y_Retrace"][0])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ReadError(path, f"its MATRIX index file '{idx.name}' lacks the scanner parameter {exc} "
                              "(truncated or corrupt index)") from exc
    if points <= 0 or lines <= 0 or not (np.isfinite(width) and np.isfinite(height)) \
            or width <= 0 or height <= 0:
        raise ReadError(path, f"its MATRIX index file '{idx.name}' declares an impossible scan: "
                              f"{points} x {lines} points over {width} x {height} m")
    planned = points * lines * (1 + xm) * (1 + ym)
    for what, count in (("holds", int(getattr(m, "data_item_count", 0) or 0)),
                        ("was recorded for", int(getattr(m, "bricklet_size", 0) or 0))):
        if count > planned:
            raise ReadError(path, f"the data file {what} {count} values, more than the {planned} of the "
                                  f"{points} x {lines} scan its index '{idx.name}' declares (the index "
                                  "does not match this data file)")


def _modality(param: dict) -> str | None:
    text = " ".join(str(v) for k, v in param.items() if str(k).startswith("DPXE")).upper()
    if "AFM" in text:
        return "AFM"
    if "STM" in text:
        return "STM"
    return None


def read_matrix(path: str | Path) -> list[Micrograph]:
    """Read every trace of an Omicron MATRIX image file.

    Parameters
    ----------
    path : str or Path
        The data file (``*.Z_mtrx`` ...); its ``*_0001.mtrx`` index must sit beside it.

    Returns
    -------
    list of Micrograph
        One per recorded trace, each ``(Lines, Points)`` float32, top row first; unscanned lines NaN.

    Raises
    ------
    ReadError
        Missing index file, corrupt data or index, no complete scan line, or a curve file.
    """
    from access2thematrix import MtrxData

    path = Path(path)
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise ReadError(path, "not an Omicron MATRIX file (no 'ONTMATRX0101' signature)")
    if path.suffix.lower() == ".mtrx":
        raise ReadError(path, "this is a MATRIX parameter/index file; read its data file "
                              "(e.g. '<prefix>--1_1.Z_mtrx') instead")
    idx = index_path(path)
    if not idx.is_file():
        raise ReadError(path, f"its MATRIX parameter/index file '{idx.name}' is not in the same folder; "
                              "the data cannot be interpreted without it")
    name = path.name.rsplit(".", 1)
    if len(name) != 2 or not name[1].endswith("_mtrx") or "(" in name[1]:
        raise ReadError(path, "only MATRIX image files (e.g. .Z_mtrx, .I_mtrx) are supported, "
                              "not spectroscopy curves")
    m = MtrxData()
    traces, message = m.open(str(path))
    if (getattr(m, "raw_param", b"") or b"").startswith(MAGIC):
        _check_index(path, idx, m)  # before the library's own verdict: it names the index problem
    if not str(message).startswith("Successfully") or m.scan is None or m.axis is None:
        raise ReadError(path, f"access2theMatrix could not read it: {message}")
    if m.object_type != "image":
        raise ReadError(path, f"it holds a MATRIX {m.object_type}, not an image")
    (_, width), (_, height), (_, _, lines, recorded), _ = m.axis
    lines, recorded = int(lines), int(recorded)
    points = int(m.scan.shape[2])
    if lines * points > MAX_PIXELS:
        raise ReadError(path, f"implausible image size {lines} x {points}")
    channel, unit = (str(s) for s in m.channel_name_and_unit)
    param = dict(m.param)
    meta = {"param": param, "sample_name": m.sample_name, "data_set_name": m.data_set_name,
            "creation_comment": m.creation_comment, "session": m.session, "cycle": m.cycle,
            "index_file": str(idx)}
    modality = _modality(param)
    axes = spm_axes(lines, points, float(height), float(width))
    images = []
    for i, trace in traces.items():
        trace = str(trace)
        full = np.full((lines, points), np.nan)
        data = np.asarray(m.scan[i], dtype=np.float64)
        if trace.endswith("/up"):
            n = min(recorded, lines)           # rows 0..n-1 (bottom first) were scanned
            full[:n] = data[:n]
        else:
            k = recorded - lines               # down lines recorded, from the top
            full[lines - k:] = data[lines - k:]
        images.append(make_image(np.flipud(full), axes=axes, signal=channel, signal_unit=unit,
                                 scan_direction=trace, modality=modality, metadata=dict(meta),
                                 path=path, fmt="omicron-matrix", index=str(idx)))
    return images


# crop_unscanned lives in scopenet.image.preprocess (re-exported here for convenience)


def _magic(head: bytes) -> bool:
    return head.startswith(MAGIC)


register_format(Format(name="omicron-matrix", extensions=(".z_mtrx", ".i_mtrx", ".df_mtrx", ".aux1_mtrx",
                                                          ".aux2_mtrx", ".phase_mtrx", ".amp_mtrx"),
                       reader=read_matrix, magic=_magic,
                       description="Omicron MATRIX image (needs its _0001.mtrx index beside it)"))
