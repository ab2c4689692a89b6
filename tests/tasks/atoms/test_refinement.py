"""The Gaussian refinement of atom positions: exactness, noise-limited precision, the joint fit with the
neighbours subtracted, calibrated uncertainty, the structured-background term and the vectorised solver
against a per-atom reference."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.simulate.em.lattice import gaussian_random_field, render_gaussians
from scopenet.errors import InputError
from scopenet.tasks.atoms import postprocess as pp


def _grid(spacing: float, size: int, seed: int, jitter: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.arange(spacing, size - spacing + 1e-9, spacing)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    return pos + rng.uniform(-jitter, jitter, pos.shape)


def _crb(peak_counts: float) -> float:
    """Cramér-Rao bound per axis of a Gaussian column of peak ``N`` counts on no background, px."""
    return 1.0 / np.sqrt(2 * np.pi * peak_counts)


def test_noise_free_close_packed_lattice_needs_the_neighbours_subtracted():
    """Columns 3.6 widths apart overlap: fitted one at a time (atomap) they pull each other by up to
    0.1 px; with the neighbours modelled the error is < 0.01 px and vanishes as the passes converge."""
    pos = _grid(4.3, 96, seed=0, jitter=0.3)
    img = render_gaussians((96, 96), pos, np.ones(len(pos)), 1.2)
    start = np.rint(pos)
    inner = ((pos > 6) & (pos < 90)).all(1)

    def err(**kw):
        fit = pp.refine_gaussian(img, start, pp.default_radius(start), **kw)
        assert fit["ok"].all()
        return np.abs(fit["positions"] - pos)[inner].max(), fit

    alone, _ = err(passes=0)
    joint, _ = err()
    converged, fit = err(passes=8)
    assert alone > 0.05 and joint < 0.015 and converged < 1e-3
    np.testing.assert_allclose(fit["width"], 1.2, rtol=2e-3)


@pytest.mark.parametrize("sigma,spacing,dose", [(1.0, 4.3, 200.0), (2.0, 10.0, 50.0)])
def test_poisson_fit_is_near_the_cramer_rao_bound_and_its_sigma_is_calibrated(sigma, spacing, dose):
    pos = _grid(spacing, 160, seed=1)
    clean = render_gaussians((160, 160), pos, np.full(len(pos), dose), sigma) + 0.01 * dose
    img = np.random.default_rng(2).poisson(clean).astype(float)
    assert pp.counts_like(img) and not pp.counts_like(img + 0.5)
    fit = pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos))
    err = fit["positions"] - pos
    rms_axis = float(np.sqrt(np.mean(err ** 2)))
    assert fit["ok"].mean() > 0.99
    assert rms_axis < 1.6 * _crb(dose)  # maximum likelihood: close to the bound, never the 5-10x of a bad fit
    inside = float((np.abs(err) <= fit["sigma_pos"][:, None]).mean())
    assert 0.58 < inside < 0.78  # the Fisher sigma covers ~68 % of the per-axis errors
    assert np.median(fit["sigma_pos"]) == pytest.approx(rms_axis, rel=0.3)


def test_many_atoms_take_the_width_from_a_sample_and_stay_exact():
    """More than WIDTH_SAMPLE atoms: the shared width comes from a sample of independent fits; every
    atom is still refined jointly."""
    pos = _grid(4.0, 150, seed=3, jitter=0.4)
    assert len(pos) > pp.WIDTH_SAMPLE
    img = render_gaussians((150, 150), pos, np.ones(len(pos)), 1.0) + 0.05
    fit = pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos))
    inner = ((pos > 5) & (pos < 145)).all(1)
    assert fit["ok"][inner].all()
    assert np.abs(fit["positions"] - pos)[inner].max() < 5e-3


def test_vectorised_solver_matches_scipy_least_squares_per_patch():
    from scipy.optimize import least_squares

    rng = np.random.default_rng(4)
    k, r = 6, 5
    d = np.arange(-r, r + 1.0)
    yy, xx = d[None, :, None], d[None, None, :]
    truth = np.stack([rng.uniform(50, 100, k), rng.uniform(-0.8, 0.8, k), rng.uniform(-0.8, 0.8, k),
                      np.log(rng.uniform(1.2, 2.0, k)), rng.uniform(2, 8, k), np.zeros(k), np.zeros(k)], 1)
    clean = pp._model_patch(truth, yy, xx)
    data = rng.poisson(clean).astype(float)
    wgt = np.ones_like(data)
    t0 = truth.copy()
    t0[:, 1:3] = 0.0
    t0[:, 3] = np.log(1.5)
    free = np.array([1, 1, 1, 1, 1, 0, 0], float)
    th, _, _ = pp._gauss_newton(data, yy, xx, wgt, t0, 30, free)
    for i in range(k):
        def resid(q, i=i):
            t = np.r_[q, 0.0, 0.0][None]
            return (data[i] - pp._model_patch(t, yy, xx)[0]).ravel()

        ref = least_squares(resid, t0[i, :5], method="lm").x
        np.testing.assert_allclose(th[i, 1:3], ref[1:3], atol=2e-3)  # positions, px (float32 model)
        np.testing.assert_allclose(th[i, [0, 4]], ref[[0, 4]], rtol=2e-3, atol=2e-2)


def test_structured_background_is_measured_between_the_columns():
    pos = _grid(12.0, 256, seed=5)
    sigma = 2.4
    cols = render_gaussians((256, 256), pos, np.ones(len(pos)), sigma)
    amp = np.ones(len(pos))
    rng = np.random.default_rng(6)
    support = 0.08 * gaussian_random_field((256, 256), rng, sigma)
    quiet = pp.structured_sd(cols + 0.001 * rng.standard_normal(cols.shape), pos, amp, np.full(len(pos), sigma))
    busy = pp.structured_sd(cols + support, pos, amp, np.full(len(pos), sigma))
    assert quiet < 0.01
    assert 0.04 < busy < 0.12  # the support's 0.08, measured without knowing it
    assert pp.structured_sd(cols, pos[:2], amp[:2], np.full(2, sigma)) == 0.0


def test_structured_background_leaves_out_what_repeats_with_the_lattice():
    # a probe's ring that the Gaussian misses repeats at every column and moves none of them; a support does not
    rng = np.random.default_rng(5)
    g = np.arange(-36, 292, 12.0)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    every = np.stack([yy.ravel(), xx.ravel()], 1) + rng.uniform(-0.5, 0.5, (len(g) ** 2, 2))
    pos = every[((every >= 0) & (every <= 255)).all(1)]  # the columns found; those outside still shine in
    sigma, amp, width = 2.4, np.ones(len(pos)), np.full(len(pos), 2.4)
    ones = np.ones(len(every))
    cols = render_gaussians((256, 256), every, ones, sigma)
    ring = render_gaussians((256, 256), every, 0.2 * ones, 2 * sigma) - render_gaussians((256, 256), every, 0.2 * ones, sigma)
    support = 0.08 * gaussian_random_field((256, 256), rng, sigma)
    plain = pp.structured_sd(cols, pos, amp, width)  # what the border's cut columns leave
    assert pp.structured_sd(cols + ring, pos, amp, width, locked=False) > plain + 0.005  # counted before
    assert abs(pp.structured_sd(cols + ring, pos, amp, width) - plain) < 0.001
    with_support = pp.structured_sd(cols + support, pos, amp, width)
    assert 0.05 < with_support < 0.1  # the support's 0.08
    assert abs(pp.structured_sd(cols + ring + support, pos, amp, width) - with_support) < 0.002


def test_locked_part_keeps_two_species_apart_when_their_intensities_are_close():
    # two sublattices, 0.8 and 1.0 bright, each with its own misfit ring; at this noise intensity_classes sees
    # one species, and one median template for both leaves their difference behind; three k-means classes are
    # mostly one species each
    g = np.arange(16, 240, 16.0)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    bright = (np.arange(len(pos)) + (np.arange(len(pos)) // len(g))) % 2 == 0  # a checkerboard

    def ring(a):
        return render_gaussians((256, 256), pos[a], np.ones(a.sum()), 4.0) - \
            render_gaussians((256, 256), pos[a], np.ones(a.sum()), 2.0)

    res = 0.1 * ring(bright) - 0.1 * ring(~bright)
    q = np.rint(pos).astype(int)
    core = (slice(20, -20), slice(20, -20))
    one, three = [], []
    for seed in range(6):
        amp = np.where(bright, 1.0, 0.8) + 0.1 * np.random.default_rng(seed).standard_normal(len(pos))
        assert len(np.unique(pp.intensity_classes(amp))) == 1
        one.append(np.std((res - pp._locked_part(res, q, amp, 16.0, 10, classes=None))[core]))
        three.append(np.std((res - pp._locked_part(res, q, amp, 16.0, 10))[core]))
    assert np.mean(three) < 0.9 * np.mean(one)


def test_weights_setting_is_checked():
    from scopenet.errors import InputError

    with pytest.raises(InputError, match="weights"):
        pp.refine_gaussian(np.ones((16, 16)), np.array([[8.0, 8.0]]), 3.0, weights="chi2")


def test_spacing_of_a_large_image_comes_from_a_central_crop():
    pos = _grid(9.0, 1200, seed=7, jitter=0.0)
    img = render_gaussians((1200, 1200), pos, np.ones(len(pos)), 1.5)
    assert pp.estimate_spacing(img) == pytest.approx(9.0, abs=0.6)


def test_neighbour_sum_equals_the_rendered_model_without_the_atom_itself():
    """The joint passes sum each window's neighbours directly (k-d tree, separable Gaussians); this must
    equal rendering every fitted column and subtracting the atom's own Gaussian."""
    pos = _grid(5.0, 80, seed=8, jitter=0.6)
    amp = np.random.default_rng(9).uniform(0.5, 2.0, len(pos))
    sig = 1.3
    r = 4
    rendered = pp._render((80, 80), pos, amp, np.full(len(pos), sig))
    full, c, d = pp._patches(rendered, pos, r)
    yy, xx = d[None, :, None] - (pos[:, 0] - c[:, 0])[:, None, None], d[None, None, :] - (pos[:, 1] - c[:, 1])[:, None, None]
    own = amp[:, None, None] * np.exp(-(yy ** 2 + xx ** 2) / (2 * sig ** 2))
    nb = pp._neighbours(pos, r * np.sqrt(2) + 4 * sig + 1)
    others = pp._neighbour_sum(pos, amp, np.full(len(pos), sig), c, d, nb)
    inside = np.isfinite(full)
    np.testing.assert_allclose(others[inside], (full - own)[inside], atol=2e-3 * amp.max())
    assert nb.shape[1] >= 4 and not (nb == np.arange(len(pos))[:, None]).any()


def test_strided_patches_match_fancy_indexing():
    rng = np.random.default_rng(10)
    img = rng.standard_normal((40, 50))
    centres = np.array([[0.2, 0.0], [39.0, 49.4], [20.6, 10.2], [-3.0, 60.0]])
    p, c, d = pp._patches(img, centres, 3)
    pad = np.pad(img, 3, constant_values=np.nan)
    ref = pad[c[:, 0, None, None] + 3 + d[None, :, None], c[:, 1, None, None] + 3 + d[None, None, :]]
    np.testing.assert_array_equal(np.isnan(p), np.isnan(ref))
    np.testing.assert_array_equal(np.nan_to_num(p), np.nan_to_num(ref))
    assert c.tolist()[3] == [0, 49]  # clipped into the image


def test_plateau_peaks_give_one_peak_at_their_centre():
    h = np.zeros((20, 20), np.float32)
    h[5, 5:8] = 0.9  # a 3-pixel plateau: one peak, its centre
    h[14, 14] = 0.8
    h[14, 15] = 0.5
    pk, val = pp.heatmap_peaks(h, 0.4, 2)
    assert sorted(map(tuple, pk.tolist())) == [(5, 6), (14, 14)]
    assert sorted(val.tolist()) == pytest.approx([0.8, 0.9])


def test_subpixel_shift_on_a_sloped_background_is_recovered_with_the_plane():
    """A lattice shifted by a known sub-pixel amount on a tilted plane: the fit with a plane background
    recovers the positions to < 0.02 px."""
    pos = _grid(11.0, 128, seed=11, jitter=0.0) + np.array([0.37, -0.21])
    yy, xx = np.mgrid[0:128, 0:128]
    img = render_gaussians((128, 128), pos, np.full(len(pos), 100.0), 1.8) + 20 + 0.3 * yy - 0.2 * xx
    fit = pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos), plane=True)
    inner = ((pos > 8) & (pos < 120)).all(1)
    assert fit["ok"][inner].all()
    assert np.abs(fit["positions"] - pos)[inner].max() < 0.02


@pytest.mark.parametrize("dose,support,width,window", [
    (20.0, 0.1, 1.6, 2.0),     # noise and support alike
    (2000.0, 0.1, 1.6, 1.25),  # little noise: the support's error (the ratio 9)
    (20.0, 0.0, 1.6, 2.5),     # no support: the noise alone, the widest window
    (100.0, 0.1, 4.0, 1.25),   # wide columns: the support's error grows with the width, the noise's does not
    (30.0, 0.02, 1.0, 2.5),    # narrow noisy columns on a faint support
])
def test_the_window_follows_the_ratio_of_background_to_noise_and_is_the_best_of_the_three(dose, support, width,
                                                                                          window):
    """The window after the first joint pass is chosen by the ratio of the structured background's
    position error to the noise's: on each of these lattices (a support field of the columns' width) the
    chosen one is the most accurate of the fixed windows 1.25, 2 and 2.5 widths."""
    pos = _grid(9.0 if width < 3 else 20.0, 160, seed=12)
    rng = np.random.default_rng(13)
    field = support * dose * (1 + gaussian_random_field((160, 160), rng, width))
    clean = render_gaussians((160, 160), pos, np.full(len(pos), dose), width) + 0.05 * dose + field
    img = rng.poisson(np.clip(clean, 0, None)).astype(float)
    inner = ((pos > 8) & (pos < 152)).all(1)

    def rms(fit):
        return np.sqrt(np.mean((fit["positions"] - pos)[inner] ** 2))

    fit = pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos))
    assert fit["window"] == window
    fixed = {w: rms(pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos), windows=(w,), window_thresholds=()))
             for w in (1.25, 2.0, 2.5)}
    assert rms(fit) == pytest.approx(fixed[window])
    assert rms(fit) == pytest.approx(min(fixed.values()))
    legacy = pp.refine_gaussian(img, np.rint(pos), pp.default_radius(pos), windows=None)  # the noise-only rule
    assert legacy["window"] == (1.25 if legacy["first_pass_sigma_px"] < 0.065 else 2.0)


def test_window_settings_are_checked():
    from pydantic import ValidationError

    from scopenet.tasks.atoms.config import AtomsConfig

    pos = _grid(9.0, 64, seed=1)
    img = render_gaussians((64, 64), pos, np.full(len(pos), 100.0), 1.5)
    with pytest.raises(InputError, match="one entry more"):
        pp.refine_gaussian(img, pos, 4.0, windows=(2.0, 1.25), window_thresholds=())
    with pytest.raises(ValidationError, match="one entry more"):
        AtomsConfig(windows=[2.0], window_thresholds=[1.0])
    with pytest.raises(ValidationError, match="increase"):
        AtomsConfig(windows=[2.5, 2.0, 1.0], window_thresholds=[1.0, 0.5])


def test_atom_table_uses_the_small_window_factors_only_for_small_window_fits():
    from scopenet.tasks.atoms.config import AtomsConfig

    pos = _grid(9.0, 128, seed=14)
    heat = render_gaussians((128, 128), pos, np.ones(len(pos)), 1.2)
    peaks = np.rint(pos).astype(int)
    conf = np.ones(len(pos))
    for dose, small in ((2000.0, True), (20.0, False)):
        clean = render_gaussians((128, 128), pos, np.full(len(pos), dose), 1.6) + 0.05 * dose
        img = np.random.default_rng(15).poisson(clean).astype(float)
        base = pp.atom_table(img, heat, peaks, conf, AtomsConfig(sigma_scale=1.0, windows=None))  # noise rule
        own = pp.atom_table(img, heat, peaks, conf, AtomsConfig(sigma_scale=1.0, sigma_scale_small=2.0, windows=None))
        assert (base["fit_window_widths"] < 2.0) == small
        ratio = np.nanmedian(own["columns"]["sigma_noise_px"] / base["columns"]["sigma_noise_px"])
        assert ratio == pytest.approx(2.0 if small else 1.0)
