"""Physics of the EM simulator: dose statistics, Ede's pairs, lattice labels, CTF zeros, reproducibility."""
from __future__ import annotations

import json

import numpy as np
import pytest

from scopenet.errors import InputError, MissingExtraError, WriteError
from scopenet.simulate import em
from scopenet.simulate.em import hrtem, lattice, noise

# ----------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("dose", [3.0, 40.0, 500.0])
def test_poisson_variance_equals_mean_on_flat_image(dose):
    rng = np.random.default_rng(0)
    counts = noise.poisson_dose(np.full((400, 400), 0.8), dose, rng)
    mean, var = counts.mean(), counts.var()
    assert mean == pytest.approx(0.8 * dose, rel=0.01)
    assert var == pytest.approx(mean, rel=0.02)
    assert np.array_equal(counts, np.round(counts))


def test_poisson_dose_rejects_bad_input(rng):
    with pytest.raises(InputError):
        noise.poisson_dose(np.ones((4, 4)), 0.0, rng)
    with pytest.raises(InputError):
        noise.poisson_dose(-np.ones((4, 4)), 10.0, rng)
    with pytest.raises(InputError, match="NaN"):
        noise.poisson_dose(np.full((4, 4), np.nan), 10.0, rng)


def test_ede_dose_distributions():
    rng = np.random.default_rng(1)
    low = np.array([noise.ede_low_dose_scale(rng) for _ in range(20000)])
    high = np.array([noise.ede_high_dose_scale(rng) for _ in range(20000)])
    assert low.min() >= 25.0 and low.mean() == pytest.approx(100.0, rel=0.03)
    assert (low - 25).std() == pytest.approx(75.0, rel=0.04)  # exponential: std == mean
    assert high.min() >= 200 and high.max() <= 2500
    assert high.mean() == pytest.approx(1350.0, rel=0.02)
    assert high.std() == pytest.approx(2300 / np.sqrt(12), rel=0.03)


@pytest.mark.parametrize("regime", ["low", "high"])
def test_ede_noisy_pair(regime):
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:128, :128]
    clean = 2.0 + np.sin(xx / 5.0) * np.cos(yy / 7.0)  # arbitrary range: min-max scaled inside
    noisy, truth, scale = noise.ede_noisy_pair(clean, rng, regime, return_scale=True)
    assert noisy.dtype == np.float32 and truth.dtype == np.float32
    assert noisy.min() == 0.0 and noisy.max() == 1.0
    assert truth.mean() == pytest.approx(noisy.mean(), rel=1e-5)
    # truth is the [0,1]-scaled clean image times one factor
    c01 = (clean - clean.min()) / np.ptp(clean)
    ratio = truth[c01 > 0.2] / c01[c01 > 0.2]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    lo, hi = ((25, np.inf) if regime == "low" else (200, 2500))
    assert lo <= scale <= hi
    # noisier at low dose: residual scales like 1/sqrt(dose)
    rmse = np.sqrt(np.mean((noisy - truth) ** 2))
    assert 0.2 / np.sqrt(scale) < rmse < 3 / np.sqrt(scale)
    with pytest.raises(InputError):
        noise.ede_noisy_pair(clean, rng, "medium")


def test_detector_gain_read_noise_and_mtf():
    rng = np.random.default_rng(3)
    flat = np.full((256, 256), 100.0)
    out = noise.detector(flat, rng, gain=2.0, read_noise=3.0, offset=10.0)
    assert out.mean() == pytest.approx(210.0, abs=0.1) and out.std() == pytest.approx(3.0, rel=0.02)
    counts = noise.poisson_dose(np.full((256, 256), 1.0), 100.0, rng)
    blurred = noise.mtf_blur(counts, sigma=1.0)
    assert blurred.mean() == pytest.approx(counts.mean(), rel=1e-5)  # MTF(0) = 1
    assert blurred.var() < 0.5 * counts.var()  # white noise is attenuated by the MTF


def test_scan_jitter_and_drift_shift_lines():
    rng = np.random.default_rng(4)
    xx = np.tile(np.arange(64, dtype=float), (64, 1))  # value = column index
    shifts = noise.scan_line_shifts(64, rng, jitter=0.5, drift=(0.0, 4.0))
    out = noise.apply_line_shifts(xx, shifts)
    # away from the edges each line reads values displaced by its dx
    np.testing.assert_allclose(out[:, 20:40], xx[:, 20:40] + shifts[:, 1:], atol=1e-4)
    np.testing.assert_allclose(shifts[-1, 0], 0.0)
    d, s = noise.stem_scan_distort(xx, rng, drift=(0.0, 0.0), jitter=0.0, walk=0.0)
    np.testing.assert_allclose(d, xx, atol=1e-5)


# --------------------------------------------------------------------------------------- lattice


def test_projected_cells_have_expected_columns():
    lib = {c.name: c for c in lattice.structure_library()}
    si = lib["Si [110]"]
    assert si.min_spacing == pytest.approx(5.431 / 4, rel=1e-3)  # the [110] dumbbell
    sto = lib["SrTiO3 [100]"]
    assert len(sto.positions) == 4 and abs(np.linalg.det(sto.basis)) == pytest.approx(3.905**2)
    # Sr column ~ 38^1.7, TiO column ~ 22^1.7 + 8^1.7, two O columns
    np.testing.assert_allclose(sorted(sto.haadf), sorted([38**1.7, 22**1.7 + 8**1.7, 8**1.7, 8**1.7]))
    g = lib["graphene [001]"]
    assert g.min_spacing == pytest.approx(2.46 / np.sqrt(3), rel=1e-3) and g.two_d


def test_render_gaussians_is_exact():
    pos = np.array([[10.3, 20.7], [30.0, 5.5]])
    img = lattice.render_gaussians((40, 40), pos, np.array([1.0, 2.0]), sigma=1.5)
    yy, xx = np.mgrid[:40, :40]
    ref = sum(w * np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * 1.5**2)) for p, w in zip(pos, [1.0, 2.0]))
    ref[ref < 1e-6] = 0
    np.testing.assert_allclose(img, ref, atol=2e-3 * 2)


def test_atom_coordinates_land_on_intensity_maxima():
    rng = np.random.default_rng(5)
    lib = {c.name: c for c in lattice.structure_library()}
    scene = lattice.random_columns(rng, 128, cell=lib["Au [100]"], pixel_size=0.25, region="full")
    li = lattice.stem_image(rng, 128, scene=scene, support=0.0, sigma_A=0.4, contrast="haadf")
    img = li.image
    assert len(li.atoms) > 50
    from scipy import ndimage

    local_max = img == ndimage.maximum_filter(img, size=5)
    hits = 0
    for r, c in li.atoms:
        if 3 <= r < 125 and 3 <= c < 125:
            ir, ic = int(round(r)), int(round(c))
            win = local_max[ir - 1:ir + 2, ic - 1:ic + 2]
            hits += bool(win.any())
            # brightest pixel of a 3x3 window sits within one pixel of the true position
            sub = img[ir - 1:ir + 2, ic - 1:ic + 2]
            dr, dc = np.unravel_index(np.argmax(sub), sub.shape)
            assert abs(ir - 1 + dr - r) <= 1.0 and abs(ic - 1 + dc - c) <= 1.0
    interior = ((li.atoms >= 3) & (li.atoms < 125)).all(1).sum()
    assert hits == interior
    # labels: metres = px * pixel size, mask marks every column
    np.testing.assert_allclose(li.atoms_m, li.atoms.astype(float) * 0.25e-10, rtol=1e-6)
    assert li.pixel_size_m == pytest.approx(0.25e-10)
    for r, c in li.atoms:
        assert li.mask[int(round(r)), int(round(c))] in (1, 2)


def test_dopants_are_labelled_and_brighter():
    rng = np.random.default_rng(6)
    lib = {c.name: c for c in lattice.structure_library()}
    found = False
    for _ in range(10):
        scene = lattice.random_columns(rng, 128, cell=lib["Cu [100]"], pixel_size=0.25, region="full")
        if scene.dopant.any():
            found = True
            base = np.median(scene.haadf[~scene.dopant])
            assert np.all(np.abs(scene.haadf[scene.dopant] / base - 1) > 0.3)
            li = lattice.stem_image(rng, 128, scene=scene, support=0.0)
            assert (li.mask == 2).any() or not ((scene.positions[scene.dopant] >= 0) &
                                               (scene.positions[scene.dopant] < 128)).all(1).any()
    assert found


# ----------------------------------------------------------------------------------------- HRTEM


def test_wavelength_and_interaction_constant():
    assert hrtem.wavelength(300e3) == pytest.approx(0.019687, rel=1e-4)
    assert hrtem.wavelength(200e3) == pytest.approx(0.025079, rel=1e-4)
    assert hrtem.wavelength(80e3) == pytest.approx(0.041757, rel=1e-4)
    assert hrtem.interaction_constant(300e3) == pytest.approx(6.526e-4, rel=1e-3)
    with pytest.raises(InputError):
        hrtem.wavelength(-1)


@pytest.mark.parametrize("defocus,cs,kv", [(600.0, 1.2, 300e3), (-200.0, 0.5, 200e3), (80.0, 0.01, 80e3)])
def test_ctf_zero_crossings_match_analytic(defocus, cs, kv):
    k = np.linspace(1e-5, 1.2, 400001)
    t = hrtem.ctf_1d(k, defocus, cs, kv)
    found = k[np.nonzero(np.diff(np.sign(t)) != 0)[0]]
    n_max = int(np.abs(hrtem.chi(k, defocus, cs, kv)).max() / np.pi) + 2
    analytic = hrtem.ctf_zeros(defocus, cs, kv, n_max=n_max)
    analytic = analytic[analytic < 1.2]
    assert len(found) == len(analytic) > 0
    np.testing.assert_allclose(found, analytic, atol=2 * (k[1] - k[0]))


def test_first_zero_at_scherzer_defocus():
    # at Scherzer defocus sqrt(4/3 Cs lambda) chi dips to -2pi/3 and returns to 0 (first zero) at
    # k^2 = 2 df / (Cs lambda^2), with a broad negative passband before it
    cs, kv = 1.0, 300e3
    df = hrtem.scherzer_defocus(cs, kv)
    lam = hrtem.wavelength(kv)
    k0 = np.sqrt(2 * df / (cs * 1e7 * lam**2))  # chi = 0 at k^2 = 2 df / (Cs lambda^2)
    assert np.min(np.abs(hrtem.ctf_zeros(df, cs, kv) - k0)) < 1e-9
    assert hrtem.ctf_1d(np.array([0.5 * k0]), df, cs, kv)[0] < -0.9  # broad negative passband


def test_weak_phase_limit_matches_phase_object():
    rng = np.random.default_rng(7)
    phase = 0.01 * lattice.gaussian_random_field((64, 64), rng, 2.0).astype(np.float64)
    a = hrtem.image_phase_object(phase, 0.2, 500.0, 1.0, 300e3)
    b = hrtem.weak_phase_image(phase, 0.2, 500.0, 1.0, 300e3)
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_hrtem_image_labels():
    rng = np.random.default_rng(8)
    li = hrtem.hrtem_image(rng, 96)
    assert li.image.shape == (96, 96) and li.image.min() == 0 and li.image.max() == 1
    assert li.params["kind"] == "hrtem" and li.atoms.shape[1] == 2


# ----------------------------------------------------------------------------------------- batch


@pytest.mark.parametrize("kind", ["stem", "hrtem", "meso", "mixed"])
def test_simulate_batch_shapes_and_reproducibility(kind):
    a = em.simulate_batch(2, size=64, seed=11, kind=kind)
    b = em.simulate_batch(2, size=64, seed=11, kind=kind)
    assert a["images"].shape == (2, 64, 64) and a["images"].dtype == np.float32
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["masks"], b["masks"])
    assert a["images"].min() >= 0 and a["images"].max() <= 1
    assert len(a["atoms"]) == 2 and all(x.shape[1:] == (2,) for x in a["atoms"])
    c = em.simulate_batch(2, size=64, seed=12, kind=kind)
    assert not np.array_equal(a["images"], c["images"])
    # sample i does not depend on the batch layout
    d = em.simulate_batch(1, size=64, seed=11, kind=kind, start=1)
    assert np.array_equal(d["images"][0], a["images"][1])


def test_meso_families_are_distinct_and_finite():
    rng = np.random.default_rng(9)
    for fam in em.MESO_KINDS:
        img, p = em.meso_image(rng, 96, fam)
        assert p["family"] == fam and np.isfinite(img).all() and img.std() > 0.02


def test_bad_kind_and_size():
    with pytest.raises(InputError, match="unknown EM kind"):
        em.simulate_image(np.random.default_rng(), 64, "sem")
    with pytest.raises(InputError):
        em.simulate_image(np.random.default_rng(), 4, "stem")


def test_write_dataset_shards_and_manifest(tmp_path):
    out = tmp_path / "em"
    man = em.write_dataset(out, 5, seed=3, size=32, kind="stem", progress=False, shard_size=2)
    m = json.loads(man.read_text())
    assert m["n"] == 5 and [s["count"] for s in m["shards"]] == [2, 2, 1]
    z = np.load(out / "shard_00001.npz")
    ref = em.simulate_batch(2, size=32, seed=3, kind="stem", start=2)
    assert np.array_equal(z["images"], ref["images"])
    off = z["atoms_offsets"]
    np.testing.assert_allclose(z["atoms"][off[1]:off[2]], ref["atoms"][1])
    assert json.loads(str(z["params_json"][0]))["kind"] == "stem"
    with pytest.raises(WriteError, match="not empty"):
        em.write_dataset(out, 1, size=32, progress=False)
    em.write_dataset(out, 1, size=32, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard_00000.npz"]


def test_abtem_backend_missing_gives_clear_error():
    from scopenet.simulate.em import abtem_backend

    try:
        import abtem  # noqa: F401
    except ImportError:
        assert not abtem_backend.available()
        with pytest.raises(MissingExtraError, match=r"scopenet\[sim\]"):
            abtem_backend.exit_wave(None)
    else:  # pragma: no cover
        pytest.skip("abtem installed")


def test_gallery_and_micrograph():
    png = em.gallery_png(0, size=64)
    assert png[:4] == b"\x89PNG"
    s = em.simulate_image(np.random.default_rng(0), 64, "stem")
    m = s.to_micrograph()
    assert m.modality == "STEM" and m.axes[-1].scale == pytest.approx(s.pixel_size_m * 1e9)
