"""Demo-report panels: a scale bar (or "uncalibrated") on every panel, height bars on SPM panels."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.image.micrograph import Axis, Micrograph

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """Keep the figures that report.fig_to_png would turn into PNG bytes."""
    import scopenet.report as report

    kept = []
    real = report.fig_to_png

    def keep(fig):
        kept.append(fig)
        return real(fig)

    monkeypatch.setattr(report, "fig_to_png", keep)
    return kept


def _cal(data, px_nm, **kw):
    h, w = data.shape
    return Micrograph(data, axes=[Axis("y", h, px_nm, unit="nm"), Axis("x", w, px_nm, unit="nm")], **kw)


def panels(fig):
    """Per image panel: (scale-bar label or None, other texts, colour-bar labels)."""
    out = []
    for ax in fig.axes:
        if not ax.images:
            continue
        labels = [t.get_text() for t in ax.texts if t.get_gid() == "scale-bar-label"]
        others = [t.get_text() for t in ax.texts if t.get_gid() != "scale-bar-label"]
        cbars = [c.get_ylabel() for c in ax.child_axes]
        out.append((labels[0] if labels else None, others, cbars))
    return out


def test_image_grid_marks_every_panel(figures):
    from scopenet.report import image_grid

    rng = np.random.default_rng(0)
    stm = _cal(rng.random((64, 64)) * 3e-10, 0.04, signal="height", signal_unit="m", scan_direction="forward/up")
    haadf = _cal(rng.random((64, 64)), 0.02, signal="HAADF", signal_unit="counts", modality="STEM")
    png = image_grid([stm, haadf, rng.random((32, 32))], ["stm", "haadf", "array"])
    assert png.startswith(b"\x89PNG")
    (fig,) = figures
    assert panels(fig) == [("500 pm", [], ["height (pm)"]),     # 2.56 nm wide
                           ("200 pm", [], []),                 # 1.28 nm wide, no colour bar on EM
                           (None, ["uncalibrated"], [])]


def test_classify_demo_overlay_has_scale_bars(figures):
    from scopenet.tasks.classify.demo import _overlay_grid

    rng = np.random.default_rng(1)
    images = [rng.standard_normal((64, 64)) for _ in range(3)]
    cams = [rng.random((64, 64)) for _ in range(3)]
    _overlay_grid(images, cams, ["a", "b", "c"], [6.4e-9, 1.28e-8, 3.2e-9])
    (fig,) = figures
    got = panels(fig)
    assert [g[0] for g in got] == ["1 nm", "2 nm", "500 pm"] * 2     # top row, then the CAM row
    bars = [ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_ylabel()]
    assert bars == ["height, standardised (s.d.)", "Grad-CAM weight"]


def test_task_demos_keep_the_calibration():
    from scopenet.tasks.denoise.demo import _calibrated as den_cal
    from scopenet.tasks.inpaint.demo import _calibrated, _x_axis

    img = den_cal(np.zeros((8, 8)), 2e-11)
    assert img.axes[-1].unit == "nm" and img.axes[-1].scale == pytest.approx(0.02)
    assert not den_cal(np.zeros((8, 8)), float("nan")).axes[-1].calibrated
    src = _cal(np.zeros((16, 16)), 0.05)
    assert _x_axis(src) == (pytest.approx(0.05), "nm") and _x_axis(np.zeros((4, 4))) is None
    assert _calibrated(np.zeros((4, 4)), _x_axis(src)).pixel_size == pytest.approx((0.05, 0.05))
    assert not _calibrated(np.zeros((4, 4)), None).axes[-1].calibrated
