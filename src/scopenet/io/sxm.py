"""Nanonis ``.sxm`` scan files: every channel, forward and backward, up and down scans.

The header text is parsed with nanonispy2 (``nanonispy2.read._parse_sxm_header``); the binary block
is read here so that single-direction channels, any ``SCANIT_TYPE`` and truncated files are handled
(nanonispy2's ``Scan`` assumes every channel has both directions and reads the data unchecked).

File layout: a text header ending in ``:SCANIT_END:``, then ``\\x1a\\x04``, then for each channel of
``:DATA_INFO:`` (in that order) the forward and/or backward image, ``ny x nx`` values each, in the
byte order and type given by ``:SCANIT_TYPE:`` (normally big-endian float32).

Orientation (see :mod:`scopenet.io._spm_common`)
------------------------------------------------
Nanonis stores lines in acquisition order and the backward trace right-to-left. The reader

* mirrors every backward image left-right, so it lines up with the forward one (after removing
  each row's mean, forward and mirrored backward correlate at 0.75-1.0 on real files; unmirrored
  they do not);
* flips ``SCAN_DIR = up`` scans upside down (their first recorded line is the bottom one), so row 0
  is always the top of the frame. ``down`` scans are already top-row-first.

Hence ``img.data == np.fliplr(stored)`` for backward/down and ``np.flipud(stored)`` for forward/up.
Lines never scanned (a scan stopped early) are NaN in the file and stay NaN.

Pixel size = ``SCAN_RANGE / SCAN_PIXELS`` (metres); a header whose SCAN_RANGE is missing, zero,
negative or not finite is a ReadError (never a silently uncalibrated image). Values are in the SI unit of ``DATA_INFO``
(metres for Z, amperes for Current, Hz for Frequency_Shift). ``modality`` is ``"AFM"`` when the file
has oscillation-control (frequency-shift / excitation) data, ``"STM"`` when the Z controller runs on
the tunnelling current, else None. ``metadata`` maps each ``:TAG:`` of the header to its raw text.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ReadError
from .registry import Format, register_format
from ._spm_common import MAX_PIXELS, check_size, direction, make_image, spm_axes

MAGIC = b":NANONIS_VERSION:"
_END = b":SCANIT_END:"
_TYPES = {"FLOAT": "f4", "INT": "i4", "UINT": "u4", "DOUBLE": "f8"}
_AFM_CHANNELS = ("frequency_shift", "excitation", "amplitude", "phase")


def _raw_tags(text: str) -> dict[str, str]:
    """The header as ``{TAG: raw text}`` (untouched apart from the outer newlines)."""
    out: dict[str, str] = {}
    key = None
    lines: list[str] = []
    for line in text.split("\n"):
        if line.startswith(":") and line.rstrip().endswith(":") and len(line.strip()) > 1:
            if key is not None:
                out[key] = "\n".join(lines).strip("\n")
            key, lines = line.strip().strip(":"), []
        else:
            lines.append(line)
    if key is not None:
        out[key] = "\n".join(lines).strip("\n")
    return out


def _parse(path: Path, raw: bytes):
    """Header dict (nanonispy2), raw tags and the data offset."""
    from nanonispy2.read import _parse_sxm_header

    if not raw.startswith(MAGIC):
        raise ReadError(path, "not a Nanonis .sxm file (it does not start with ':NANONIS_VERSION:')")
    end = raw.find(_END)
    if end < 0:
        raise ReadError(path, "truncated or corrupt Nanonis header: no ':SCANIT_END:' tag")
    eol = raw.find(b"\n", end)
    start = raw.find(b"\x1a\x04", end)
    if eol < 0 or start < 0:
        raise ReadError(path, "truncated Nanonis file: no data block after ':SCANIT_END:'")
    text = raw[:eol + 1].decode("latin-1")
    try:
        header = _parse_sxm_header(text)
    except (KeyError, IndexError, ValueError) as exc:
        raise ReadError(path, f"corrupt Nanonis header ({type(exc).__name__}: {exc})") from exc
    return header, _raw_tags(text[:end]), start + 2


def _dtype(path: Path, scanit_type: str) -> np.dtype:
    parts = scanit_type.split()
    if len(parts) != 2 or parts[0] not in _TYPES or parts[1] not in ("MSBFIRST", "LSBFIRST"):
        raise ReadError(path, f"unsupported SCANIT_TYPE {scanit_type!r} (expected e.g. 'FLOAT MSBFIRST')")
    return np.dtype((">" if parts[1] == "MSBFIRST" else "<") + _TYPES[parts[0]])


def _modality(header: dict, tags: dict, names: list[str]) -> str | None:
    low = [n.lower() for n in names]
    if any(k.lower().startswith("oscillation control") for k in tags) or "frequency_shift" in low:
        return "AFM"
    zc = header.get("z-controller", {})
    ctrl = " ".join(zc.get("Name", ())) if isinstance(zc, dict) else ""
    if "current" in ctrl.lower():
        return "STM"
    return None


def read_sxm(path: str | Path) -> list:
    """Read every channel and trace of a Nanonis ``.sxm`` file.

    Parameters
    ----------
    path : str or Path
        The ``.sxm`` file.

    Returns
    -------
    list of Micrograph
        For each channel in file order: forward then backward (when recorded), each of shape
        ``(ny, nx)``, float32, top row first (see the module docstring), ``scan_direction`` like
        ``"forward/down"``.

    Raises
    ------
    ReadError
        Not an .sxm file, corrupt header, unsupported data type or truncated data block.
    """
    path = Path(path)
    raw = path.read_bytes()
    header, tags, offset = _parse(path, raw)
    try:
        nx, ny = (int(v) for v in header["scan_pixels"][:2])
        width, height = (float(v) for v in header["scan_range"][:2])
        info = header["data_info"]
        names = list(info["Name"])
        units = list(info.get("Unit", [""] * len(names)))
        dirs = list(info.get("Direction", ["both"] * len(names)))
    except (KeyError, ValueError, TypeError) as exc:
        raise ReadError(path, f"corrupt Nanonis header: SCAN_PIXELS, SCAN_RANGE or DATA_INFO "
                              f"unreadable ({exc})") from exc
    if nx <= 0 or ny <= 0 or nx * ny > MAX_PIXELS:
        raise ReadError(path, f"implausible SCAN_PIXELS {nx} x {ny}")
    if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
        raise ReadError(path, f"corrupt Nanonis header: SCAN_RANGE {width} x {height} m is not a scan "
                              "size, so the pixel size is unknown")
    scan_dir = str(header.get("scan_dir", "")).strip().lower()
    if scan_dir not in ("up", "down"):
        raise ReadError(path, f"SCAN_DIR must be 'up' or 'down', got {scan_dir!r}")
    up = scan_dir == "up"
    dtype = _dtype(path, str(header.get("scanit_type", "")))
    traces: list[tuple[str, str, bool]] = []
    for name, unit, d in zip(names, units, dirs):
        d = d.strip().lower()
        if d not in ("both", "forward", "backward"):
            raise ReadError(path, f"unknown direction {d!r} for channel {name!r} in DATA_INFO")
        if d in ("both", "forward"):
            traces.append((name, unit, True))
        if d in ("both", "backward"):
            traces.append((name, unit, False))
    if not traces:
        raise ReadError(path, "DATA_INFO lists no channel")
    n = nx * ny
    check_size(path, n * len(traces), dtype.itemsize, len(raw) - offset)
    block = np.frombuffer(raw, dtype=dtype, count=n * len(traces), offset=offset)
    block = block.reshape(len(traces), ny, nx)
    modality = _modality(header, tags, names)
    axes = spm_axes(ny, nx, height, width)
    images = []
    for i, (name, unit, forward) in enumerate(traces):
        img = block[i]
        if not forward:
            img = img[:, ::-1]
        if up:
            img = img[::-1, :]
        images.append(make_image(img.astype(np.float32), axes=axes, signal=name, signal_unit=unit,
                                 scan_direction=direction(forward, up), modality=modality,
                                 metadata=tags, path=path, fmt="nanonis-sxm"))
    return images


def _magic(head: bytes) -> bool:
    return head.startswith(MAGIC)


register_format(Format(name="nanonis-sxm", extensions=(".sxm",), reader=read_sxm, magic=_magic,
                       description="Nanonis SXM scan (all channels, forward/backward, up/down)"))
