"""Igor Binary Wave ``.ibw`` images (igor2), e.g. SPM images exported from MATRIX or Asylum.

A 2-D wave (``wData`` of shape ``(nx, ny)`` in Igor's column-major dimension order: dimension 0 =
x = points per line, dimension 1 = y = lines) becomes one Micrograph of shape ``(ny, nx)``; a 3-D
wave becomes one stack ``(layers, ny, nx)``. 1-D waves and text waves are not images and raise
:class:`~scopenet.errors.ReadError`.

Calibration: Igor stores per dimension a start ``sfB`` and a step ``sfA`` (physical coordinate
``sfB + i * sfA``) with a unit (``dimUnits``; lengths are converted to metres). Pixel size =
``|sfA|``. Values are in ``dataUnits``.

Orientation (see :mod:`scopenet.io._spm_common`): Igor's y axis points up (row ``j`` of the image
lies at ``y = sfB[1] + j * sfA[1]``), so an image with ``sfA[1] > 0`` is flipped upside down to put
the largest y on row 0 (the top); one with ``sfA[0] < 0`` is mirrored left-right. No other flip is
applied: the wave's own axis scaling already places each pixel, so a backward trace exported by
MATRIX comes back as exported. ``scan_direction`` is taken from the wave name or note when they say
(``"... Backward Down"`` -> ``"backward/down"``), and ``modality`` when the note names STM or AFM.

``metadata``: the binary and wave headers as igor2 parses them, the note text, units and labels.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Axis, Micrograph, to_metres
from .registry import Format, register_format
from ._spm_common import MAX_PIXELS, make_image

_DIR = re.compile(r"(forward|backward|trace|retrace)[\s_/-]*(up|down)", re.IGNORECASE)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, np.ndarray):
        return b"".join(np.asarray(value, dtype="S1").ravel().tolist()).decode("latin-1")
    return "" if value is None else str(value)


def _dim_unit(wave: dict, dim: int) -> str:
    head = wave["wave_header"].get("dimUnits")
    if head is not None and len(head) > dim:
        return _text(head[dim]).strip("\x00 ")
    return ""


def _axis(name: str, n: int, step: float, unit: str) -> Axis:
    step = abs(float(step))
    if not np.isfinite(step) or step == 0:
        return Axis(name, n)
    if unit and unit != "m":
        m = to_metres(step, unit)
        if m is not None:
            return Axis(name, n, scale=m, unit="m")
    return Axis(name, n, scale=step, unit=unit)


def _direction(*texts: str) -> str | None:
    for t in texts:
        m = _DIR.search(t)
        if m:
            h = m.group(1).lower()
            h = {"trace": "forward", "retrace": "backward"}.get(h, h)
            return f"{h}/{m.group(2).lower()}"
    return None


def read_ibw(path: str | Path) -> list[Micrograph]:
    """Read a 2-D or 3-D Igor binary wave as a calibrated image (stack).

    Raises
    ------
    ReadError
        Corrupt or truncated file, text wave, 1-D or 4-D wave.
    """
    from igor2 import binarywave

    path = Path(path)
    size = path.stat().st_size
    head = path.read_bytes()[:8]
    if len(head) < 8:
        raise ReadError(path, "too short to be an Igor binary wave")
    version = int.from_bytes(head[:2], "little")
    if version not in (1, 2, 3, 5):
        version = int.from_bytes(head[:2], "big")
    if version not in (1, 2, 3, 5):
        raise ReadError(path, "not an Igor binary wave (unknown version field)")
    if version == 5:
        order = "little" if int.from_bytes(head[:2], "little") == 5 else "big"
        wfm = int.from_bytes(head[4:8], order, signed=True)
        if wfm < 320 or wfm > size:
            raise ReadError(path, f"corrupt or truncated Igor wave: the header declares {wfm} bytes of "
                                  f"wave data, the file has {size}")
    try:
        loaded = binarywave.load(str(path))
    except Exception as exc:
        raise ReadError(path, f"corrupt or truncated Igor binary wave ({type(exc).__name__}: {exc})") from exc
    wave = loaded["wave"]
    wh = wave["wave_header"]
    data = np.asarray(wave["wData"])
    if data.dtype.kind not in "iuf" or data.dtype.names:
        raise ReadError(path, f"the wave holds {data.dtype} values (text or complex), not an image")
    if data.ndim not in (2, 3) or min(data.shape) < 1:
        raise ReadError(path, f"the wave has shape {data.shape}; only 2-D images and 3-D stacks are read")
    if data.size > MAX_PIXELS:
        raise ReadError(path, f"implausible wave size {data.shape}")
    sfa = np.asarray(wh.get("sfA", [1.0, 1.0, 1.0, 1.0]), dtype=float)
    img = np.swapaxes(data, 0, 1)              # (ny, nx[, layers])
    if img.ndim == 3:
        img = np.moveaxis(img, 2, 0)           # (layers, ny, nx)
    if sfa[1] > 0:
        img = img[..., ::-1, :]
    if sfa[0] < 0:
        img = img[..., :, ::-1]
    note = _text(wave.get("note", b""))
    name = _text(wh.get("bname", b"")).strip("\x00")
    unit = _text(wave.get("data_units") or b"") or _text(wh.get("dataUnits", b"")).strip("\x00 ")
    ny, nx = img.shape[-2:]
    axes = [_axis("y", ny, sfa[1], _dim_unit(wave, 1)), _axis("x", nx, sfa[0], _dim_unit(wave, 0))]
    if img.ndim == 3:
        axes = [Axis("frame", img.shape[0], float(abs(sfa[2])) or 1.0, unit=_dim_unit(wave, 2) or "px")] + axes
    m = re.search(r"Channel name and data unit:\s*(.*?)\s*\[(.*?)\]", note)
    signal = m.group(1) if m else (name or path.stem)
    mod = re.search(r"(?<![A-Za-z])(STM|AFM)(?![a-z])", note)
    meta = {"version": loaded.get("version"), "bin_header": wave.get("bin_header"), "wave_header": wh,
            "note": note, "data_units": unit, "dimension_units": wave.get("dimension_units"),
            "labels": wave.get("labels")}
    return [make_image(img, axes=axes, signal=signal, signal_unit=unit,
                       scan_direction=_direction(name, note), modality=mod.group(1) if mod else None,
                       metadata=meta, path=path, fmt="igor-ibw", wave=name)]


register_format(Format(name="igor-ibw", extensions=(".ibw",), reader=read_ibw,
                       description="Igor Binary Wave (2-D image or 3-D stack)"))
