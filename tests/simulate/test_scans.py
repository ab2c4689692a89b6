"""Scan paths and partial scans: Ede's spiral coverages, mask coverages, selection and infill."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.simulate import scans

# nominal 1/16 .. 1/100 -> actual coverages quoted by Ede (partial STEM, Fig. 6 and Figs. S6-S12)
EDE_SPIRAL = [(16, 17.9), (25, 27.3), (36, 38.2), (49, 50.0), (64, 60.5), (81, 73.7), (100, 87.0)]


@pytest.mark.parametrize("nominal,actual", EDE_SPIRAL)
def test_spiral_reproduces_ede_coverages(nominal, actual):
    m = scans.spiral_mask(512, 1 / nominal)
    assert m.shape == (512, 512) and m.dtype == bool
    assert round(1 / m.mean(), 1) == actual


def test_spiral_path_geometry():
    pts = scans.spiral_path(512, 1 / 16)
    assert pts.shape == (10_000, 2)
    # starts at the canvas centre (725 / 2 = 362.5) in crop coordinates (offset (725 - 512) // 2 = 106)
    np.testing.assert_allclose(pts[0], [362.5 - 106, 362.5 - 106])
    r = np.hypot(*(pts - pts[0]).T)
    assert r.max() < 362.5  # theta sampled without its end point
    # successive turns are 1/c = 16 px apart along a ray
    k = 16 / (2 * np.pi)
    np.testing.assert_allclose(r[1:50], k * np.linspace(0, 362.5 / k, 10_000, endpoint=False)[1:50])


@pytest.mark.parametrize("target", [1 / 20, 1 / 45])
def test_calibrate_spiral_within_one_percent(target):
    c = scans.calibrate_spiral(512, target)
    assert abs(scans.spiral_mask(512, c).mean() / target - 1) <= 0.01
    assert c > target  # crop + diagonal lines lose coverage


@pytest.mark.parametrize("kind,tol", [("spiral", 0.01), ("grid", 0.03), ("random", 0.001),
                                      ("segments", 0.001), ("lissajous", 0.01)])
@pytest.mark.parametrize("coverage", [1 / 10, 1 / 40])
def test_masks_have_requested_coverage(kind, tol, coverage):
    m = scans.make_mask(kind, 256, coverage, np.random.default_rng(3))
    assert m.shape == (256, 256) and m.dtype == bool
    assert abs(m.mean() / coverage - 1) <= tol


def test_sublattice_every_sth_pixel():
    m = scans.sublattice_mask(64, step=4, offset=(1, 2))
    assert m.mean() == 1 / 16
    assert m[1, 2] and m[5, 6] and not m[0, 0]
    assert scans.make_mask("sublattice", 64, 1 / 25).mean() == 13**2 / 64**2  # step 5: rows 0, 5, .., 60


def test_jittered_grid_lines_stay_in_channel_and_are_connected():
    rng = np.random.default_rng(0)
    w = scans._walk(1000, 3, rng)
    assert np.abs(w).max() <= 3 and np.abs(np.diff(w)).max() <= 1
    m = scans.jittered_grid_mask(128, 1 / 8, rng)
    # every column holds at least one pixel of each horizontal line -> >= n_h per column
    assert (m.sum(0) >= 8).all()


def test_masks_reproducible_from_rng():
    for k in scans.MASK_KINDS:
        a = scans.make_mask(k, 96, 1 / 12, np.random.default_rng(7))
        b = scans.make_mask(k, 96, 1 / 12, np.random.default_rng(7))
        assert np.array_equal(a, b), k


def test_unknown_kind_and_bad_coverage():
    with pytest.raises(InputError, match="unknown mask kind"):
        scans.make_mask("zigzag", 64, 0.1)
    with pytest.raises(InputError, match="coverage"):
        scans.make_mask("random", 64, 0.0, np.random.default_rng())


def test_partial_scan_binary_and_blurred_dwell(rng):
    img = rng.uniform(0.1, 1, (64, 64)).astype(np.float32)
    m = scans.random_pixels_mask(64, 0.1, rng)
    b = scans.partial_scan(img, m, "binary")
    assert np.array_equal(b[m], img[m]) and not b[~m].any()
    d = scans.partial_scan(img, m, "blurred_dwell", rng=np.random.default_rng(1))
    assert np.array_equal(d[m], img[m])  # scanned pixels kept exactly
    assert (d[~m] != 0).any() and (d[~m] < 2 * img[~m]).all() and (d >= 0).all()
    # a float mask is Phi itself: Phi = 0 -> 0, Phi = 1 -> I, between -> I * Phi * eta with eta in [Phi, 1+...)
    phi = np.full((64, 64), 0.5, np.float32)
    e = scans.partial_scan(img, phi, "blurred_dwell", rng=np.random.default_rng(1)) / img
    assert (e >= 0.25 - 1e-6).all() and (e < 0.75).all()
    with pytest.raises(InputError):
        scans.partial_scan(img, m, "sparkly")
    with pytest.raises(InputError, match="shape"):
        scans.partial_scan(img, m[:10], "binary")


def test_nn_infill_exact_on_scanned_and_nearest_elsewhere(rng):
    img = rng.normal(size=(48, 48)).astype(np.float32)
    m = scans.random_pixels_mask(48, 0.05, rng)
    out = scans.nn_infill(scans.partial_scan(img, m), m)
    assert np.array_equal(out[m], img[m])
    # brute-force nearest neighbour for a few unscanned pixels
    sr, sc = np.nonzero(m)
    for r, c in zip(*np.nonzero(~m)[:2]):
        if (r + c) % 97:
            continue
        d = (sr - r) ** 2 + (sc - c) ** 2
        assert out[r, c] in img[sr[d == d.min()], sc[d == d.min()]]
    batch = scans.nn_infill(np.stack([img, 2 * img]), m)
    assert np.array_equal(batch[1], 2 * out)


def test_with_mask_channel_shapes():
    p = np.ones((5, 5), np.float32)
    m = np.eye(5, dtype=bool)
    x = scans.with_mask_channel(p, m)
    assert x.shape == (2, 5, 5) and np.array_equal(x[1], m.astype(np.float32))
    assert scans.with_mask_channel(np.ones((3, 5, 5)), m).shape == (3, 2, 5, 5)


def test_scan_time_model():
    n = 64
    full = np.ones((n, n), bool)
    t = scans.scan_time(full, dwell=1e-6, flyback=10e-6, settle=0.0, speed=np.inf)
    # raster order of a full mask: adjacent within rows, one jump per new row
    assert t.n_probed == n * n and t.n_jumps == n - 1 and t.dose_reduction == 1
    sub = scans.scan_time(scans.sublattice_mask(n, 4), dwell=1e-6)
    assert sub.dose_reduction == 16
    # a straight path scanned continuously: length and time
    path = np.stack([np.full(101, 10.0), np.linspace(0, 50, 101)], 1)
    st = scans.scan_time(path, dwell=2e-6, size=n)
    assert st.n_jumps == 0 and st.path_length_px == pytest.approx(50)
    assert st.time_s == pytest.approx(100e-6) and st.dose_reduction == pytest.approx(n * n / 50)
    sp = scans.scan_time(scans.spiral_path(512, 1 / 16), size=512)
    # an infinite spiral at c = 1/16 has length ~ pi c R^2 over the canvas, ~16x dose reduction inside
    assert sp.path_length_px == pytest.approx(np.pi / 16 * 362.5**2, rel=0.01)
    assert sp.dose_reduction == pytest.approx(16, rel=0.02)


def test_batch_seed_reproducible():
    a = scans.simulate_batch(3, 64, seed=5, kind="mixed")
    b = scans.simulate_batch(3, 64, seed=5, kind="mixed")
    assert np.array_equal(a["masks"], b["masks"]) and a["kinds"] == b["kinds"]


def test_gallery_png():
    png = scans.gallery_png(0, size=64)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
