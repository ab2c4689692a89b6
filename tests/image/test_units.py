"""The one unit style of scopenet: lengths in pm/nm/µm, signal prefixes, scale-bar length and label."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.image.micrograph import Axis, Micrograph, to_metres
from scopenet.image.units import (display_unit, field_of_view_text, format_axis_length, format_length,
                                  nice_length, pixel_size_text, scale_bar, signal_label, split_unit,
                                  value_format)


@pytest.mark.parametrize("metres, text", [
    (7.8125e-10, "781.2 pm"),      # the Si(111) .sxm pixel that info printed as 7.812e-10 m
    (3.90625e-11, "39.06 pm"),
    (1e-9, "1 nm"),
    (9.99996e-10, "1 nm"),          # rounding carries into the next unit, never "1000 pm"
    (1.953125e-8, "19.53 nm"),
    (3.922e-8, "39.22 nm"),
    (2.5e-6, "2.5 µm"),
    (1.0e-5, "10 µm"),
    (5e-4, "500 µm"),
    (2e-2, "20 mm"),
    (-2e-9, "-2 nm"),
    (0.0, "0 nm"),
])
def test_format_length(metres, text):
    assert format_length(metres) == text
    assert "e-" not in format_length(metres) and "e+" not in format_length(metres)


def test_format_length_digits_and_axis_units():
    assert format_length(7.8125e-10, digits=3) == "781 pm"
    assert format_length(1.2345e-9, digits=2) == "1.2 nm"
    assert format_axis_length(0.04, "nm") == "40 pm"
    assert format_axis_length(0.5, "Å") == "50 pm"
    assert format_axis_length(2.0, "um") == "2 µm"
    assert format_axis_length(0.25, "1/nm") == "0.25 1/nm"    # not a length: written as it is
    assert format_axis_length(3.0, "px") == "3 px"


def _img(shape=(64, 128), scale=0.0390625, unit="nm", **kw):
    return Micrograph(np.zeros(shape), axes=[Axis("y", shape[0], scale, unit=unit),
                                             Axis("x", shape[1], scale, unit=unit)], **kw)


def test_pixel_size_and_field_of_view_text():
    assert pixel_size_text(_img()) == "39.06 pm"
    assert field_of_view_text(_img()) == "5 nm x 2.5 nm"
    assert pixel_size_text(_img(scale=7.8125e-10, unit="m")) == "781.2 pm"
    rect = Micrograph(np.zeros((4, 4)), axes=[Axis("y", 4, 2e-9, unit="m"), Axis("x", 4, 1e-9, unit="m")])
    assert pixel_size_text(rect) == "2 nm x 1 nm"
    plain = Micrograph(np.zeros((8, 8)))
    assert pixel_size_text(plain) == "uncalibrated" and field_of_view_text(plain) == "uncalibrated"


@pytest.mark.parametrize("span, unit, shown, factor", [
    (3e-10, "m", "pm", 1e12),
    (2e-9, "m", "nm", 1e9),
    (2.5e-6, "m", "µm", 1e6),
    (0.3, "nm", "pm", 1e3),
    (5e-11, "A", "pA", 1e12),
    (2e-9, "A", "nA", 1e9),
    (400.0, "pA", "pA", 1.0),
    (4000.0, "pA", "nA", 1e-3),
    (0.002, "V", "mV", 1e3),
    (0.5, "Hz", "mHz", 1e3),
    (12.0, "Hz", "Hz", 1.0),
    (10.0, "counts", "counts", 1.0),
    (1.0, "", "", 1.0),
])
def test_display_unit(span, unit, shown, factor):
    got, f = display_unit(span, unit)
    assert got == shown and f == pytest.approx(factor)


def test_split_unit_and_labels():
    assert split_unit("nm") == ("m", 1e-9) and split_unit("m") == ("m", 1.0)
    assert split_unit("mV") == ("V", 1e-3) and split_unit("Å") == ("m", 1e-10)
    assert split_unit("counts") is None and split_unit("") is None and split_unit("deg") is None
    assert signal_label("height", "pm") == "height (pm)"
    assert signal_label("intensity", "") == "intensity (arb. units)"


def test_value_format_one_unit_and_precision_per_column():
    unit, fmt = value_format(-1.546e-8, 1.096e-7, "m")
    assert unit == "nm"
    assert [fmt(v) for v in (-1.546e-8, 1.096e-7, 4.9e-17)] == ["-15.5 nm", "109.6 nm", "0.0 nm"]
    unit, fmt = value_format(-3.9041e-8, -3.8778e-8, "m")   # a raw MATRIX Z: offset large, range small
    assert unit == "nm" and fmt(-3.9041e-8) == "-39.0410 nm"
    unit, fmt = value_format(3.6e-11, 7.057e-10, "A")
    assert unit == "pA" and fmt(3.6e-11) == "36.0 pA"
    unit, fmt = value_format(0, 9739, "")
    assert unit == "" and fmt(3622.4) == "3622" and fmt(None) == "—"


def test_nice_length():
    assert [nice_length(x) for x in (0.9, 1.0, 2.3, 4.99, 5.0, 7.3, 23.0, 0.047)] == \
        [0.5, 1.0, 2.0, 2.0, 5.0, 5.0, 20.0, 0.02]
    assert nice_length(0) == 0 and nice_length(-1) == 0


@pytest.mark.parametrize("scale, unit, width, metres", [
    (0.0390625, "nm", 256, 2e-9),        # 10 nm wide: a 2 nm bar
    (7.8125e-10, "m", 256, 2e-8),        # 200 nm wide: 20 nm
    (0.01775, "nm", 512, 1e-9),          # 9.09 nm wide: 1 nm
    (1.0, "Å", 64, 1e-9),                # 6.4 nm wide: 1 nm
    (39.22, "nm", 256, 2e-6),            # 10 µm wide: 2 µm
])
def test_scale_bar_length_matches_its_label(scale, unit, width, metres):
    img = _img((32, width), scale, unit)
    bar = scale_bar(img)
    # the bar's length in pixels times the pixel size is the physical length written in the label
    assert bar.length_px * to_metres(scale, unit) == pytest.approx(metres, rel=1e-9)
    assert bar.label == format_length(metres, 3)
    assert bar.metres == pytest.approx(metres)
    assert 0.1 * width <= bar.length_px <= 0.2 * width + 1e-9


def test_uncalibrated_image_has_no_scale_bar():
    assert scale_bar(Micrograph(np.zeros((32, 32)))) is None
    assert scale_bar(_img(unit="px")) is None
