"""The lattice prior (``AtomsConfig.lattice_prior``): the neighbours' prediction of each atom, and its
inverse-variance combination with the measurement, which must keep real displacements."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.tasks.atoms.postprocess import lattice_prediction, lattice_prior


def _two_sublattices(n: int = 40, a: float = 8.0):
    """A square lattice (class 0) with a second one at the cell centres (class 1): ``(row, col)`` px."""
    g = np.arange(n) * a
    yy, xx = np.meshgrid(g, g, indexing="ij")
    p0 = np.stack([yy.ravel(), xx.ravel()], 1) + 5.0
    p1 = p0 + a / 2
    return np.concatenate([p0, p1]), np.r_[np.zeros(len(p0), int), np.ones(len(p1), int)]


def test_the_midpoints_predict_an_affine_lattice_exactly_and_leave_the_border_alone():
    p, cls = _two_sublattices(12)
    f = np.array([[1.03, 0.02], [-0.04, 0.98]])  # strain, shear and rotation
    q = p @ f.T + [3.0, -2.0]
    pred, var, pairs = lattice_prediction(q, cls, np.full(len(q), 0.1))
    have = np.isfinite(pred[:, 0])
    np.testing.assert_allclose(pred[have], q[have], atol=1e-9)
    # class 0 sits on the corners of the grid: its corner atoms have no bracketing pair, its inner ones 4
    corners = (np.isin(p[:, 0], p[cls == 0, 0].min()) | np.isin(p[:, 0], p[cls == 0, 0].max())) & \
        (np.isin(p[:, 1], p[cls == 0, 1].min()) | np.isin(p[:, 1], p[cls == 0, 1].max())) & (cls == 0)
    assert not have[corners].any()
    inner = (cls == 0) & (np.abs(p - p[cls == 0].mean(0)) < 30).all(1)
    assert (pairs[inner] == 4).all()  # two axes and two diagonals
    np.testing.assert_allclose(var[inner], 0.1 ** 2 / 2 / 4)  # four midpoints, each (0.01 + 0.01) / 4


def test_on_a_regular_lattice_the_prior_lowers_the_error_and_its_sigma_stays_calibrated():
    rng = np.random.default_rng(0)
    p, cls = _two_sublattices(30)
    meas = p + rng.normal(0, 0.1, p.shape)
    out = lattice_prior(meas, np.full(len(p), 0.1), cls)
    inner = np.isfinite(out["prediction"][:, 0])
    before = np.sqrt(((meas - p)[inner] ** 2).sum(1).mean())
    after = np.sqrt(((out["positions"] - p)[inner] ** 2).sum(1).mean())
    assert after < 0.55 * before
    assert (out["weight"][inner] < 0.5).mean() > 0.9
    inside = (np.abs(out["positions"] - p)[inner] <= out["sigma"][inner, None]).mean()
    assert 0.6 < inside < 0.76


def test_real_displacements_are_kept_a_shifted_sublattice_region_a_strain_gradient_and_a_single_column():
    rng = np.random.default_rng(1)
    a = 8.0
    p, cls = _two_sublattices(40, a)
    size = p.max() + 5
    truth = p.copy()
    truth[:, 1] += 0.5 * 0.03 * p[:, 1] ** 2 / size  # a strain gradient: exx from 0 to 3 % across the field
    region = (cls == 1) & (np.abs(p - size / 2) < size / 4).all(1)
    truth[region, 1] += 0.3  # a polar shift of one sublattice inside a region
    single = np.flatnonzero((cls == 0) & (np.abs(p - [size / 4, size / 4]) < a / 2).all(1))[0]
    truth[single, 0] += 1.0  # one column displaced by 10 sigma (a dopant's relaxation)
    errs = []
    for _ in range(8):
        meas = truth + rng.normal(0, 0.1, p.shape)
        out = lattice_prior(meas, np.full(len(p), 0.1), cls)
        errs.append(out["positions"] - truth)
        assert abs(out["positions"][single, 0] - truth[single, 0]) < 0.35  # kept (gated), not pulled 1 px back
    e = np.mean(errs, 0)  # per-atom bias over 8 noise draws (noise 0.1 / sqrt(8) = 0.035 px)
    inner = np.isfinite(out["prediction"][:, 0])
    d_edge = (size / 4 - np.abs(p - size / 2)).min(1)  # px inside the region's edge
    interior = region & (d_edge > 1.5 * a)
    edge = region & (d_edge <= 1.5 * a)
    # the region's shift is kept: exactly inside, within a fraction of the noise at its edge
    assert abs(e[interior, 1].mean()) < 0.01
    assert abs(e[edge, 1].mean()) < 0.06
    assert abs(e[region, 1].mean()) < 0.04
    # the strain gradient is kept everywhere (no bias growing along it)
    far = inner & ~region & (np.abs(d_edge) > 1.5 * a)
    for lo in np.linspace(0, size, 5)[:-1]:
        band = far & (p[:, 1] >= lo) & (p[:, 1] < lo + size / 4)
        assert abs(e[band, 1].mean()) < 0.01
    # and away from the region's edge the error is lower than the measurement's
    rms = np.sqrt(np.mean([((x[far]) ** 2).sum(1).mean() for x in errs]))
    assert rms < 0.1


def test_per_column_disorder_raises_the_prediction_variance_and_lowers_the_pull():
    rng = np.random.default_rng(2)
    p, cls = _two_sublattices(30)
    noise = np.full(len(p), 0.05)
    calm = lattice_prior(p + rng.normal(0, 0.05, p.shape), noise, cls)
    disordered = p + rng.normal(0, 0.2, p.shape)  # real static displacements, 4x the measurement noise
    wild = lattice_prior(disordered + rng.normal(0, 0.05, p.shape), noise, cls)
    inner = np.isfinite(wild["prediction"][:, 0])
    assert np.median(wild["displacement_sd"][inner]) == pytest.approx(0.2, rel=0.25)
    assert np.median(wild["weight"][inner]) > 0.85 > 0.5 > np.median(calm["weight"][inner])
    # the disordered positions are kept: the error stays near the measurement's
    assert np.sqrt(((wild["positions"] - disordered)[inner] ** 2).mean()) < 0.06


def test_too_few_atoms_or_no_sigma_leave_the_positions_alone():
    p = np.array([[0.0, 0.0], [0.0, 5.0]])
    out = lattice_prior(p, np.array([0.1, 0.1]))
    np.testing.assert_array_equal(out["positions"], p)
    q, cls = _two_sublattices(6)
    out = lattice_prior(q + 0.05, np.full(len(q), np.inf), cls)
    np.testing.assert_array_equal(out["positions"], q + 0.05)
    assert (out["weight"] == 1).all()


def test_atom_table_applies_the_prior_only_when_asked_and_adds_the_model_mismatch_term():
    from scopenet.simulate.em.lattice import render_gaussians
    from scopenet.tasks.atoms import postprocess as pp
    from scopenet.tasks.atoms.config import AtomsConfig

    p, _ = _two_sublattices(14, 9.0)
    p = p[(p < 122).all(1)]
    heat = render_gaussians((128, 128), p, np.ones(len(p)), 1.2)
    img = np.random.default_rng(3).poisson(render_gaussians((128, 128), p, np.full(len(p), 60.0), 1.5) + 3.0)
    peaks, conf = np.rint(p).astype(int), np.ones(len(p))
    off = pp.atom_table(img.astype(float), heat, peaks, conf, AtomsConfig())["columns"]
    on = pp.atom_table(img.astype(float), heat, peaks, conf, AtomsConfig(lattice_prior=True))["columns"]
    assert (off["prior_weight"] == 1).all()
    moved = on["prior_weight"] < 1
    assert moved.mean() > 0.5
    assert (on["sigma_px"][moved] < off["sigma_px"][moved]).all()
    np.testing.assert_array_equal(on["x"][~moved], off["x"][~moved])
    err = lambda c: np.sqrt(np.mean((np.stack([c["y"], c["x"]], 1) - p)[moved] ** 2))  # noqa: E731
    assert err(on) < err(off)
    mis = pp.atom_table(img.astype(float), heat, peaks, conf, AtomsConfig(mismatch_fraction=0.1,
                                                                          mismatch_fraction_small=0.1))["columns"]
    np.testing.assert_allclose(mis["sigma_model_px"], 0.1 * mis["width_px"])
    np.testing.assert_allclose(mis["sigma_px"], np.sqrt(off["sigma_px"] ** 2 + mis["sigma_model_px"] ** 2))
