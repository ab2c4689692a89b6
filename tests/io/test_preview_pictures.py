"""PNG previews (``scopenet preview`` / ``sn.write(x.png)``): scale bar, outline, sizes, colour bar."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.image.micrograph import Axis, Micrograph
from scopenet.image.units import scale_bar, to_metres
from scopenet.io.generic import preview_figure, render_preview

pytest.importorskip("matplotlib")


def calibrated(n=128, scale=0.078125, unit="nm", value=0.5, **kw) -> Micrograph:
    """A uniform image (mid grey in the preview) of ``n`` x ``n`` pixels of ``scale`` ``unit``."""
    return Micrograph(np.full((n, n), value), axes=[Axis("y", n, scale, unit=unit), Axis("x", n, scale, unit=unit)],
                      **kw)


def all_axes(fig):
    """The figure's axes and their inset axes (the colour bar is an inset of the image's axes)."""
    return [a for ax in fig.axes for a in (ax, *ax.child_axes)]


def artists(fig, gid):
    return [a for ax in fig.axes for a in [*ax.patches, *ax.texts] if a.get_gid() == gid]


def longest_white_run(png_path) -> int:
    from PIL import Image

    a = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    white = (a >= 250).all(axis=2)
    best = 0
    for row in white:
        run = 0
        for v in row:
            run = run + 1 if v else 0
            best = max(best, run)
    return best


def test_preview_scale_bar_length_matches_its_label(tmp_path):
    import matplotlib.pyplot as plt

    img = calibrated()                      # 10 nm wide
    spec = scale_bar(img)
    assert spec.label == "2 nm" and spec.length_px == pytest.approx(25.6)
    fig = preview_figure(img, size=256)     # 2 PNG pixels per image pixel
    try:
        (bar,), (label,) = artists(fig, "scale-bar"), artists(fig, "scale-bar-label")
        assert label.get_text() == "2 nm"
        # the drawn bar (image pixels) times the pixel size is the length in the label
        assert bar.get_width() * to_metres(0.078125, "nm") == pytest.approx(2e-9)
        # outlined: a stroke under the white text and bar
        assert label.get_path_effects() and bar.get_path_effects()
        assert label.get_color() == "white"
    finally:
        plt.close(fig)
    out = tmp_path / "p.png"
    render_preview(img, out, size=256)
    # measured in the written PNG: the bar is the longest white run, 25.6 image px = 51.2 PNG px
    assert abs(longest_white_run(out) - 51.2) <= 2


def test_preview_in_metres_labels_in_nm(tmp_path):
    import matplotlib.pyplot as plt

    img = calibrated(256, 7.8125e-10, "m")     # the Si(111) scan: 200 nm wide
    fig = preview_figure(img)
    try:
        (label,) = artists(fig, "scale-bar-label")
        (bar,) = artists(fig, "scale-bar")
        assert label.get_text() == "20 nm" and bar.get_width() * 7.8125e-10 == pytest.approx(2e-8)
    finally:
        plt.close(fig)


def test_uncalibrated_preview_has_no_bar_but_says_so(tmp_path):
    import matplotlib.pyplot as plt

    img = Micrograph(np.full((128, 128), 0.5))
    fig = preview_figure(img, size=256)
    try:
        assert artists(fig, "scale-bar") == [] and artists(fig, "scale-bar-label") == []
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert texts == ["uncalibrated"]
    finally:
        plt.close(fig)
    out = tmp_path / "u.png"
    render_preview(img, out, size=256)
    assert longest_white_run(out) < 20     # letters only, no 2 nm bar


def test_label_size_follows_the_image():
    import matplotlib.pyplot as plt

    sizes = []
    for size in (256, 1024):
        fig = preview_figure(calibrated(), size=size)
        try:
            sizes.append(artists(fig, "scale-bar-label")[0].get_fontsize())
        finally:
            plt.close(fig)
    assert sizes[1] == pytest.approx(4 * sizes[0], rel=0.02)


@pytest.mark.parametrize("signal, unit, span, label", [
    ("height", "m", 3e-10, "height (pm)"),
    ("height", "m", 4e-9, "height (nm)"),
    ("current", "A", 2e-10, "current (pA)"),
    ("current", "A", 3e-9, "current (nA)"),
])
def test_spm_preview_has_a_colour_bar_with_units(signal, unit, span, label):
    import matplotlib.pyplot as plt

    data = np.linspace(0, span, 64 * 64).reshape(64, 64)
    img = Micrograph(data, axes=[Axis("y", 64, 0.1, unit="nm"), Axis("x", 64, 0.1, unit="nm")],
                     signal=signal, signal_unit=unit, modality="STM", scan_direction="forward/up")
    fig = preview_figure(img)
    try:
        cbars = [ax for ax in all_axes(fig) if ax.get_ylabel()]
        assert [ax.get_ylabel() for ax in cbars] == [label]
        lo, hi = cbars[0].get_ylim()
        factor = {"pm": 1e12, "nm": 1e9, "pA": 1e12, "nA": 1e9}[label.split("(")[1][:-1]]
        assert hi == pytest.approx(np.percentile(data, 99.5) * factor, rel=1e-3)   # values shown in that unit
    finally:
        plt.close(fig)


def test_em_preview_has_no_colour_bar_unless_asked():
    import matplotlib.pyplot as plt

    img = calibrated(signal="HAADF", signal_unit="counts", modality="STEM")
    for kw, n_axes in (({}, 1), ({"colorbar": True}, 2)):
        fig = preview_figure(img, **kw)
        try:
            assert len(all_axes(fig)) == n_axes
        finally:
            plt.close(fig)


def test_values_with_a_physical_unit_get_a_colour_bar_without_spm_metadata():
    """An AFM height read without modality or scan direction (Gwyddion files) still shows its unit."""
    import matplotlib.pyplot as plt

    img = Micrograph(np.linspace(-5e-9, 3e-8, 32 * 32).reshape(32, 32), signal="HeightRetrace", signal_unit="m",
                     axes=[Axis("y", 32, 39.22, unit="nm"), Axis("x", 32, 39.22, unit="nm")])
    fig = preview_figure(img)
    try:
        assert [ax.get_ylabel() for ax in all_axes(fig) if ax.get_ylabel()] == ["HeightRetrace (nm)"]
        assert artists(fig, "scale-bar-label")[0].get_text() == "200 nm"
    finally:
        plt.close(fig)
