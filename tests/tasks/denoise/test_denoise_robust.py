"""Robust input handling: percentile scaling (scopenet.image.scaling.robust_unit_scale) and the
denoiser's ``normalise="robust"`` predict path."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.image.scaling import robust_unit_scale, unit_scale


def _img(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((64, 64))


def test_hot_pixels_do_not_squash_the_range():
    x = _img()
    hot = x.copy()
    hot[3, 4], hot[10, 10] = 1e5, -1e4
    u, s = robust_unit_scale(hot)
    ref, _ = robust_unit_scale(x)
    ok = np.ones(x.shape, bool)
    ok[3, 4] = ok[10, 10] = False
    assert np.abs(u - ref)[ok].max() < 0.01 and u[3, 4] == 1 and u[10, 10] == 0  # outliers clipped
    assert unit_scale(hot)[0][ok].std() < 1e-3  # min-max scaling is squashed by two pixels
    assert s.inverse(u)[20, 20] == pytest.approx(hot[20, 20], rel=1e-5)


def test_any_input_scale_and_nan():
    x = _img(1)
    u1, _ = robust_unit_scale(x)
    u2, s2 = robust_unit_scale(5000.0 * x - 300.0)  # counts with a negative offset
    assert np.allclose(u1, u2, atol=1e-5)
    y = x.copy()
    y[5, 5] = np.nan
    y[6, 6] = np.inf
    u3, _ = robust_unit_scale(y)
    assert np.isfinite(u3).all()
    flat = np.zeros((100, 100))
    flat[0, 0] = 1.0  # percentiles coincide: falls back to the full range
    assert robust_unit_scale(flat)[1].span == 1.0
    with pytest.raises(InputError):
        robust_unit_scale(x, (50, 10))
    with pytest.raises(InputError):
        robust_unit_scale(np.full((3, 3), np.nan))


def test_denoiser_robust_path_ignores_hot_pixels_and_scale():
    from scopenet.tasks.denoise import Denoiser

    rng = np.random.default_rng(2)
    clean = np.kron(rng.random((8, 8)), np.ones((8, 8)))
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    den = Denoiser(arch_config={"widths": [4, 8]}, normalise="robust")
    assert den.config.normalise == "robust"
    a = den.predict(noisy)
    spiky = noisy.copy()
    spiky[0, 0] = 1e4
    spiky[9, 9] = np.nan
    b = den.predict(spiky)
    assert np.isnan(b[9, 9]) and np.isfinite(np.delete(b.ravel(), 9 * 64 + 9)).all()
    far = np.ones(a.shape, bool)
    far[:12, :12] = False  # away from the spike/NaN (the network's receptive field)
    assert np.abs(a - b)[far].max() < 0.01  # only the percentiles move a little
    mm = Denoiser(arch_config={"widths": [4, 8]})
    mm.net_.load_state_dict(den.net_.state_dict())
    assert np.abs(mm.predict(noisy) - mm.predict(spiky))[far].max() > 0.1  # min-max scaling is squashed
    c = den.predict(1000.0 * noisy - 50.0)
    assert np.allclose(c, 1000.0 * a - 50.0, atol=1e-2)
    assert mm.config.normalise == "minmax"  # existing models keep min-max scaling
