"""Physics and contract tests of scopenet.simulate.spm."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import fft as sfft
from scipy import ndimage

from scopenet.errors import InputError
from scopenet.simulate import spm
from scopenet.simulate.spm import labels as L
from scopenet.simulate.spm.surfaces import SI_A, hsi100

QUIET = dict(p_steps=0.0, p_line_noise=0.0, p_scars=0.0, p_drift=0.0, p_creep=0.0, p_double=0.0,
             p_asymmetric=0.0, p_blunt=0.0, white_noise_range=(1e-4, 1e-4), pink_noise_range=(1e-4, 1e-4),
             feedback_lag_range=(0.01, 0.01), surfaces={"hsi100": 1.0})


def test_api_names():
    assert spm.CATEGORIES == ("asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry")
    for name in ("SPMSimConfig", "SPMSample", "simulate_image", "simulate_batch", "write_dataset",
                 "gallery_png", "demo_section"):
        assert hasattr(spm, name)
    import scopenet.simulate as sim

    assert sim.spm is spm


def test_batch_shapes_dtypes_no_nan():
    b = spm.simulate_batch(6, size=64, seed=3)
    assert b["images"].shape == (6, 64, 64) and b["images"].dtype == np.float32
    assert b["labels6"].shape == (6, 6) and b["labels6"].dtype == np.float32
    assert b["good"].shape == (6,) and b["good"].dtype == bool
    assert len(b["params"]) == 6
    assert np.isfinite(b["images"]).all() and np.isfinite(b["labels6"]).all()
    assert b["images"].min() >= 0 and b["images"].max() <= 1          # min-max scaled by default
    assert ((b["labels6"] >= 0) & (b["labels6"] <= 1)).all()
    json.dumps(b["params"])                                            # ground truth is serialisable


def test_sample_fields_and_units():
    s = spm.simulate_image(np.random.default_rng(0), size=96, pixel_size=6e-11, normalize="none")
    assert s.image.shape == s.height_true.shape == (96, 96)
    assert s.height_true.dtype == np.float32 and s.atoms.dtype == np.float32 and s.atoms.shape[1] == 4
    # metres: atoms lie in the field of view, heights are sub-nanometre
    assert s.atoms[:, 0].min() >= -0.5 * 6e-11 and s.atoms[:, 0].max() < 96 * 6e-11
    assert np.abs(s.image).max() < 5e-9
    assert s.params["pixel_size_m"] == pytest.approx(6e-11)


def test_seed_reproducibility():
    a = spm.simulate_batch(4, size=48, seed=11)
    b = spm.simulate_batch(4, size=48, seed=11)
    c = spm.simulate_batch(4, size=48, seed=12)
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels6"], b["labels6"])
    assert a["params"] == b["params"]
    assert not np.array_equal(a["images"], c["images"])
    # an image depends on (seed, index) only, so a later batch reproduces the tail
    tail = spm.simulate_batch(2, size=48, seed=11, start=2)
    np.testing.assert_array_equal(tail["images"], a["images"][2:])
    s1 = spm.simulate_image(5, size=32)
    s2 = spm.simulate_image(5, size=32)
    np.testing.assert_array_equal(s1.image, s2.image)


def test_bad_config_raises_input_error():
    with pytest.raises(InputError, match="surface"):
        spm.simulate_image(0, surfaces={"diamond": 1.0})
    with pytest.raises(InputError):
        spm.simulate_image(0, size=2)
    with pytest.raises(InputError):
        spm.simulate_batch(-1)


def test_point_tip_dilation_is_identity(rng):
    z = rng.normal(size=(40, 50))
    np.testing.assert_array_equal(spm.dilate(z, np.zeros((1, 1))), z)


def test_paraboloid_dilation_is_separable_and_raises(rng):
    z = ndimage.gaussian_filter(rng.normal(size=(60, 60)), 2) * 1e-10
    p, R = 1e-10, 2e-9
    tip = spm.paraboloid_tip(R, p, np.ptp(z))
    assert tip.shape[0] > 1
    np.testing.assert_allclose(spm.dilate_paraboloid(z, R, p), spm.dilate(z, tip), atol=1e-22)
    out = spm.dilate_paraboloid(z, R, p)
    assert (out >= z - 1e-25).all()                 # dilation never lowers the surface
    assert out.std() < z.std()                      # and a blunt tip washes out corrugation


def _xcorr_peak(img, ref, exclude=3):
    """Offset (dy, dx) of the strongest cross-correlation peak of img with ref away from the origin."""
    cc = sfft.ifft2(sfft.fft2(img) * np.conj(sfft.fft2(ref))).real
    h, w = cc.shape
    yy = np.minimum(np.arange(h), h - np.arange(h))[:, None]
    xx = np.minimum(np.arange(w), w - np.arange(w))[None, :]
    cc[(yy <= exclude) & (xx <= exclude)] = -np.inf
    iy, ix = np.unravel_index(np.argmax(cc), cc.shape)
    return (iy if iy < h // 2 else iy - h), (ix if ix < w // 2 else ix - w)


@pytest.mark.parametrize("d", [(6, -9), (-11, 4), (0, 14)])
def test_double_tip_cross_correlation_peak_at_offset(rng, d):
    shape, p = (128, 128), 1e-10
    h = np.zeros(shape)
    h[rng.integers(0, 128, 60), rng.integers(0, 128, 60)] = 1.0       # a random, non-periodic surface
    h = ndimage.gaussian_filter(h, 1.0, mode="wrap")
    tip = spm.TipState(sigma=0.5e-10, ghosts=[[d[0] * p, d[1] * p, 0.6]])
    z = sfft.irfft2(sfft.rfft2(h) * spm.tip_transfer(shape, p, tip), s=shape)
    assert _xcorr_peak(z, h) == d


def test_flattening_removes_line_offsets(rng):
    y, x = np.mgrid[0:64, 0:80]
    surface = np.sin(x / 5.0) * np.cos(y / 7.0)
    offsets = spm.line_offsets(rng, 64, 3.0, 10.0, 0.1)[:, None]
    slopes = rng.normal(size=(64, 1)) * x
    np.testing.assert_allclose(spm.flatten_lines(surface + offsets + slopes, 1), spm.flatten_lines(surface, 1),
                               atol=1e-10)
    np.testing.assert_allclose(spm.flatten_lines(surface + offsets, 0), spm.flatten_lines(surface, 0), atol=1e-10)
    assert np.abs(spm.flatten_lines(surface + offsets, 1).mean(axis=1)).max() < 1e-12


def test_simulated_lines_are_flattened_unless_raw():
    flat = spm.simulate_image(1, size=64, normalize="none", p_line_noise=1.0, p_scars=0.0)
    assert np.abs(flat.image.mean(axis=1)).max() < 1e-15
    raw = spm.simulate_image(1, size=64, normalize="none", p_line_noise=1.0, p_scars=0.0, flatten="none")
    assert np.abs(raw.image.mean(axis=1)).std() > 1e-13


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tip_change_label_matches_switch_line(seed):
    cfg = dict(QUIET, p_tip_change=1.0, p_second_change=0.0, tip_sigma_range=(0.3e-10, 3e-10), size=96,
               pixel_size=6e-11, normalize="none", flatten="none")
    s = spm.simulate_image(np.random.default_rng(seed), **cfg)
    lines, times = s.params["tip_change_lines"], s.params["tip_change_times"]
    assert len(lines) == 1 and s.labels6[4] == 1.0 and not s.good_tip
    ln = lines[0]
    j0 = int(round((times[0] - ln) * 96))
    dz = s.params["tip_states"][1]["z_offset"] - s.params["tip_states"][0]["z_offset"]
    assert abs(dz) >= 0.5e-10
    # the tip length jumps exactly where the new state starts: mid-line `ln`, at column j0
    line_means = s.image.mean(axis=1)
    jump = int(np.argmax(np.abs(np.diff(line_means))))
    assert jump in (ln - 1, ln)
    tilt = np.median(np.diff(line_means))          # the sample's slope from line to line
    after = s.image[ln, j0:].mean() - s.image[ln - 1, j0:].mean() - tilt if j0 <= 88 else dz
    before = s.image[ln, :j0].mean() - s.image[ln - 1, :j0].mean() - tilt if j0 >= 8 else 0.0
    assert after == pytest.approx(dz, rel=0.35)
    assert abs(before) < 0.35 * abs(dz)
    # and the flattened, labelled version keeps the line in its ground truth
    flat = spm.simulate_image(np.random.default_rng(seed), **dict(cfg, flatten="linear"))
    assert flat.params["tip_change_lines"] == [ln]
    no = spm.simulate_image(np.random.default_rng(seed), **dict(cfg, p_tip_change=0.0))
    assert no.labels6[4] == 0.0 and no.params["tip_change_lines"] == []


def test_drift_positions():
    y, x = spm.drift_positions((4, 8), velocity=(0.25, 0.5))
    t = spm.scan_times((4, 8))
    np.testing.assert_allclose(x - np.arange(8)[None, :], 0.5 * t)
    np.testing.assert_allclose(y - np.arange(4)[:, None], 0.25 * t)


def test_pink_noise_spectrum(rng):
    x = spm.pink_noise(rng, 4096, alpha=1.0)
    assert abs(x.std() - 1) < 1e-9
    f = sfft.rfftfreq(4096)[1:]
    pw = np.abs(sfft.rfft(x))[1:] ** 2
    slope = np.polyfit(np.log(f), np.log(pw), 1)[0]
    assert -1.3 < slope < -0.7


def test_hsi100_geometry():
    p = 0.5e-10
    s = hsi100(np.random.default_rng(0), (120, 120), p, p_steps=0.0, adsorbate_density=0.0)
    atoms = s.layers[0].yx * p
    from scipy.spatial import cKDTree

    d, _ = cKDTree(atoms).query(atoms, k=3)
    bond = s.params["dimer_bond_m"]
    assert np.median(d[:, 1]) == pytest.approx(bond, rel=0.02)          # the dimer partner
    assert np.median(d[:, 2]) == pytest.approx(SI_A, rel=0.02)          # the next dimer along the row
    # rows turn by 90 degrees across a single-atom step
    s2 = hsi100(np.random.default_rng(3), (200, 200), p, p_steps=1.0, adsorbate_density=0.0)
    assert s2.level.max() >= 1
    assert np.ptp(s2.terrace) == pytest.approx(s2.level.max() * 1.36e-10)


def test_label_rules_constructed_cases():
    lab = L.categories({"individual_atoms": 1.0, "dimers": 1.0, "rows": 1.0},
                       {"individual_atoms": 1.0, "dimers": 1.0, "rows": 1.0}, 1.0, False)
    assert lab[1] == 1.0 and lab[2] == pytest.approx(0.25) and lab[3] == pytest.approx(0.15)
    assert lab[0] < 0.02 and lab[4] == 0 and lab[5] < 0.02
    assert L.good_tip(lab, {"individual_atoms": 1.0}, 0.0, 1.0)
    assert not L.good_tip(lab, {"individual_atoms": 1.0}, 0.5, 1.0)    # a ghost apex makes a bad tip
    assert not L.good_tip(lab, {"individual_atoms": 1.0}, 0.5, 1.0, artefact_visible=0.9)
    assert L.good_tip(lab, {"individual_atoms": 1.0}, 0.5, 1.0, artefact_visible=0.1)  # ...when it shows
    assert L.good_tip(lab, {"individual_atoms": 1.0}, 0.0, 1.2, artefact_visible=1.0)  # no defect at all
    rows_only = L.categories({"rows": 1.0}, {"rows": 0.2}, 1.0, True)  # rows seen with effort
    assert rows_only[3] == 1.0 and rows_only[5] == pytest.approx(0.8) and rows_only[4] == 1.0
    nothing = L.categories({}, {}, 2.0, False)
    assert nothing[5] == 1.0 and nothing[:4].max() == 0.0              # asymmetry needs visible features
    asym = L.categories({"dimers": 1.0}, {"dimers": 1.0}, 2.0, False)
    assert asym[0] > 0.99
    # visibility: no contrast -> invisible; strong contrast with low noise -> readily visible
    assert L.visibility(0.0, 1e-10, 1e-12, 4e-10, 1e-10) == pytest.approx((0.0, 0.0), abs=1e-3)
    v, r = L.visibility(0.5e-10, 1e-10, 1e-12, 4e-10, 1e-10)
    assert v > 0.99 and r > 0.99
    v, r = L.visibility(0.5e-10, 1e-10, 1e-12, 1e-10, 1e-10)            # below Nyquist: unresolvable
    assert v < 0.05
    assert L.combine_states([1.0, 0.0], [0.9, 0.1]) == 1.0
    assert L.combine_states([0.0, 1.0], [0.9, 0.1]) == pytest.approx(1 / 3)


def test_flatten_canvas_matches_flatten_lines_on_the_window(rng):
    from scopenet.simulate.spm.core import _flatten_canvas

    z = rng.normal(size=(20, 30)) + np.arange(30)[None, :] * rng.normal(size=(20, 1))
    for order in (0, 1):
        out = _flatten_canvas(z, 5, 16, order)
        np.testing.assert_allclose(out[:, 5:21], spm.flatten_lines(z[:, 5:21], order), atol=1e-12)
    # order 1 removes a row's straight line everywhere on the canvas row, not only in the window
    ramp = np.arange(30)[None, :] * np.array([[1.0], [-2.0]]) + 3.0
    np.testing.assert_allclose(_flatten_canvas(ramp, 5, 16, 1), 0.0, atol=1e-12)


def test_rows_along_the_scan_lines_are_not_visible_after_x_flattening():
    # H:Si(100) dimer rows parallel to the fast-scan direction: every scan line runs along a row or
    # a trough, so line flattening removes the row contrast from the recorded image; the labels must
    # follow the image (seed 17: rows 0.4 degrees off the scan direction). Rows crossing the lines
    # at 20-70 degrees keep their contrast (seeds 0, 1, 8, 18, 22, 23, 34, 37, 39).
    cfg = dict(size=64, surfaces={"hsi100": 1}, p_tip_change=0, p_drift=0, p_creep=0, p_scars=0, p_steps=0)

    def rows(seed, flatten):
        s = spm.simulate_image(seed, flatten=flatten, **cfg)
        return s.params["contrast_m"]["rows"][0], s.params["ready"]["rows"], s.params["surface_params"]

    c_flat, r_flat, sp = rows(17, "linear")
    c_raw, r_raw, _ = rows(17, "none")
    th = np.degrees(sp["row_angle_rad"]) % 180
    assert min(th, 180 - th) < 1.0
    assert c_flat < 0.2 * c_raw and r_raw > 0.9 and r_flat < 0.05
    for seed in (0, 1, 8, 18, 22, 23, 34, 37, 39):
        (c_flat, _, _), (c_raw, _, _) = rows(seed, "linear"), rows(seed, "none")
        assert 0.9 < c_flat / c_raw < 1.1, seed


def test_elongation_of_asymmetric_tip():
    sym = spm.TipState(sigma=1e-10)
    assert L.elongation(sym.covariance(), 0.7e-10) == pytest.approx(1.0)
    asym = spm.TipState(sigma=1e-10, aspect=3.0, angle=0.3)
    assert L.elongation(asym.covariance(), 0.7e-10) > 2.0


def test_resolution_decides_features():
    base = dict(QUIET, size=96, pixel_size=6e-11)
    sharp = spm.simulate_image(np.random.default_rng(0), **base, tip_sigma_range=(0.2e-10, 0.2e-10))
    assert sharp.labels6[1] > 0.5 and sharp.labels6[5] < 0.5 and sharp.good_tip
    mid = spm.simulate_image(np.random.default_rng(0), **base, tip_sigma_range=(1.3e-10, 1.3e-10))
    assert mid.labels6[2] > 0.5 and mid.labels6[1] < 0.5
    blurred = spm.simulate_image(np.random.default_rng(0), **dict(base, white_noise_range=(0.05, 0.05)),
                                 tip_sigma_range=(8e-10, 8e-10))
    assert blurred.labels6[5] > 0.5 and blurred.labels6[1:4].max() < 0.5 and not blurred.good_tip


def test_soft_good_tip_score_has_the_hard_rules_boundary():
    # columns: asym, atoms, dimers, rows, tip_change, bad_blurry
    lab = np.zeros((6, 6), np.float32)
    lab[:, 5] = [0.1, 0.45, 0.55, 0.9, 0.1, 0.1]
    lab[4, 4] = 1.0                                                      # a tip change is always bad
    defect = np.array([0, 0, 0, 0, 0, 1], bool)
    av = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.9])                        # a plainly visible ghost apex
    g = L.good_tip_score(lab, defect, av)
    assert g.dtype == np.float32 and g.shape == (6,)
    assert g[0] > 0.99 and 0.5 < g[1] < 0.8 and 0.2 < g[2] < 0.5 and g[3] < 0.01
    assert g[4] == 0.0 and g[5] < 0.01
    assert L.good_tip_score(lab, defect, av, width=1e-4)[1] > 0.999      # narrow width -> the hard verdict
    # agrees with good_tip away from ties on simulated images
    for seed in range(4):
        s = spm.simulate_image(np.random.default_rng(seed), size=48)
        pr = s.params
        d = L.shape_defect(pr["max_ghost_weight"], pr["elongation"])
        assert (L.good_tip_score(s.labels6, d, pr["artefact_visible"]) > 0.5) == s.good_tip
    with pytest.raises(ValueError, match="6 columns"):
        L.good_tip_score(np.zeros((2, 5)), [0, 0], [0, 0])
    with pytest.raises(ValueError, match="width"):
        L.good_tip_score(lab, defect, av, width=0)


def test_apex_defects_count_for_good_bad_only_when_visible():
    base = dict(QUIET, size=64, pixel_size=6e-11, tip_sigma_range=(0.3e-10, 0.3e-10))
    clean = spm.simulate_image(np.random.default_rng(0), **base)
    assert clean.params["artefact_visible"] == 0.0 and clean.params["max_ghost_weight"] == 0.0
    vis = []
    for seed in range(6):
        s = spm.simulate_image(np.random.default_rng(seed), **dict(base, p_double=1.0))
        pr = s.params
        assert pr["max_ghost_weight"] >= 0.25 and 0.0 <= pr["artefact_visible"] <= 1.0
        assert s.good_tip == L.good_tip(s.labels6, pr["ready"], pr["max_ghost_weight"], pr["elongation"],
                                        pr["artefact_visible"])
        vis.append(pr["artefact_visible"])
    # ghosts of weight 0.25-1 at random offsets on a quiet, sharp image are mostly plain to see
    assert max(vis) > 0.9
    # with drift and creep the tip leaves the canvas window: the comparison follows the real path
    for seed in range(3):
        s = spm.simulate_image(np.random.default_rng(seed), **dict(base, p_double=1.0, p_drift=1.0, p_creep=1.0))
        assert s.params["drift_px_per_line"] != [0.0, 0.0] and 0.0 <= s.params["artefact_visible"] <= 1.0


def test_write_dataset_matches_batch(tmp_path):
    paths = spm.write_dataset(tmp_path / "ds", 5, seed=2, size=32, shard_size=2, progress=False)
    assert [p.name for p in paths] == ["spm-00000.npz", "spm-00001.npz", "spm-00002.npz"]
    man = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert man["seed"] == 2 and man["n"] == 5 and man["config"]["size"] == 32
    imgs = np.concatenate([np.load(p)["images"] for p in paths])
    ref = spm.simulate_batch(5, size=32, seed=2)
    np.testing.assert_array_equal(imgs, ref["images"])
    z = np.load(paths[0])
    assert json.loads(str(z["params_json"][0])) == ref["params"][0]
    from scopenet.errors import WriteError

    with pytest.raises(WriteError):
        spm.write_dataset(tmp_path / "ds", 2, seed=2, size=32, shard_size=2, progress=False)


def test_gallery_png():
    png = spm.gallery_png(seed=0, size=48)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ----------------------------------------------------------------------------- parallel generation

def test_workers_give_identical_batches():
    """Image i depends on (seed, i) only: 2 spawn workers reproduce the 1-process batch exactly."""
    one = spm.simulate_batch(4, size=32, seed=7, start=3)
    two = spm.simulate_batch(4, size=32, seed=7, start=3, workers=2)
    np.testing.assert_array_equal(one["images"], two["images"])
    np.testing.assert_array_equal(one["labels6"], two["labels6"])
    np.testing.assert_array_equal(one["good"], two["good"])
    assert one["params"] == two["params"]
    with pytest.raises(InputError, match="workers"):
        spm.simulate_batch(2, size=32, workers=0)


def test_stream_batches_match_simulate_batch():
    ref = spm.simulate_batch(6, size=32, seed=1, start=4)
    got = list(spm.stream_batches(3, size=32, seed=1, workers=1, start=4, n_batches=2))
    assert [b["index"].tolist() for b in got] == [[4, 5, 6], [7, 8, 9]]
    np.testing.assert_array_equal(np.concatenate([b["images"] for b in got]), ref["images"])
    with pytest.raises(InputError):
        next(spm.stream_batches(0, size=32))


@pytest.mark.slow  # starts a second spawn pool (several seconds on a loaded machine)
def test_stream_batches_two_workers_same_as_one():
    kw = dict(size=32, seed=5, n_batches=3, with_params=True)
    one = list(spm.stream_batches(2, workers=1, **kw))
    two = list(spm.stream_batches(2, workers=2, **kw))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["index"], b["index"])
        assert a["params"] == b["params"]


def test_spmstream_dataloader_two_workers_yields_each_index_once():
    import torch
    from torch.utils.data import DataLoader

    ds = spm.SPMStream(n=10, size=32, seed=3, start=20)
    assert len(ds) == 10
    loader = DataLoader(ds, batch_size=3, num_workers=2)
    idx, imgs = [], {}
    for b in loader:
        assert b["image"].dtype == torch.float32 and b["image"].shape[1:] == (1, 32, 32)
        assert b["labels6"].shape[1:] == (6,)
        for i, im in zip(b["index"].tolist(), b["image"]):
            idx.append(i)
            imgs[i] = im[0].numpy()
    assert sorted(idx) == list(range(20, 30))                  # every index exactly once
    ref = spm.simulate_batch(10, size=32, seed=3, start=20)
    np.testing.assert_array_equal(np.stack([imgs[i] for i in range(20, 30)]), ref["images"])
    # in the main process (no workers) the same stream comes out in order
    assert [int(s["index"]) for s in spm.SPMStream(n=4, size=32, seed=3)] == [0, 1, 2, 3]
    with pytest.raises(InputError):
        spm.SPMStream(n=-1)
