"""SPM flattening on synthetic surfaces with known tilt, line offsets, steps and scars."""
from __future__ import annotations

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.image import spm

H, W = 64, 80


def _grid(h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy, xx


def _range(z):
    return float(np.nanmax(z) - np.nanmin(z))


def _calibrated(data, scale=0.1):
    h, w = np.shape(data)[-2:]
    axes = [sn.Axis("y", h, scale, 1.0, "nm"), sn.Axis("x", w, scale, 2.0, "nm")]
    return sn.Micrograph(data, axes=axes, signal="height", signal_unit="m", modality="STM")


@pytest.fixture
def tilt_and_offsets(rng):
    """A plane tilt (known slopes) plus random per-line offsets and a fixed pattern along x."""
    yy, xx = _grid()
    offsets = rng.normal(0, 5.0, H)
    pattern = np.sin(xx[0] / 3.0)  # depends on x only: survives per-line offset removal
    z = 0.3 * xx + 0.7 * yy + offsets[:, None] + pattern[None, :]
    return z, pattern, offsets


# ------------------------------------------------------------------ exact models
def test_plane_removed_exactly_from_pure_plane():
    yy, xx = _grid()
    z = 2.5 + 0.37 * xx - 1.3 * yy
    out = spm.subtract_plane(z)
    assert np.abs(out).max() < 1e-6 * _range(z)
    a, bx, by = spm.plane_coefficients(z)
    assert (a, bx, by) == pytest.approx((2.5, 0.37, -1.3), abs=1e-9)


def test_polynomial_removed_exactly():
    yy, xx = _grid()
    z = 1 + 0.1 * xx - 0.2 * yy + 3e-3 * xx**2 - 2e-3 * xx * yy + 1e-3 * yy**2
    assert np.abs(spm.subtract_polynomial(z, order=2)).max() < 1e-6 * _range(z)
    # a plane alone cannot remove the bow
    assert np.abs(spm.subtract_plane(z)).max() > 1e-2 * _range(z)


def test_line_offsets_removed_exactly(tilt_and_offsets):
    z, pattern, offsets = tilt_and_offsets
    yy, xx = _grid()
    out = spm.flatten_lines(z, method="offset")
    expect = 0.3 * xx + pattern[None, :]
    expect = expect - expect.mean(axis=1, keepdims=True)
    assert np.abs(out - expect).max() < 1e-6 * _range(z)


def test_linear_lines_remove_per_line_tilts(rng):
    yy, xx = _grid()
    z = rng.normal(0, 3, H)[:, None] + rng.normal(0, 0.2, H)[:, None] * xx
    out = spm.flatten_lines(z, method="linear")
    assert np.abs(out).max() < 1e-6 * _range(z)
    # offset-only flattening leaves the per-line tilt
    assert np.abs(spm.flatten_lines(z, method="offset")).max() > 0.1


def test_poly_lines_remove_per_line_parabolas(rng):
    _, xx = _grid()
    c = rng.normal(0, 1, (H, 3))
    z = c[:, :1] + c[:, 1:2] * xx + c[:, 2:3] * xx**2 / W
    assert np.abs(spm.flatten_lines(z, method="poly", order=2)).max() < 1e-6 * _range(z)


def test_median_lines_ignore_outliers():
    z = np.add.outer(np.arange(H) * 2.0, np.zeros(W))
    z[:, :5] += 100.0  # an adsorbate column in every line: mean is pulled, median is not
    out = spm.flatten_lines(z, method="median")
    assert np.abs(out[:, 5:]).max() < 1e-9
    assert np.abs(spm.flatten_lines(z, method="offset")[:, 5:]).max() > 1.0


def test_align_rows_median_diff_then_plane_is_exact(tilt_and_offsets):
    z, pattern, offsets = tilt_and_offsets
    _, xx = _grid()
    aligned = spm.align_rows(z)
    # every line now equals the first one: x tilt + pattern + offset of line 0
    expect = 0.3 * xx + pattern[None, :] + offsets[0]
    assert np.abs(aligned - expect).max() < 1e-6 * _range(z)


def test_align_rows_robust_to_step_along_lines():
    yy, xx = _grid()
    z = np.where(xx > W / 3, 1.0, 0.0) + 0.0 * yy  # a vertical step edge crosses every line
    z = z + (yy % 3) * 10.0  # line offsets
    out = spm.align_rows(z)
    assert np.abs(out - out[0]).max() < 1e-9  # all lines identical again, step kept
    assert _range(out) == pytest.approx(1.0)


def test_mask_excludes_pixels_from_plane_fit():
    yy, xx = _grid()
    z = 0.5 * xx + 0.2 * yy
    mask = np.zeros_like(z, bool)
    mask[10:30, 10:30] = True
    z_bump = z.copy()
    z_bump[mask] += 50.0
    out = spm.subtract_plane(z_bump, mask=mask)
    assert np.abs(out[~mask]).max() < 1e-6 * _range(z)
    assert np.allclose(out[mask], 50.0)


# ------------------------------------------------------------------ RANSAC
def _stepped_surface(rng, h=96, w=96):
    yy, xx = _grid(h, w)
    steps = np.where(xx + 0.3 * yy < 55, 0.0, 2.0) + np.where(xx - 0.2 * yy > 75, 2.0, 0.0)
    tilt = 0.05 * xx - 0.03 * yy
    z = tilt + steps + rng.normal(0, 0.005, (h, w))
    for _ in range(12):  # adsorbates
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        z += 1.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0**2))
    return z, (0.05, -0.03), steps


def test_ransac_recovers_plane_of_stepped_surface(rng):
    z, (sx, sy), steps = _stepped_surface(rng)
    out, inliers = spm.ransac_plane(z, return_inliers=True)
    terrace = (steps == 0) & inliers
    # the dominant terrace is flat after RANSAC: its residual plane slope is tiny
    _, rx, ry = spm.plane_coefficients(np.where(terrace, out, np.nan))
    assert abs(rx) < 2e-3 and abs(ry) < 2e-3
    assert inliers.mean() > 0.3
    # ordinary least squares is pulled by the steps and adsorbates
    _, lx, ly = spm.plane_coefficients(z)
    assert abs(lx - sx) > 5e-3
    assert np.nanstd(out[steps == 0]) < 0.2


def test_ransac_deterministic_with_seed(rng):
    z, *_ = _stepped_surface(rng, 48, 48)
    assert np.array_equal(spm.ransac_plane(z, random_state=3), spm.ransac_plane(z, random_state=3))


# ------------------------------------------------------------------ scars
def test_detect_and_repair_scars(rng):
    yy, xx = _grid()
    clean = np.sin(xx / 4.0) + np.cos(yy / 5.0) + rng.normal(0, 0.02, (H, W))
    z = clean.copy()
    truth = np.zeros_like(z, bool)
    truth[20, 10:40] = True  # positive scar, one line
    truth[45, 50:75] = True  # negative scar
    truth[33:35, 5:25] = True  # two-line scar
    z[20, 10:40] += 2.0
    z[45, 50:75] -= 1.5
    z[33:35, 5:25] += 1.8
    found = spm.detect_scars(z)
    assert found.dtype == bool and found.shape == z.shape
    recall = (found & truth).sum() / truth.sum()
    false_pos = (found & ~truth).sum() / (~truth).sum()
    assert recall > 0.9
    assert false_pos < 0.002
    assert not spm.detect_scars(clean).any()
    fixed = spm.repair_scars(z)
    assert np.abs(fixed - clean)[truth].max() < 0.25
    assert np.abs(fixed - clean)[truth].max() < np.abs(z - clean)[truth].min()
    # a one-line scar becomes the mean of the lines above and below
    m = np.zeros_like(z, bool)
    m[20, 10:40] = True
    rep = spm.repair_scars(z, mask=m)
    assert np.allclose(rep[20, 10:40], 0.5 * (z[19, 10:40] + z[21, 10:40]))
    assert np.array_equal(rep[~m], z[~m].astype(rep.dtype))


# ------------------------------------------------------------------ NaN handling
def test_nans_are_ignored_not_propagated(tilt_and_offsets):
    z, pattern, _ = tilt_and_offsets
    yy, xx = _grid()
    zn = z.copy()
    zn[50:] = np.nan  # scan stopped early
    zn[5, 7] = np.nan
    for method in ("plane", "lines", "poly", "ransac", "align", "auto"):
        out = sn.flatten(zn, method=method)
        assert np.array_equal(np.isnan(out), np.isnan(zn)), method
    plane = 1.0 + 0.4 * xx - 0.1 * yy
    plane[50:] = np.nan
    assert np.nanmax(np.abs(spm.subtract_plane(plane))) < 1e-6 * _range(plane)
    out = spm.flatten_lines(zn, "linear")
    assert np.isfinite(out[:50]).sum() == np.isfinite(zn[:50]).sum()


def test_all_nan_rows_left_alone():
    z = np.full((4, 6), np.nan)
    z[1] = np.arange(6.0)
    out = spm.flatten_lines(z, "linear")
    assert np.allclose(out[1], 0.0, atol=1e-12) and np.isnan(out[[0, 2, 3]]).all()


# ------------------------------------------------------------------ façade / Micrograph
def test_micrograph_in_micrograph_out_with_provenance(tilt_and_offsets):
    z, *_ = tilt_and_offsets
    img = _calibrated(z)
    out = sn.flatten(img, method="lines")
    assert isinstance(out, sn.Micrograph)
    assert out.provenance[-1]["operation"] == "flatten_lines"
    assert out.axes == img.axes and out.signal == "height"
    assert img.provenance == [] and np.array_equal(img.data, z.astype(np.float32))  # input untouched
    auto = sn.flatten(img)
    assert [p["operation"] for p in auto.provenance] == ["align_rows", "ransac_plane"]


def test_flatten_unknown_method():
    with pytest.raises(InputError, match="unknown flattening method"):
        sn.flatten(np.zeros((4, 4)), method="magic")


def test_stack_processed_per_frame(tilt_and_offsets):
    z, *_ = tilt_and_offsets
    yy, xx = _grid()
    stack = np.stack([z, 2 * z + 1])
    out = spm.flatten_lines(stack, "linear")
    assert out.shape == stack.shape
    assert np.allclose(out[1], 2 * spm.flatten_lines(z, "linear"), atol=1e-9)


def test_array_dtypes():
    z = np.arange(20, dtype=np.int16).reshape(4, 5)
    assert spm.subtract_plane(z).dtype == np.float32
    assert spm.subtract_plane(z.astype(np.float64)).dtype == np.float64
    with pytest.raises(InputError):
        spm.subtract_plane(np.zeros(5))
    with pytest.raises(InputError):
        spm.subtract_plane(np.zeros((4, 4)), mask=np.zeros((3, 3), bool))


def test_ransac_exact_on_noise_free_plane_with_fine_pattern():
    """Noise-free data must not shrink the inlier band below the surface's own fine structure."""
    yy, xx = _grid()
    pattern = 1e-3 * np.sin(xx / 2.0) * np.cos(yy / 3.0)
    z = 0.2 * xx - 0.1 * yy + pattern
    out = spm.ransac_plane(z)
    assert np.abs(out - (pattern - pattern.mean())).max() < 2e-4
