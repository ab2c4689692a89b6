"""Atom post-processing (peaks, refinement, classes, strain, spacing) and the classical baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from scopenet.errors import InputError
from scopenet.metrics.atoms import match_atoms
from scopenet.simulate.em.lattice import render_gaussians
from scopenet.tasks.atoms import postprocess as pp
from scopenet.tasks.atoms.baselines import BASELINES, log_com, maxima_gaussian


def _lattice(spacing=10.0, n=8, jitter=0.4, seed=0, stretch=(1.0, 1.0)):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2).astype(float)
    pos = (g * spacing + spacing) * np.array(stretch) + rng.uniform(-jitter, jitter, g.shape)
    size = int(np.ceil((n + 1) * spacing * max(stretch)))
    return pos, (size, size)


def test_gaussian_refinement_recovers_exact_positions_and_amplitudes():
    pos, shape = _lattice()
    amp = np.where(np.arange(len(pos)) % 2 == 0, 1.0, 0.5)
    img = render_gaussians(shape, pos, amp, 1.8) + 0.1
    fit = pp.refine_gaussian(img, np.rint(pos), radius=4.5)
    assert fit["ok"].all()
    np.testing.assert_allclose(fit["positions"], pos, atol=2e-3)
    np.testing.assert_allclose(fit["amplitude"], amp, rtol=1e-2)
    np.testing.assert_allclose(fit["width"], 1.8, rtol=1e-2)
    assert np.all(fit["sigma_pos"] < 0.01)  # no noise: a tiny least-squares uncertainty


def test_gaussian_uncertainty_grows_with_noise_and_tracks_the_error():
    pos, shape = _lattice(n=12)
    clean = render_gaussians(shape, pos, np.ones(len(pos)), 2.0) + 0.1
    rng = np.random.default_rng(1)
    out = {}
    for dose in (50, 2000):
        fit = pp.refine_gaussian(rng.poisson(clean * dose).astype(float), np.rint(pos), radius=4.5)
        err = fit["positions"] - pos
        out[dose] = (np.sqrt(np.mean(err ** 2)), np.median(fit["sigma_pos"]))
    assert out[50][1] > 3 * out[2000][1]
    for rms, sig in out.values():
        assert 0.5 < rms / sig < 2.0  # the least-squares sigma is the right size (calibrated further in bench)


def test_centre_of_mass_and_heatmap_refinement():
    img = render_gaussians((40, 40), np.array([[20.3, 15.6]]), np.ones(1), 2.0)
    np.testing.assert_allclose(pp.refine_com(img, np.array([[20, 16]]), 6.0), [[20.3, 15.6]], atol=0.05)
    heat = render_gaussians((40, 40), np.array([[10.25, 30.0]]), np.ones(1), 1.0)
    np.testing.assert_allclose(pp.refine_heatmap(heat, np.array([[10, 30]]), 1.5), [[10.25, 30.0]], atol=0.1)
    assert pp.refine_com(img, np.zeros((0, 2)), 3.0).shape == (0, 2)


def test_heatmap_peaks_threshold_and_separation():
    heat = render_gaussians((50, 50), np.array([[10.0, 10.0], [10.0, 13.0], [40.0, 40.0], [25.0, 5.0]]),
                            np.array([0.9, 0.8, 0.7, 0.2]), 1.0)
    pk, conf = pp.heatmap_peaks(heat, threshold=0.4, min_distance=1)
    assert sorted(map(tuple, pk.tolist())) == [(10, 10), (10, 13), (40, 40)]
    assert conf.min() > 0.4 and conf.max() <= 1.0
    pk2, _ = pp.heatmap_peaks(heat, threshold=0.4, min_distance=4)  # 3 px apart: one survives
    assert len(pk2) == 2
    assert pp.heatmap_peaks(np.zeros((8, 8)))[0].shape == (0, 2)


def test_intensity_classes_split_two_sublattices_but_not_a_few_dopants():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(1.0, 0.05, 200), rng.normal(0.5, 0.05, 200)])
    cls = pp.intensity_classes(two)
    assert set(cls) == {0, 1} and (cls[:200] == 0).all() and (cls[200:] == 1).all()  # 0 = brightest
    dopants = np.concatenate([rng.normal(1.0, 0.05, 390), rng.normal(2.0, 0.05, 10)])
    assert set(pp.intensity_classes(dopants)) == {0}
    assert set(pp.intensity_classes(dopants, n_classes=2)) == {0, 1}
    assert pp.intensity_classes(np.zeros(0)).shape == (0,)


def test_local_strain_of_a_stretched_lattice():
    pos, _ = _lattice(spacing=10.0, n=10, jitter=0.0)
    ref = np.array([[10.0, 0.0], [0.0, 10.0]])  # (row, col) rows
    st = pp.local_strain(pos * np.array([1.0, 1.02]), reference=ref)  # x (columns) stretched by 2 %
    inner = np.isfinite(st["exx"])
    assert inner.sum() > 50
    np.testing.assert_allclose(st["exx"][inner], 0.02, atol=1e-9)
    np.testing.assert_allclose(st["eyy"][inner], 0.0, atol=1e-9)
    np.testing.assert_allclose(st["exy"][inner], 0.0, atol=1e-9)
    # the reference found from the image itself: the average lattice, so no strain
    auto = pp.local_strain(pos)
    assert np.nanmax(np.abs(auto["exx"])) < 1e-9 and auto["reference"] is not None
    grid = pp.strain_map(pos[:, 1], pos[:, 0], st["exx"], (110, 110), step=10)
    assert grid.shape == (11, 11) and np.nanmean(grid) == pytest.approx(0.02)


def test_spacing_estimate_and_nearest_neighbours():
    pos, shape = _lattice(spacing=9.0, n=12, jitter=0.0)
    img = render_gaussians(shape, pos, np.ones(len(pos)), 1.5)
    assert pp.estimate_spacing(img) == pytest.approx(9.0, abs=0.6)
    np.testing.assert_allclose(pp.nearest_neighbour_distances(pos), 9.0)
    assert np.isnan(pp.nearest_neighbour_distances(np.zeros((1, 2)))).all()


def test_coordinates_from_tables_and_masks():
    df = pd.DataFrame({"x": [3.0, 7.5], "y": [1.0, 2.0]})
    np.testing.assert_array_equal(pp.coordinates_rc(df, (10, 10), False), [[1.0, 3.0], [2.0, 7.5]])
    np.testing.assert_array_equal(pp.coordinates_rc(np.array([[3.0, 1.0]]), (10, 10), False), [[1.0, 3.0]])
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 2:5] = 1
    mask[7, 8] = 2
    np.testing.assert_allclose(pp.coordinates_rc(mask, (10, 10), True), [[3.0, 3.0], [7.0, 8.0]])
    with pytest.raises(InputError, match="match"):
        pp.coordinates_rc(mask, (12, 10), True)
    with pytest.raises(InputError, match="'x'"):
        pp.coordinates_rc(pd.DataFrame({"a": [1]}), (10, 10), False)
    with pytest.raises(InputError, match="shape"):
        pp.coordinates_rc(np.zeros((3, 3)), (10, 10), False)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_find_a_clean_lattice(name):
    from scopenet.simulate.em.atoms import atom_image, structures

    cell = next(c for c in structures("train") if c.name == "Au [100]")
    a = atom_image(np.random.default_rng(4), 128, cell=cell, spacing_px=10.0, dose=1000.0, region="full",
                   sigma_frac=0.18, support=0.0, jitter_px=0.0)
    rc = BASELINES[name](a.image, spacing_px=a.spacing_px)
    m = match_atoms(a.atoms, rc, 0.3 * a.spacing_px)
    assert m.f1 > 0.95 and m.rms_px < 0.3
    assert {log_com, maxima_gaussian} == set(BASELINES.values())


def test_identical_columns_measured_with_little_noise_stay_one_class():
    """Two groups 5 % apart and tightly measured (border columns vs inner ones) are not two species;
    two sublattices 40 % apart are."""
    from scopenet.tasks.atoms.postprocess import intensity_classes

    rng = np.random.default_rng(0)
    same = np.r_[100 + 0.3 * rng.standard_normal(40), 95 + 0.3 * rng.standard_normal(24)]
    assert set(intensity_classes(same)) == {0}
    two = np.r_[100 + 2 * rng.standard_normal(32), 60 + 2 * rng.standard_normal(32)]
    lab = intensity_classes(two)
    assert (lab[:32] == 0).all() and (lab[32:] == 1).all()
    assert set(intensity_classes(same, min_contrast=0.0)) == {0, 1}  # the old rule split them


def test_faint_peaks_count_only_where_the_lattice_repeats_them():
    # a confident square lattice (8 px), a faint sublattice at the cell centres, faint bumps off the lattice
    g = np.arange(8.0, 80.0, 8.0)
    bright = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    sub = bright[(bright < 70).all(1)] + 4.0
    bumps = np.array([[10.0, 13.0], [45.0, 22.0], [70.0, 59.0]])  # 3 px or more from any lattice site
    pos = np.concatenate([bright, sub, bumps])
    val = np.concatenate([np.full(len(bright), 0.8), np.full(len(sub), 0.12), np.full(3, 0.12)])
    ok = pp.lattice_supported(pos, val, 0.2)
    assert ok[:len(bright)].all() and ok[len(bright):len(bright) + len(sub)].all() and not ok[-3:].any()
    # faint columns in a row on the border: three of the four partners (two along the edge, one inward)
    edge = np.concatenate([bright, [[0.0, 8.0], [0.0, 16.0], [0.0, 24.0]]])
    ok = pp.lattice_supported(edge, np.append(np.full(len(bright), 0.8), [0.1, 0.1, 0.1]), 0.2)
    assert ok[-2] and ok[-3] and ok[-1]  # the row's ends have two partners (inward and along the row)
    assert not pp.lattice_supported(edge, np.append(np.full(len(bright), 0.8), [0.1, 0.1, 0.1]), 0.2,
                                    min_partners=4)[-3:].any()
    # too few confident peaks for a lattice: the faint ones are dropped
    few = pp.lattice_supported(pos[:5], np.array([0.8, 0.8, 0.1, 0.1, 0.1]), 0.2)
    assert few.tolist() == [True, True, False, False, False]


def test_faint_peaks_far_from_every_confident_peak_are_dropped_with_a_reach():
    # a confident square lattice (8 px) with a faint sublattice at the cell centres, and away from it (a
    # particle's surroundings) a patch of faint support bumps that happen to repeat at the lattice vectors
    g = np.arange(8.0, 48.0, 8.0)
    bright = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    sub = bright[(bright < 40).all(1)] + 4.0
    h = np.arange(80.0, 104.0, 8.0)
    bumps = np.stack(np.meshgrid(h, h, indexing="ij"), -1).reshape(-1, 2) + 0.7
    pos = np.concatenate([bright, sub, bumps])
    val = np.concatenate([np.full(len(bright), 0.8), np.full(len(sub), 0.1), np.full(len(bumps), 0.1)])
    s = slice(len(bright), len(bright) + len(sub))
    ok = pp.lattice_supported(pos, val, 0.2)
    assert ok[s].all() and ok[-len(bumps):].all()  # without a reach the bumps support each other
    ok = pp.lattice_supported(pos, val, 0.2, reach=1.0)  # the sublattice is 0.71 nn from a confident peak
    assert ok[:len(bright)].all() and ok[s].all() and not ok[-len(bumps):].any()
    # three partners: the bump patch's corners (two partners) go, its centre (four) stays
    ok = pp.lattice_supported(pos, val, 0.2, min_partners=3)
    centre = len(pos) - len(bumps) + 4
    assert ok[centre] and not ok[len(pos) - len(bumps)]


def _grid(a1, a2, n, basis=((0.0, 0.0),), origin=(200.0, 200.0)):
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = i.reshape(-1, 1) * np.asarray(a1) + j.reshape(-1, 1) * np.asarray(a2)
    return np.concatenate([cells + np.asarray(b) for b in basis]) + np.asarray(origin)


def test_lattice_share_tells_crystals_from_random_bumps():
    rng = np.random.default_rng(3)
    square = _grid((10.0, 0.0), (0.0, 10.0), 8) + rng.normal(0, 0.3, (289, 2))
    hexa = 10.0 * np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    honeycomb = _grid(hexa[0], hexa[1], 8, basis=((0.0, 0.0), (5.0, 10 / (2 * np.sqrt(3)))))  # no centre of symmetry
    dumbbells = _grid((14.0, 0.0), (0.0, 20.0), 6, basis=((0.0, 0.0), (0.0, 3.5)))
    rot = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    grain = _grid((10.0, 0.0), (0.0, 10.0), 8)
    bicrystal = np.concatenate([grain[grain[:, 1] < 200], (grain[grain[:, 1] >= 200] - 200) @ rot.T + 200])
    for name, p in (("square", square), ("honeycomb", honeycomb), ("dumbbells", dumbbells)):
        assert pp.lattice_share(p) > 0.95, name
    assert pp.lattice_share(bicrystal) > 0.8
    random = rng.uniform(0, 400, (1500, 2))
    assert pp.lattice_share(random) < 0.1
    # the vectors of a lattice spread by a large jitter leave their modes
    assert pp.lattice_share(_grid((10.0, 0.0), (0.0, 10.0), 8) + rng.normal(0, 2.5, (289, 2))) < 0.5
    assert np.isnan(pp.lattice_share(square[:3]))


def test_lattice_share_does_not_count_a_pair_as_its_own_mode():
    # a handful of random points: every vector met itself (and its mirror) in the pool, so the share was 1.0
    rng = np.random.default_rng(8)
    shares = [pp.lattice_share(rng.uniform(0, 12, (n, 2))) for n in (5, 6, 7, 8, 10) for _ in range(4)]
    assert np.mean(shares) < 0.2, shares
    # while a 3 x 3 patch of a crystal, as few atoms, is still a lattice
    patch = _grid((8.0, 0.0), (0.0, 8.0), 1) + rng.normal(0, 0.2, (9, 2))
    assert pp.lattice_share(patch) > 0.9


def test_residual_columns_finds_a_faint_sublattice_but_not_random_bumps():
    rng = np.random.default_rng(5)
    bright = _grid((12.0, 0.0), (0.0, 12.0), 5, origin=(66.0, 66.0))
    bright = bright[(bright >= 4).all(1) & (bright <= 127).all(1)]
    faint = bright + np.array([0.0, 4.0])
    faint = faint[faint[:, 1] <= 127]
    clean = 10 + render_gaussians((132, 132), np.concatenate([bright, faint]),
                                  np.concatenate([np.full(len(bright), 200.0), np.full(len(faint), 70.0)]), 1.0)
    img = rng.poisson(clean).astype(float)
    amp, wid = np.full(len(bright), 200.0), np.full(len(bright), 1.0)
    got = pp.residual_columns(img, bright, amp, wid, contrast=0.2)
    m = match_atoms(faint, got, 1.0)
    assert m.recall > 0.9 and m.precision > 0.95
    assert len(pp.residual_columns(img, bright, amp, wid, contrast=0.5)) == 0  # 70 / 200 = 0.35 < 0.5
    # the same bumps at random places: no lattice repeats them
    bumps = rng.uniform(4, 127, (len(faint), 2))
    bumps = bumps[cKDTree(bright).query(bumps)[0] > 3]
    clean = 10 + render_gaussians((132, 132), np.concatenate([bright, bumps]),
                                  np.concatenate([np.full(len(bright), 200.0), np.full(len(bumps), 70.0)]), 1.0)
    got = pp.residual_columns(rng.poisson(clean).astype(float), bright, amp, wid, contrast=0.2)
    assert len(got) <= 0.1 * len(bumps)
