"""The atom-finding training data (scopenet.simulate.em.atoms): exact positions, splits, dose, spacing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from scopenet.errors import InputError
from scopenet.simulate.em.atoms import (HELD_OUT_STRUCTURES, atom_image, detector_noise, heatmap, render_columns, spm_atom_image,
                                        structures)


def test_splits_are_disjoint_and_cover_the_library():
    train = {c.name for c in structures("train")}
    held = {c.name for c in structures("held_out")}
    assert train and held and not train & held
    assert train | held == {c.name for c in structures("all")}
    assert any(n.startswith("Cu ") for n in held) and "GaN [110]" in held and "GaN [001]" in train
    assert all(n.split(" ")[0] not in HELD_OUT_STRUCTURES for n in train)
    with pytest.raises(InputError, match="split"):
        structures("test")


def test_jittered_column_centroid_is_the_recorded_position():
    rng = np.random.default_rng(1)
    jitter = rng.normal(0, 0.3, 40)
    pos = np.array([[17.3, 20.6]])
    img, rec = render_columns((40, 40), pos, np.ones(1), 2.0, jitter, truncate=6.0)
    yy, xx = np.mgrid[0:40, 0:40]
    cx = (img * xx).sum() / img.sum()
    cy = (img * yy).sum() / img.sum()
    assert rec[0, 0] == pos[0, 0]
    assert rec[0, 1] == pytest.approx(cx, abs=1e-6) and cy == pytest.approx(17.3, abs=1e-6)
    assert abs(rec[0, 1] - 20.6) > 1e-3  # the jitter did move it
    plain, rec0 = render_columns((40, 40), pos, np.ones(1), 2.0)
    np.testing.assert_array_equal(rec0, pos)
    assert plain.max() == pytest.approx(np.exp(-(0.3 ** 2 + 0.4 ** 2) / 8), rel=1e-6)  # peak 1 at (17.3, 20.6)


def test_clean_stem_image_peaks_sit_on_the_ground_truth():
    rng = np.random.default_rng(3)
    cell = next(c for c in structures("train") if c.name == "Au [100]")
    a = atom_image(rng, 96, cell=cell, spacing_px=12.0, dose=1e6, sigma_frac=0.2, region="full",
                   distortion=0.0, jitter_px=0.0, support=0.0)
    assert a.image.shape == (96, 96) and a.atoms.shape[1] == 2 and len(a.atoms) > 30
    assert (a.atoms >= 0).all() and (a.atoms <= 95).all()
    # expected counts: about `dose` at a column's centre
    r, c = np.rint(a.atoms).astype(int).T
    assert np.median(a.clean[r, c]) == pytest.approx(1e6, rel=0.25)
    d = cKDTree(a.atoms).query(a.atoms, 2)[0][:, 1]
    assert np.median(d) == pytest.approx(12.0, rel=0.1)
    # a Gaussian fitted to each interior column of the noise-free image sits on its true position
    from scipy.optimize import curve_fit

    yy, xx = np.mgrid[-5:6, -5:6]
    inner = ((a.atoms > 8) & (a.atoms < 87)).all(1)
    for y, x in a.atoms[inner][:6]:
        iy, ix = int(round(y)), int(round(x))
        patch = a.clean[iy - 5:iy + 6, ix - 5:ix + 6].ravel()

        def g(_, a0, y0, x0, s):
            return a0 * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s)).ravel()

        p, _ = curve_fit(g, None, patch, p0=[patch.max(), 0, 0, 2])
        assert iy + p[1] == pytest.approx(y, abs=0.02) and ix + p[2] == pytest.approx(x, abs=0.02)


def test_dose_scales_the_counts_and_faint_columns_are_not_ground_truth():
    cell = next(c for c in structures("train") if c.name == "SrTiO3 [100]")
    kw = dict(cell=cell, spacing_px=8.0, sigma_frac=0.2, region="full", distortion=0.0, jitter_px=0.0,
              support=0.0)
    lo = atom_image(np.random.default_rng(5), 64, dose=20.0, **kw)
    hi = atom_image(np.random.default_rng(5), 64, dose=2000.0, **kw)
    np.testing.assert_allclose(hi.clean, lo.clean * 100, rtol=1e-4)
    assert np.array_equal(lo.image, np.round(lo.image)) and lo.image.min() >= 0  # Poisson counts
    # SrTiO3 [100]: Sr and Ti-O columns are found, pure-O columns (Z^1.7 ~ 7 % of Sr) are too faint
    assert set(np.unique(lo.classes)) <= {0, 1} and len(lo.atoms) < 2.2 * (64 / cell.min_spacing / 8 * 3.905) ** 2


def test_spm_surface_has_exact_positions_and_two_sublattices():
    a = spm_atom_image(np.random.default_rng(2), 96, spacing_px=10.0, snr=10.0, lattice="honeycomb")
    assert a.params["kind"] == "spm" and set(np.unique(a.classes)) == {0, 1}
    d = cKDTree(a.atoms).query(a.atoms, 2)[0][:, 1]
    assert np.median(d) == pytest.approx(10.0, rel=0.1)
    with pytest.raises(InputError, match="lattice"):
        spm_atom_image(np.random.default_rng(2), 64, lattice="kagome")


def test_heatmap_has_unit_peaks_at_atoms():
    h = heatmap((32, 32), np.array([[10.0, 12.0], [20.0, 5.0]]), 1.0)
    assert h.dtype == np.float32 and h.max() <= 1.0
    assert h[10, 12] == pytest.approx(1.0) and h[20, 5] == pytest.approx(1.0) and h[0, 31] == 0.0


def test_detector_noise_smears_along_the_fast_scan_and_keeps_the_truth():
    cell = next(c for c in structures("train") if c.name == "SrTiO3 [100]")
    kw = dict(cell=cell, spacing_px=8.0, sigma_frac=0.2, region="full", distortion=0.0, jitter_px=0.0,
              support=0.0, dose=200.0)
    plain = atom_image(np.random.default_rng(11), 96, **kw)
    det = atom_image(np.random.default_rng(11), 96, detector=True, **kw)
    np.testing.assert_array_equal(det.atoms, plain.atoms)  # a symmetric smear moves no column
    # the pedestal: a diffuse background under the columns, with its shot noise
    np.testing.assert_allclose(det.clean, plain.clean + det.params["pedestal"] * 200.0, rtol=1e-5)
    assert "pedestal" not in plain.params and {"line_offset", "line_gain", "read_noise", "scan_axis"} <= set(det.params)
    assert not np.array_equal(det.image, np.round(det.image))  # no longer counts
    # on a flat field the noise is correlated along x (the fast scan), as the smear says, and not along y
    rng = np.random.default_rng(8)
    flat, p = detector_noise(rng, rng.poisson(100.0, (128, 128)).astype(np.float32), 100.0)
    assert p["scan_axis"] == 0 and p["read_noise"] < 0.1  # a transposed scan: the fast scan runs along y
    flat = flat.T
    r = flat.astype(float) - flat.mean(1, keepdims=True)  # the per-line offsets removed
    cx = np.mean(r[:, 1:] * r[:, :-1]) / np.mean(r * r)
    cy = np.mean(r[1:] * r[:-1]) / np.mean(r * r)
    assert p["fast_scan_sigma_px"] > 1.0 and cx > 0.5 and abs(cy) < 0.05
    # without the detector nothing extra is drawn: the same seed gives the same shot-noise image as before
    again = atom_image(np.random.default_rng(11), 96, **kw)
    np.testing.assert_array_equal(again.image, plain.image)


def test_faint_rendered_columns_are_recorded_apart_from_the_truth():
    from scopenet.simulate.em.atoms import VISIBLE_FRACTION, structures

    gan = next(c for c in structures("held_out") if c.name == "GaN [110]")
    ex = atom_image(np.random.default_rng(3), 96, cell=gan, spacing_px=8.0, dose=1000, support=0.0, region="full")
    faint = ex.params["faint_columns"]
    assert faint.dtype == np.float64 and faint.shape[1] == 2 and abs(len(faint) - len(ex.atoms)) <= 3  # one N per Ga
    assert ((faint >= 0) & (faint <= 95)).all()
    d = np.hypot(*(faint[:, None, :] - ex.atoms[None, :, :]).transpose(2, 0, 1)).min(1)
    assert d.min() > 0.3 * ex.spacing_px  # N columns: apart from every Ga column
    # rendered (no support: half the image is 0), by less than VISIBLE_FRACTION of a Ga column's peak
    ij = np.rint(faint).astype(int)
    peak = float(np.median(ex.clean[tuple(np.rint(ex.atoms).astype(int).T)]))
    lift = ex.clean[ij[:, 0], ij[:, 1]]
    assert np.median(ex.clean) < 0.01 * peak and 0.03 * peak < np.median(lift) < VISIBLE_FRACTION * peak
