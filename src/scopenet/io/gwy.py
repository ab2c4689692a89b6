"""Gwyddion ``.gwy`` files (GWYP serialisation, Gwyddion 2.x), read with gwyfile.

Every data field ``/0/data``, ``/1/data``, ... becomes one Micrograph, in channel-number order,
with its title (``/N/data/title``) as ``signal``, ``si_unit_z`` as ``signal_unit`` and pixel size
``xreal / xres`` and ``yreal / yres`` (unit from ``si_unit_xy``; lengths are converted to metres).

Orientation (see :mod:`scopenet.io._spm_common`): a Gwyddion data field is already stored top row
first with x to the right, exactly as Gwyddion shows it, so no flip is applied. Gwyddion keeps no
scan direction, so ``scan_direction`` is None (titles such as ``HeightRetrace`` keep theirs).

Robustness: before handing the bytes to gwyfile the serialised tree is walked once and every
declared length (object sizes, array counts, strings) is checked against the bytes actually
present, so a corrupt file raises :class:`~scopenet.errors.ReadError` instead of hanging or
allocating memory. The legacy Gwyddion 1.x serialisation (magic ``GWYO``) is refused with a
message saying so.

``metadata`` holds, untouched, the field's own attributes (``xreal``, ``xoff``, units...), the
container entries under ``/N/`` (title, palette, ``/N/meta`` instrument metadata...) and the
container's top-level entries such as ``/filename``.
"""
from __future__ import annotations

import contextlib
import io
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Micrograph, to_metres
from .registry import Format, register_format
from ._spm_common import MAX_PIXELS, make_image, spm_axes

MAGIC = b"GWYP"
LEGACY_MAGIC = b"GWYO"
_FIXED = {"b": 1, "c": 1, "i": 4, "q": 8, "d": 8}
_ARRAY = {"C": 1, "I": 4, "Q": 8, "D": 8}
_MAX_DEPTH = 64
_MAX_COMPONENTS = 200_000


class _Corrupt(Exception):
    pass


def validate_gwyp(buf: bytes) -> None:
    """Walk a GWYP byte string (after the magic) and check every declared length.

    Raises
    ------
    _Corrupt
        With a description of the first inconsistency found.
    """
    count = [0]

    def cstring(pos: int, end: int) -> int:
        nul = buf.find(b"\0", pos, end)
        if nul < 0:
            raise _Corrupt(f"unterminated name or string at byte {pos}")
        return nul + 1

    def obj(pos: int, end: int, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise _Corrupt("objects nested too deeply")
        pos = cstring(pos, end)
        if pos + 4 > end:
            raise _Corrupt(f"object size missing at byte {pos}")
        (size,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        stop = pos + size
        if stop > end:
            raise _Corrupt(f"object at byte {pos} declares {size} bytes, only {end - pos} remain")
        while pos < stop:
            pos = component(pos, stop, depth)
        return stop

    def component(pos: int, end: int, depth: int) -> int:
        count[0] += 1
        if count[0] > _MAX_COMPONENTS:
            raise _Corrupt("too many components")
        pos = cstring(pos, end)
        if pos >= end:
            raise _Corrupt(f"component type missing at byte {pos}")
        t = chr(buf[pos])
        pos += 1
        if t == "o":
            return obj(pos, end, depth + 1)
        if t == "s":
            return cstring(pos, end)
        if t in _FIXED:
            pos += _FIXED[t]
            if pos > end:
                raise _Corrupt("value runs past the end of its object")
            return pos
        if t in _ARRAY or t in "SO":
            if pos + 4 > end:
                raise _Corrupt("array length missing")
            (n,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if t in _ARRAY:
                pos += n * _ARRAY[t]
                if pos > end:
                    raise _Corrupt(f"array of {n} items runs past the end of its object")
                return pos
            if n > end - pos:
                raise _Corrupt(f"array of {n} items cannot fit in {end - pos} bytes")
            for _ in range(n):
                pos = cstring(pos, end) if t == "S" else obj(pos, end, depth + 1)
            return pos
        raise _Corrupt(f"unknown component type {t!r} at byte {pos - 1}")

    if obj(0, len(buf), 0) != len(buf):
        raise _Corrupt("trailing bytes after the top-level object")


def _unit(u) -> str:
    if u is None:
        return ""
    s = u.get("unitstr", "") if isinstance(u, dict) else str(u)
    return "" if s is None else str(s)


def _axis_range(real: float, unit: str) -> tuple[float, str]:
    if unit in ("", "m"):
        return real, unit
    m = to_metres(real, unit)
    return (m, "m") if m is not None else (real, unit)


def read_gwy(path: str | Path) -> list[Micrograph]:
    """Read every data field of a Gwyddion ``.gwy`` file.

    Returns
    -------
    list of Micrograph
        One per ``/N/data`` field (N ascending), shape ``(yres, xres)``, float32.

    Raises
    ------
    ReadError
        Legacy GWYO file, corrupt or truncated serialisation, or no data field.
    """
    from gwyfile.objects import GwyDataField, GwyObject

    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(LEGACY_MAGIC):
        raise ReadError(path, "it is in the old Gwyddion 1.x format (magic 'GWYO'), which is not "
                              "supported; open it in Gwyddion 2 and save it again as .gwy")
    if not raw.startswith(MAGIC):
        raise ReadError(path, "not a Gwyddion .gwy file (no 'GWYP' signature)")
    try:
        validate_gwyp(raw[4:])
    except _Corrupt as exc:
        raise ReadError(path, f"corrupt or truncated Gwyddion file: {exc}") from exc
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # gwyfile prints (not raises) some problems
            obj = GwyObject.frombuffer(raw[4:])
    except Exception as exc:
        raise ReadError(path, f"corrupt Gwyddion file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ReadError(path, "corrupt Gwyddion file: the top level is not a container")
    fields = sorted(int(m.group(1)) for k in obj if (m := re.fullmatch(r"/(\d+)/data", str(k))))
    top = {k: v for k, v in obj.items() if not re.match(r"/\d+/", str(k))}
    images = []
    for n in fields:
        field = obj[f"/{n}/data"]
        if not isinstance(field, GwyDataField):
            continue
        try:
            xres, yres = int(field["xres"]), int(field["yres"])
            if xres <= 0 or yres <= 0 or xres * yres > MAX_PIXELS:
                raise ReadError(path, f"data field /{n}/data has implausible size {xres} x {yres}")
            data = np.asarray(field["data"], dtype=np.float64)
            if data.size != xres * yres:
                raise ReadError(path, f"data field /{n}/data holds {data.size} values, "
                                      f"not xres*yres = {xres * yres}")
            data = data.reshape(yres, xres)
            xreal, yreal = float(field.get("xreal", 1.0)), float(field.get("yreal", 1.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReadError(path, f"data field /{n}/data is incomplete ({exc})") from exc
        xy_unit = _unit(field.get("si_unit_xy"))
        width, u = _axis_range(xreal, xy_unit)
        height, _ = _axis_range(yreal, xy_unit)
        title = str(obj.get(f"/{n}/data/title", f"Channel {n}"))
        meta = {"field": {k: v for k, v in field.items() if k != "data"},
                "channel": {k: v for k, v in obj.items()
                            if str(k).startswith(f"/{n}/") and k != f"/{n}/data"},
                "container": top}
        axes = spm_axes(yres, xres, height, width, unit=u)  # unit "" = dimensionless, uncalibrated
        images.append(make_image(data, axes=axes, signal=title, signal_unit=_unit(field.get("si_unit_z")),
                                 scan_direction=None, modality=None, metadata=meta, path=path,
                                 fmt="gwyddion", field=f"/{n}/data"))
    return images


def _magic(head: bytes) -> bool:
    return head.startswith(MAGIC) or head.startswith(LEGACY_MAGIC)


register_format(Format(name="gwyddion", extensions=(".gwy",), reader=read_gwy, magic=_magic,
                       description="Gwyddion .gwy (GWYP): every data field with its calibration"))
