"""Bruker / Veeco / Digital Instruments NanoScope image files (``.spm``, ``.001``, ``.002`` ...).

A small reader of the documented NanoScope layout (no maintained Python reader is installed; pySPM
and AFMReader were used to produce the reference values in the fixtures README):

* an ASCII header (``\\r\\n`` lines), starting with ``\\*File list``, whose first ``\\Data length``
  is the header size in bytes and which ends with ``\\*File list end``;
* one ``\\*Ciao image list`` section per stored image, giving ``Data offset``, ``Bytes/pixel``
  (2 or 4, little-endian signed integers), ``Samps/line``, ``Number of lines``, ``Scan size``
  (``"15 15 ~m"``: width height unit, ``~m`` = µm), ``Line direction`` (Trace/Retrace),
  ``Frame direction`` (Up/Down), the channel (``@2:Image Data: S [Height] "Height"``) and its
  ``@2:Z scale: V [Sens. Zscan] (... V/LSB) <hard value> V``;
* the sensitivity named in brackets (``\\@Sens. Zscan: V 15.068 nm/V``) elsewhere in the header.

Values: ``raw * hard_value / 2**(8 * bytes_per_pixel) * sensitivity``, converted to SI (metres
for heights); without a sensitivity the value stays in volts. Force-curve files
(``\\*Force file list``) are refused.

Orientation (see :mod:`scopenet.io._spm_common`): NanoScope stores the bottom row first whatever
the frame direction (Gwyddion's importer flips every image once), so every image is flipped upside
down: ``img.data == np.flipud(raw * scale)``. Retrace images are stored in physical x order and are
not mirrored. Pixel size = scan size / samples (x) and / lines (y), in metres.

``metadata`` = ``{"sections": [[name, {key: raw value}], ...], "image": {key: raw value}}``, the
header untouched.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..image.micrograph import Micrograph
from .registry import Format, register_format
from ._spm_common import MAX_PIXELS, check_size, direction, make_image, spm_axes

MAGIC = b"\\*File list"
FORCE_MAGIC = b"\\*Force file list"
_MAX_HEADER = 1 << 22
_PREFIX = {"": 1.0, "~": 1e-6, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "p": 1e-12, "m": 1e-3,
           "k": 1e3, "f": 1e-15}
_ENTRY = re.compile(r"^\\(@\d+:|@)?([^:]*):(.*)$")
_BASES = ("m", "A", "V", "N", "Hz", "s", "deg", "W")


def split_unit(unit: str) -> tuple[float, str]:
    """``"nm"`` -> ``(1e-9, "m")``, ``"~m"`` -> ``(1e-6, "m")``, ``"mV"`` -> ``(1e-3, "V")``."""
    unit = unit.strip()
    for base in _BASES:
        if unit == base:
            return 1.0, base
        if unit.endswith(base) and unit[: -len(base)] in _PREFIX:
            return _PREFIX[unit[: -len(base)]], base
    return 1.0, unit


def parse_header(text: str) -> list[tuple[str, dict[str, str]]]:
    """Sections of a NanoScope header as ``[(name, {key: raw value}), ...]`` in file order."""
    sections: list[tuple[str, dict[str, str]]] = []
    for line in text.replace("\r", "\n").split("\n"):
        line = line.strip("\x00 ")
        if line.startswith("\\*"):
            sections.append((line[2:].strip(), {}))
        elif sections and (m := _ENTRY.match(line)):
            sections[-1][1].setdefault((m.group(1) or "") + m.group(2).strip(), m.group(3).strip())
    return sections


def _number(text: str) -> float:
    return float(text.split()[0])


def _scale(entries: dict[str, str], all_entries: dict[str, str]) -> tuple[float, str, str]:
    """(physical value per LSB in SI, SI unit, channel name) of one image section."""
    chan_key = next((k for k in entries if re.fullmatch(r"@(\d+:)?Image Data", k)), None)
    chan = entries.get(chan_key, "")
    m = re.search(r'"(.*?)"', chan)
    name = m.group(1) if m else (re.search(r"\[(.*?)\]", chan).group(1) if "[" in chan else "Height")
    zkey = next((k for k in entries if re.fullmatch(r"@(\d+:)?Z scale", k)), None)
    bpp = int(_number(entries.get("Bytes/pixel", "2")))
    if zkey is None:
        return 1.0, "", name
    z = entries[zkey]
    hard = re.search(r"\)\s*([-+0-9.eE]+)\s*(\S*)\s*$", z) or re.search(r"([-+0-9.eE]+)\s*(\S*)\s*$", z)
    if hard is None:
        raise ValueError(f"cannot parse Z scale {z!r}")
    value = float(hard.group(1)) / 2 ** (8 * bpp)
    unit = hard.group(2) or "V"
    sens_name = re.search(r"\[(.*?)\]", z)
    if sens_name and sens_name.group(1):
        sens = all_entries.get("@" + sens_name.group(1))
        if sens is not None:
            sm = re.search(r"([-+0-9.eE]+)\s*(\S+)\s*$", sens)
            if sm:
                value *= float(sm.group(1))
                unit = sm.group(2).split("/")[0]
    factor, base = split_unit(unit)
    return value * factor, base, name


def read_nanoscope(path: str | Path) -> list[Micrograph]:
    """Read every image of a Bruker NanoScope file.

    Returns
    -------
    list of Micrograph
        One per ``Ciao image list`` section, shape ``(lines, samples)``, float32, SI units.

    Raises
    ------
    ReadError
        Force-curve file, corrupt header, or image data beyond the end of the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
        if head.startswith(FORCE_MAGIC):
            raise ReadError(path, "it is a NanoScope force-curve file, not an image")
        if not head.startswith(MAGIC):
            raise ReadError(path, "not a Bruker NanoScope file (no '\\*File list' header)")
        m = re.search(rb"\\Data length:\s*(\d+)", head)
        if m is None:
            raise ReadError(path, "corrupt NanoScope header: no '\\Data length' (header size)")
        hsize = int(m.group(1))
        if hsize <= 0 or hsize > min(size, _MAX_HEADER):
            raise ReadError(path, f"corrupt or truncated NanoScope file: header size {hsize} bytes, "
                                  f"file size {size}")
        fh.seek(0)
        text = fh.read(hsize).decode("latin-1")
    if "\\*File list end" not in text:
        raise ReadError(path, "truncated NanoScope header (no '\\*File list end')")
    sections = parse_header(text)
    merged: dict[str, str] = {}
    for _, entries in sections:
        for k, v in entries.items():
            merged.setdefault(k, v)
    images = []
    modality = None
    for sect_name, entries in sections:
        if sect_name.lower() not in ("ciao image list", "image list"):
            continue
        try:
            offset = int(_number(entries["Data offset"]))
            bpp = int(_number(entries.get("Bytes/pixel", "2")))
            nx = int(_number(entries["Samps/line"]))
            ny = int(_number(entries.get("Number of lines", entries.get("Lines", "0"))))
            scan = entries.get("Scan size", merged.get("Scan size", "")).split()
            per_lsb, unit, name = _scale(entries, merged)
        except (KeyError, ValueError, IndexError, AttributeError) as exc:
            raise ReadError(path, f"corrupt NanoScope image section ({type(exc).__name__}: {exc})") from exc
        if bpp not in (2, 4):
            raise ReadError(path, f"unsupported Bytes/pixel {bpp} (expected 2 or 4)")
        if nx <= 0 or ny <= 0 or nx * ny > MAX_PIXELS:
            raise ReadError(path, f"implausible image size {nx} x {ny}")
        if offset < 0:
            raise ReadError(path, f"negative data offset {offset}")
        check_size(path, nx * ny, bpp, size - offset, what=f"'{name}' image")
        raw = np.fromfile(path, dtype="<i2" if bpp == 2 else "<i4", count=nx * ny, offset=offset)
        data = np.flipud(raw.reshape(ny, nx).astype(np.float64) * per_lsb)
        try:
            if len(scan) >= 3:
                f, _ = split_unit(scan[2])
                width, height = float(scan[0]) * f, float(scan[1]) * f
            elif len(scan) == 2:
                f, _ = split_unit(scan[1])
                width = height = float(scan[0]) * f
            else:
                width = height = None
        except ValueError:
            width = height = None
        forward = entries.get("Line direction", "Trace").strip().lower() != "retrace"
        frame = entries.get("Frame direction", "").strip().lower()
        up = True if frame == "up" else (False if frame == "down" else None)
        dtype_ = entries.get("Data type", merged.get("Data type", "")).upper()
        modality = "AFM" if "AFM" in dtype_ else ("STM" if "STM" in dtype_ else None)
        images.append(make_image(data, axes=spm_axes(ny, nx, height, width), signal=name, signal_unit=unit,
                                 scan_direction=direction(forward, up), modality=modality,
                                 metadata={"sections": [[n, dict(e)] for n, e in sections], "image": dict(entries)},
                                 path=path, fmt="bruker-nanoscope"))
    if not images:
        raise ReadError(path, "the NanoScope header describes no image ('\\*Ciao image list')")
    return images


def _magic(head: bytes) -> bool:
    return head.startswith(MAGIC) or head.startswith(FORCE_MAGIC)


register_format(Format(name="bruker-nanoscope", extensions=(".spm",), reader=read_nanoscope, magic=_magic,
                       description="Bruker/Veeco NanoScope image (.spm, .001, .002 ...; found by content)"))
