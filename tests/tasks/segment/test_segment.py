"""The segmenter (fit on arrays and folders, class probabilities, tiling, ensembles), the particle table and
the threshold baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.segment import Segmenter
from scopenet.tasks.segment.baselines import local_threshold, otsu
from scopenet.tasks.segment.particles import label_particles, particle_table


def _ellipse(shape, cy, cx, a, b, angle_deg):
    """Mask of the ellipse with semi-axes a (major) and b, the major axis at angle_deg from +x toward +y."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    th = math.radians(angle_deg)
    u = (xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)
    v = -(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def test_particle_table_measures_a_drawn_ellipse():
    m = _ellipse((200, 240), 90.0, 120.0, 40.0, 15.0, 30.0)
    mg = Micrograph(m.astype(np.float32), axes=[Axis("y", 200, 0.5, unit="nm"), Axis("x", 240, 0.5, unit="nm")])
    t = particle_table(m, image=mg)
    assert len(t) == 1
    r = t.iloc[0]
    assert r.x == pytest.approx(120.0, abs=0.05) and r.y == pytest.approx(90.0, abs=0.05)
    assert r.area_px == pytest.approx(math.pi * 40 * 15, rel=0.01)
    assert r.major_axis_px == pytest.approx(80.0, rel=0.01) and r.minor_axis_px == pytest.approx(30.0, rel=0.02)
    assert r.orientation_deg == pytest.approx(30.0, abs=0.5)
    assert r.equivalent_diameter_px == pytest.approx(2 * math.sqrt(40 * 15), rel=0.01)
    assert r.major_axis_m == pytest.approx(80.0 * 0.5e-9, rel=0.01)
    assert r.area_m2 == pytest.approx(r.area_px * 0.25e-18)
    assert not r.touches_border
    # the other sense of rotation, and an uncalibrated image: NaN metres
    t2 = particle_table(_ellipse((200, 240), 90.0, 120.0, 40.0, 15.0, -60.0))
    assert t2.orientation_deg[0] == pytest.approx(-60.0, abs=0.5) and np.isnan(t2.major_axis_m[0])


def test_touching_discs_are_split_on_request():
    yy, xx = np.mgrid[:60, :100]
    m = (np.hypot(yy - 30, xx - 35) < 14) | (np.hypot(yy - 30, xx - 60) < 14)
    assert label_particles(m).max() == 1
    lab = label_particles(m, split=True, min_distance=5)
    assert lab.max() == 2
    t = particle_table(lab)
    assert sorted(np.round(t.x).astype(int)) == [34, 61] or sorted(np.round(t.x)) == pytest.approx([35, 60], abs=2)
    with pytest.raises(InputError, match="2-D"):
        label_particles(np.zeros((2, 2, 2, 2)))


def test_baselines_find_bright_and_dark_squares_on_a_gradient():
    a = np.zeros((64, 64))
    a[20:36, 24:40] = 1.0
    assert otsu(a, sigma=0).sum() == 256
    assert otsu(-a, sigma=0).sum() == 256  # dark particle: the minority side
    assert otsu(a, sigma=0, polarity="dark").sum() == 64 * 64 - 256
    ramp = a + np.linspace(0, 3, 64)[None, :]  # illumination gradient larger than the contrast
    assert otsu(ramp, sigma=0)[28, 30] == otsu(ramp, sigma=0)[28, 60]  # a global threshold follows the ramp
    loc = local_threshold(ramp, block_size=31, sigma=0)
    assert loc[28, 30] and not loc[5, 60] and not loc[5, 5]
    with pytest.raises(InputError):
        otsu(np.zeros((2, 2, 2)))


def _tiny(**kw):
    return Segmenter(unet={"depth": 1, "base_channels": 4, "dilation": [1, 2]}, **kw)


def test_predict_gives_probabilities_of_the_input_kind_and_tiles_large_images():
    seg = _tiny(max_direct_pixels=64 * 64, tile=64, overlap=16)
    rng = np.random.default_rng(0)
    big = rng.random((150, 97)).astype(np.float32)
    p = seg.predict(big)
    assert p.shape == (2, 150, 97) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    mg = Micrograph(big[:40, :50], axes=[Axis("y", 40, 2.0, unit="nm"), Axis("x", 50, 2.0, unit="nm")])
    out = seg.predict(mg)
    assert isinstance(out, Micrograph) and out.shape == (2, 40, 50)
    assert out.axes[0].name == "class" and out.axes[-1].scale == 2.0 and out.axes[-1].unit == "nm"
    assert out.provenance[-1]["operation"] == "segment"
    lab = seg.predict_labels(big[:40, :50])
    assert lab.shape == (40, 50) and set(np.unique(lab)) <= {0, 1}


def test_ensemble_members_spread_is_the_uncertainty(tmp_path):
    x = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    p1, s1 = _tiny().predict_uncertainty(x)
    assert np.all(s1 == 0)
    ens = _tiny(ensemble=3)
    p, s = ens.predict_uncertainty(x)
    assert p.shape == s.shape == (2, 32, 32) and s.max() > 0
    ens.save(tmp_path / "ens")
    back = Segmenter.load(tmp_path / "ens")
    assert back.config.ensemble == 3
    np.testing.assert_allclose(back.predict(x), ens.predict(x), atol=1e-6)


@pytest.mark.slow
def test_fit_reads_folders_paired_by_name_and_names_mismatched_files(tmp_path):
    import tifffile
    from PIL import Image

    imgs, masks = tmp_path / "images", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        m = np.zeros((40, 40), np.uint8)
        m[10:25, 12:30] = 255
        tifffile.imwrite(imgs / f"{name}.tif", (m / 255 + 0.1 * rng.random((40, 40))).astype(np.float32))
        Image.fromarray(m).save(masks / f"{name}.png")
    seg = _tiny().fit(imgs, masks, steps=2, patch=32, batch_size=2)
    assert len(seg.history_) == 2
    # a mask of another shape: both files are named
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(masks / "b.png")
    with pytest.raises(InputError, match=r"b\.tif.*b\.png"):
        _tiny().fit(imgs, masks, steps=1, patch=32)
    (masks / "b.png").unlink()
    with pytest.raises(InputError, match=r"no mask .* for b\.tif"):
        _tiny().fit(imgs, masks, steps=1, patch=32)
    with pytest.raises(InputError, match="image 1: image shape"):
        _tiny().fit([np.zeros((8, 8)), np.zeros((8, 8))], [np.zeros((8, 8)), np.zeros((9, 8))], steps=1)
    with pytest.raises(InputError, match="2 images but 1 masks"):
        _tiny().fit(np.zeros((2, 8, 8)), [np.zeros((8, 8))], steps=1)
    with pytest.raises(InputError, match="class indices"):
        _tiny(classes=["bg", "a", "b"]).fit([np.zeros((8, 8))], [np.full((8, 8), 7)], steps=1)


@pytest.mark.slow
def test_fit_learns_a_separable_task():
    from scopenet.metrics.segmentation import dice
    from scopenet.simulate.em.particle_data import particle_batch

    x, m = particle_batch(6, size=64, seed=3)
    seg = _tiny().fit(x, m, steps=60, patch=48, batch_size=4, lr=3e-3, seed=0)
    assert np.mean(seg.history_[-10:]) < np.mean(seg.history_[:10])
    xt, mt = particle_batch(3, size=64, seed=4)
    scores = [dice(t, seg.predict_labels(a) > 0) for a, t in zip(xt, mt)]
    assert np.mean(scores) > 0.6
