"""EM geometry operations: binning, cropping to a square, resizing; calibration follows."""
from __future__ import annotations

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.image import em


def _calibrated(data, scale=0.1):
    h, w = np.shape(data)[-2:]
    axes = [sn.Axis("y", h, scale, 1.0, "nm"), sn.Axis("x", w, scale, 2.0, "nm")]
    return sn.Micrograph(data, axes=axes, signal="intensity", signal_unit="counts", modality="TEM")


def test_bin_image_values_and_calibration():
    z = np.arange(7 * 9, dtype=float).reshape(7, 9)
    out = em.bin_image(z, 2)
    assert out.shape == (3, 4)
    assert out[0, 0] == pytest.approx(np.mean([0, 1, 9, 10]))
    assert em.bin_image(z, 2, reduce="sum")[0, 0] == 20
    assert em.bin_image(z, (1, 3)).shape == (7, 3)
    img = _calibrated(z, scale=0.5)
    b = em.bin_image(img, 2)
    assert b.pixel_size == (1.0, 1.0) and b.axes[-1].offset == pytest.approx(2.0 + 0.25)
    assert b.provenance[-1]["operation"] == "bin_image"
    zn = z.copy()
    zn[0:2, 0:2] = np.nan
    zn[2, 2] = np.nan
    bn = em.bin_image(zn, 2)
    assert np.isnan(bn[0, 0]) and bn[1, 1] == pytest.approx(np.mean([21, 29, 30]))
    with pytest.raises(InputError):
        em.bin_image(z, 10)


def test_crop_to_square():
    z = np.arange(6 * 10, dtype=float).reshape(6, 10)
    assert np.array_equal(em.crop_to_square(z), z[:, 2:8])
    assert np.array_equal(em.crop_to_square(z, "start"), z[:, :6])
    assert np.array_equal(em.crop_to_square(z, "end"), z[:, 4:])
    img = _calibrated(z, scale=0.5)
    c = em.crop_to_square(img)
    assert c.shape == (6, 6) and c.axes[-1].offset == pytest.approx(2.0 + 2 * 0.5)
    assert c.axes[-2].offset == pytest.approx(1.0)


def test_resize_antialias_and_calibration(rng):
    z = rng.normal(0, 1, (64, 64))
    small = em.resize(z, (16, 16))
    assert small.shape == (16, 16)
    # antialiasing suppresses white noise far more than plain subsampling
    assert small.std() < 0.5 * em.resize(z, (16, 16), antialias=False, order=0).std()
    img = _calibrated(z, scale=0.1)
    r = em.resize(img, (32, 128))
    assert r.pixel_size == pytest.approx((0.2, 0.05))
    assert r.field_of_view == pytest.approx(img.field_of_view)
    ramp = np.tile(np.arange(8.0), (8, 1))
    assert np.allclose(em.resize(ramp, (8, 8)), ramp)
    zn = z.copy()
    zn[:8] = np.nan
    rn = em.resize(zn, (32, 32))
    assert np.isnan(rn[:4]).all() and np.isfinite(rn[4:]).all()
