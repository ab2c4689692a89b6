"""One way to write lengths and signal values for people: ``scopenet info``, previews and the report.

Lengths are written in the SI unit that puts the number between 1 and 1000 (pm, nm, µm, mm, m), with
a fixed number of significant digits, never as ``7.812e-10 m``::

    >>> format_length(7.8125e-10)
    '781.2 pm'
    >>> format_length(3.9e-9, digits=3)
    '3.9 nm'
    >>> format_length(2.5e-6)
    '2.5 µm'

Signal values (the colour bar of a scanning-probe image) get a prefix chosen from the value range:
heights in pm or nm, currents in pA or nA, voltages in mV or V, frequency shifts in Hz (or mHz/kHz).
:func:`scale_bar` chooses the length of a scale bar (1, 2 or 5 x 10^k of the image's own unit,
about a fifth of its width) and the label written beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .micrograph import to_metres

#: length units from small to large: name and size in metres
LENGTH_UNITS: tuple[tuple[str, float], ...] = (("pm", 1e-12), ("nm", 1e-9), ("µm", 1e-6), ("mm", 1e-3),
                                               ("m", 1.0))
#: SI prefixes and their factors ("u" and the Greek mu are read as micro)
PREFIXES: dict[str, float] = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6,
                              "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
#: base units that take a prefix, and the prefixes shown for each (from small to large)
SHOWN_PREFIXES: dict[str, tuple[str, ...]] = {
    "m": ("p", "n", "µ", "m", ""),
    "A": ("f", "p", "n", "µ", "m", ""),
    "V": ("µ", "m", ""),
    "Hz": ("m", "", "k", "M"),
    "N": ("p", "n", "µ", "m", ""),
    "s": ("n", "µ", "m", ""),
}


def _num(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, no exponent, no trailing zeros."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    mag = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - mag)
    text = f"{round(value, decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def length_unit(metres: float) -> tuple[str, float]:
    """``(unit, size of the unit in metres)`` that writes ``metres`` as a number in [1, 1000)."""
    a = abs(metres)
    for name, size in LENGTH_UNITS:
        if a < 999.5 * size:
            return name, size
    return LENGTH_UNITS[-1]


def format_length(metres: float, digits: int = 4) -> str:
    """A length in metres as ``'781.2 pm'``, ``'3.906 nm'``, ``'2.5 µm'`` (``digits`` significant)."""
    if metres is None or not math.isfinite(metres):
        return "—"
    if metres == 0:
        return "0 nm"
    name, size = length_unit(metres)
    text = _num(metres / size, digits)
    if abs(float(text)) >= 1000 and name != LENGTH_UNITS[-1][0]:  # rounding carried into the next unit
        name, size = LENGTH_UNITS[[u for u, _ in LENGTH_UNITS].index(name) + 1]
        text = _num(metres / size, digits)
    return f"{text} {name}"


def format_axis_length(value: float, unit: str | None, digits: int = 4) -> str:
    """``value`` in ``unit`` written by :func:`format_length` when ``unit`` is a length, else as is."""
    metres = to_metres(value, unit) if unit not in (None, "", "px") else None
    if metres is not None:
        return format_length(metres, digits)
    unit = unit or "px"
    return f"{_num(value, digits)} {unit}"


def pixel_size_text(img, digits: int = 4) -> str:
    """Pixel size of a Micrograph: ``'39.06 pm'`` (square), ``'39.06 pm x 78.12 pm'`` (y x x) or
    ``'uncalibrated'``."""
    ay, ax = img.axes[-2], img.axes[-1]
    if not (ax.calibrated or ay.calibrated):
        return "uncalibrated"
    ty, tx = format_axis_length(ay.scale, ay.unit, digits), format_axis_length(ax.scale, ax.unit, digits)
    return tx if tx == ty else f"{ty} x {tx}"


def field_of_view_text(img, digits: int = 3) -> str:
    """Field of view of a Micrograph, ``'10 nm x 10 nm'`` (width x height), or ``'uncalibrated'``."""
    ay, ax = img.axes[-2], img.axes[-1]
    if not ax.calibrated:
        return "uncalibrated"
    w = format_axis_length(ax.scale * ax.size, ax.unit, digits)
    h = format_axis_length(ay.scale * ay.size, ay.unit, digits) if ay.calibrated else f"{ay.size} px"
    return f"{w} x {h}"


# ------------------------------------------------------------------------------- signal units
def split_unit(unit: str | None) -> tuple[str, float] | None:
    """``(base unit, factor)`` of a prefixed SI unit (``'nm'`` -> ``('m', 1e-9)``, ``'pA'`` ->
    ``('A', 1e-12)``, ``'Å'`` -> ``('m', 1e-10)``), or None for units without a prefix scheme."""
    if not unit:
        return None
    u = unit.strip()
    if u in ("Å", "A°", "angstrom", "Angstrom"):
        return "m", 1e-10
    if u in SHOWN_PREFIXES:
        return u, 1.0
    for base in SHOWN_PREFIXES:
        if u.endswith(base) and u[: -len(base)] in PREFIXES and len(u) > len(base):
            return base, PREFIXES[u[: -len(base)]]
    return None


def display_unit(span: float, unit: str | None) -> tuple[str, float]:
    """The unit to show values of ``unit`` up to ``span`` in magnitude (in ``unit``), and the factor
    to multiply them by: ``display_unit(3e-10, 'm') == ('pm', 1e12)``, ``display_unit(2e-9, 'm')
    == ('nm', 1e9)``, ``display_unit(5e-11, 'A') == ('pA', 1e12)``. Units without a prefix scheme
    (counts, '', 'a.u.') come back unchanged with factor 1."""
    split = split_unit(unit)
    if split is None:
        return (unit or ""), 1.0
    base, f0 = split
    span_base = abs(span) * f0
    shown = SHOWN_PREFIXES[base]
    choice = shown[-1]
    if span_base > 0 and math.isfinite(span_base):
        for p in shown:
            if span_base < 999.5 * PREFIXES[p]:
                choice = p
                break
    else:
        choice = next((p for p in shown if PREFIXES[p] == f0), "")
    return choice + base, f0 / PREFIXES[choice]


def signal_label(signal: str, unit: str | None) -> str:
    """Colour-bar label: ``'height (pm)'``; ``'intensity (arb. units)'`` when there is no unit."""
    return f"{signal} ({unit})" if unit else f"{signal} (arb. units)"


# ------------------------------------------------------------------------------- scale bars
@dataclass(frozen=True)
class ScaleBar:
    """A scale bar: ``length_px`` image pixels long along x, standing for ``length`` in ``unit``
    (the image's own axis unit); ``label`` is what is written beside it."""

    length_px: float
    length: float
    unit: str
    label: str

    @property
    def metres(self) -> float | None:
        return to_metres(self.length, self.unit)


def nice_length(x: float) -> float:
    """Largest 1, 2 or 5 x 10^k not above ``x`` (0 for ``x <= 0``)."""
    if not x > 0 or not math.isfinite(x):
        return 0.0
    k = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10.0**k <= x * (1 + 1e-9):
            return float(m * 10.0**k)
    return float(10.0**k)


def scale_bar(img, fraction: float = 0.2) -> ScaleBar | None:
    """The scale bar of a Micrograph (about ``fraction`` of the width), or None when its x axis is
    not calibrated (then nothing should be drawn but the word "uncalibrated")."""
    axis = img.axes[-1]
    if not axis.calibrated or not axis.scale > 0:
        return None
    width = img.shape[-1] * axis.scale
    length = nice_length(fraction * width)
    if length <= 0:
        return None
    return ScaleBar(length_px=length / axis.scale, length=length, unit=axis.unit,
                    label=format_axis_length(length, axis.unit, digits=3))



def value_format(lo: float, hi: float, unit: str | None, digits: int = 4):
    """How to write values between ``lo`` and ``hi`` (in ``unit``) alike: ``(display unit, fmt)``.

    The prefix follows the largest magnitude (``-39.04 nm``, not ``-39041 pm``); the number of
    decimals gives the range ``hi - lo`` at least ``digits - 1`` significant digits, so a mean of
    5e-17 m beside values of 100 nm is written ``0.0 nm``, not ``5e-08 nm``.

    >>> unit, fmt = value_format(-1.5e-8, 1.1e-7, "m")
    >>> unit, fmt(-1.546e-8), fmt(4.9e-17)
    ('nm', '-15.5 nm', '0.0 nm')
    """
    vals = [abs(v) for v in (lo, hi) if v is not None and math.isfinite(v)]
    big = max(vals) if vals else 0.0
    shown, factor = display_unit(big, unit)
    span = abs(hi - lo) * factor if vals and len(vals) == 2 else 0.0
    ref = span if span > 0 else big * factor
    decimals = 0 if not ref > 0 else int(min(8, max(0, digits - 1 - math.floor(math.log10(ref)))))

    def fmt(v: float | None) -> str:
        if v is None:
            return "—"
        if not math.isfinite(v):
            return f"{v}"
        text = f"{v * factor:.{decimals}f}"
        if float(text) == 0:
            text = text.lstrip("-")
        return f"{text} {shown}" if shown else text

    return shown, fmt

