"""Physics of each effect of the EM degradation model (scopenet.simulate.em.degrade)."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.simulate.em import degrade as dg


def _rng(s=0):
    return np.random.default_rng(s)


def test_poisson_gaussian_variance_is_gain_times_mean_plus_read_squared():
    gain, off, read, dose = 3.0, 40.0, 5.0, 50.0
    for level in (0.2, 1.0):
        x = dg.poisson_gaussian(np.full((200, 200), level), dose, _rng(1), gain, off, read)
        m, v = float(x.mean()), float(x.var())
        assert m == pytest.approx(gain * dose * level + off, rel=0.01)
        assert v == pytest.approx(gain * (m - off) + read ** 2, rel=0.05)
    with pytest.raises(InputError):
        dg.poisson_gaussian(np.full((4, 4), -1.0), 1.0, _rng())


def test_row_noise_moves_row_means_not_column_means():
    x = dg.row_noise(np.zeros((256, 256)), _rng(2), sigma=2.0)
    assert np.std(x.mean(1)) == pytest.approx(2.0, rel=0.15)
    assert np.std(x.mean(0)) < 1e-6  # every column gets the same set of offsets
    assert np.allclose(x, x[:, :1])   # constant along each line
    c = dg.row_noise(np.zeros((4000, 2)), _rng(3), sigma=1.0, correlation=0.8)[:, 0]
    assert np.corrcoef(c[1:], c[:-1])[0, 1] == pytest.approx(0.8, abs=0.05)
    assert c.std() == pytest.approx(1.0, rel=0.1)


def test_fast_scan_lag_correlates_noise_along_lines_only_and_keeps_mean():
    n = _rng(4).normal(0, 1, (300, 300)) + 5
    y = dg.fast_scan_lag(n, 1.0)
    y0 = y - y.mean()
    along = np.mean(y0[:, 1:] * y0[:, :-1]) / y0.var()
    across = np.mean(y0[1:] * y0[:-1]) / y0.var()
    k = 1 - np.exp(-1.0)
    assert along == pytest.approx(1 - k, abs=0.03)  # AR(1) with coefficient 1 - k
    assert abs(across) < 0.03
    assert y.mean() == pytest.approx(5.0, abs=0.02)


def test_mtf_reduces_power_by_the_set_amount():
    h = 128
    q = 8 / h  # cycles/px
    img = np.sin(2 * np.pi * q * np.arange(h))[None, :].repeat(h, 0) + 1
    sigma = 1.5
    out = dg.mtf(img, sigma)
    ratio = np.var(out - out.mean()) / np.var(img - img.mean())
    assert ratio == pytest.approx(np.exp(-4 * np.pi ** 2 * sigma ** 2 * q ** 2), rel=1e-3)
    assert out.mean() == pytest.approx(1.0, abs=1e-6)


def _edge(h=64, w=64):
    img = np.zeros((h, w))
    img[:, w // 2:] = 1.0
    return img


def _edge_pos(rows):  # sub-pixel position of the 0->1 edge on each line (linear interpolation)
    return rows.sum(1)


def test_line_jitter_displaces_each_line_by_its_drawn_shift():
    img = np.clip(np.arange(64)[None, :].repeat(64, 0) / 4.0 - 6, 0, 1)  # a ramp 24..28 px
    x, sh = dg.line_jitter(img, _rng(5), sigma_x=1.0)
    assert sh[:, 1].std() == pytest.approx(1.0, rel=0.3) and np.all(sh[:, 0] == 0)
    # a ramp of slope 1/4 sampled at j + dx: the edge appears dx px earlier
    moved = _edge_pos(img) - _edge_pos(x)
    assert np.allclose(moved, -sh[:, 1], atol=0.05)


def test_line_shifts_touch_only_the_chosen_fraction():
    img = np.clip(np.arange(64)[None, :].repeat(400, 0) / 4.0 - 6, 0, 1)
    x, sh = dg.line_shifts(img, _rng(6), fraction=0.1, amplitude=2.0)
    moved = sh[:, 1] != 0
    assert 0.05 < moved.mean() < 0.15 and np.abs(sh[:, 1]).max() <= 2.0
    assert np.allclose(x[~moved], img[~moved], atol=1e-6)


def test_flyback_displaces_line_starts_and_settles():
    img = np.arange(100, dtype=float)[None, :].repeat(3, 0)  # x coordinate as intensity
    x = dg.flyback(img, amplitude=3.0, decay=5.0)
    assert x[0, 0] == pytest.approx(3.0, abs=1e-4)                       # j + A exp(0)
    assert x[0, 10] == pytest.approx(10 + 3 * np.exp(-2), abs=1e-4)
    assert x[0, 80] == pytest.approx(80.0, abs=1e-4)                     # settled
    with pytest.raises(InputError):
        dg.flyback(img, 1.0, 0.0)


def test_drift_shears_a_vertical_edge_by_the_drift():
    img = np.clip(np.arange(64)[None, :].repeat(65, 0) / 4.0 - 6, 0, 1)
    x = dg.drift(img, 0.0, 4.0)
    shift = _edge_pos(img) - _edge_pos(x)  # first line 0, last line +4 px
    assert shift[0] == pytest.approx(0.0, abs=1e-6) and shift[-1] == pytest.approx(-4.0, abs=0.05)
    assert np.allclose(np.diff(shift), -4.0 / 64, atol=1e-3)


def test_xray_spikes_count_and_amplitude():
    rate, amp = 1e-3, 50.0
    x, pos = dg.xray_spikes(np.zeros((300, 300)), _rng(7), rate, amp)
    n = len(pos)
    assert abs(n - rate * 300 * 300) < 4 * np.sqrt(rate * 300 * 300)
    hit = x > 0
    assert set(np.unique(x[hit]) / amp) <= set(range(1, 5))              # each hit adds exactly amp
    assert x.sum() == pytest.approx(n * amp)
    x2, pos2 = dg.xray_spikes(np.zeros((100, 100)), _rng(8), 1e-3, 1.0, size=2)
    assert x2.sum() == pytest.approx(4 * len(pos2))


def test_dead_pixels_fraction():
    x = dg.dead_pixels(np.ones((300, 300)), _rng(9), 0.01, value=-5)
    assert (x == -5).mean() == pytest.approx(0.01, rel=0.15)


def test_charging_streaks_decay_along_the_fast_axis():
    img = np.zeros((50, 200))
    img[25, 40] = 1.0  # the only bright pixel: every streak starts there
    x, starts = dg.charging_streaks(img, _rng(10), n=1, amplitude=2.0, length=10.0, lines=2)
    assert tuple(starts[0]) == (25, 40)
    tail = x[25, 40:] - img[25, 40:]
    assert np.allclose(tail[:60], 2.0 * np.exp(-np.arange(60) / 10.0))
    assert np.all(x[25, :40] == 0) and np.allclose(x[26, 41:], x[25, 41:]) and np.all(x[27] == 0)


def test_resample_period_scales_the_lattice_period():
    p = 4.0
    img = 0.5 + 0.5 * np.cos(2 * np.pi * np.arange(256) / p)[None, :].repeat(256, 0)
    for zoom in (0.5, 2.5):
        out = dg.resample_period(img, zoom, (128, 128), _rng(11))
        spec = np.abs(np.fft.rfft(out.mean(0) - out.mean()))
        assert np.fft.rfftfreq(128)[np.argmax(spec)] == pytest.approx(1 / (p * zoom), abs=1 / 128)


def test_degrade_chain_is_seeded_and_truth_in_detector_units():
    clean = _rng(12).random((64, 64))
    for mod in dg.MODALITIES:
        p = dg.random_degradation(_rng(13), mod)
        assert p.modality == mod
        assert dg.Degradation.model_validate(p.model_dump()) == p  # round trip
        a = dg.degrade(clean, p, _rng(14))
        b = dg.degrade(clean, p, _rng(14))
        assert np.array_equal(a[0], b[0]) and a[0].dtype == np.float32
        geo = clean
        if mod != "tem":
            geo = dg.drift(geo, p.drift_y, p.drift_x) if (p.drift_x or p.drift_y) else geo
            geo = dg.flyback(geo, p.flyback_amplitude, p.flyback_decay) if p.flyback_amplitude else geo
        assert np.allclose(a[1], p.gain * p.dose * geo + p.offset, rtol=1e-5, atol=1e-2)
    plain = dg.Degradation(modality="stem", dose=1e6)  # shot noise only, huge dose: noisy ~ truth
    n, t, _ = dg.degrade(clean, plain, _rng(15))
    assert np.abs(n - t).max() / 1e6 < 0.01
    with pytest.raises(InputError):
        dg.random_degradation(_rng(), "afm")
