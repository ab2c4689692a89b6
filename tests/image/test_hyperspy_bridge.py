"""Micrograph <-> hyperspy Signal2D keeps data, calibration and navigation axes."""
import numpy as np
import pytest

from scopenet.image import Axis, Micrograph

hs = pytest.importorskip("hyperspy.api", reason="hyperspy (extra 'hyperspy') is not installed")


def test_2d_round_trip_keeps_data_and_calibration():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    img = Micrograph(data, axes=[Axis("y", 3, 0.2, 1.0, "nm"), Axis("x", 4, 0.1, -2.0, "nm")], signal="HAADF")
    s = img.to_hyperspy()
    assert s.data.shape == (3, 4)
    sx, sy = s.axes_manager.signal_axes
    assert sx.scale == pytest.approx(0.1) and sx.offset == pytest.approx(-2.0) and sx.units == "nm"
    assert sx.size == 4 and sy.size == 3
    assert sy.scale == pytest.approx(0.2) and sy.offset == pytest.approx(1.0) and sy.units == "nm"
    back = Micrograph.from_hyperspy(s)
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_size == pytest.approx((0.2, 0.1))
    assert back.axes[-1].offset == pytest.approx(-2.0) and back.axes[-1].unit == "nm"
    assert back.signal == "HAADF"


def test_stack_round_trip_keeps_the_frame_axis():
    data = np.random.default_rng(0).random((5, 3, 4)).astype(np.float32)
    img = Micrograph(data, axes=[Axis("defocus", 5, 10.0, -20.0, "nm"), Axis("y", 3, 1.0, 0, "Å"),
                                 Axis("x", 4, 1.0, 0, "Å")])
    s = img.to_hyperspy()
    assert s.axes_manager.navigation_dimension == 1
    nav = s.axes_manager.navigation_axes[0]
    assert nav.size == 5 and nav.scale == pytest.approx(10.0) and nav.offset == pytest.approx(-20.0)
    back = Micrograph.from_hyperspy(s)
    np.testing.assert_array_equal(back.data, data)
    assert back.axes[0].name == "defocus" and back.axes[0].scale == pytest.approx(10.0)


def test_more_than_one_navigation_axis_is_refused():
    s = hs.signals.Signal2D(np.zeros((2, 2, 3, 4), np.float32))
    from scopenet.errors import InputError

    with pytest.raises(InputError, match="at most one navigation axis"):
        Micrograph.from_hyperspy(s)
