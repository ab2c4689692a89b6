"""Image metrics against hand-computed values and scikit-image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from scopenet.errors import InputError
from scopenet.metrics import (error_vs_distance_to_path, error_vs_edge_distance, error_vs_position,
                              mae_map, mse, psnr, psnr_torch, rms, ssim, ssim_torch)


def test_mse_rms_psnr_hand_values():
    ref = np.array([[0.0, 1.0], [2.0, 3.0]])
    test = np.array([[1.0, 1.0], [2.0, 1.0]])  # errors 1, 0, 0, -2 -> mse 5/4
    assert mse(ref, test) == pytest.approx(1.25)
    assert rms(ref, test) == pytest.approx(np.sqrt(1.25))
    assert psnr(ref, test) == pytest.approx(10 * np.log10(9 / 1.25))  # default range 3
    assert psnr(ref, test, data_range=255) == pytest.approx(10 * np.log10(255 ** 2 / 1.25))
    assert psnr(ref, ref) == float("inf")


def test_psnr_agrees_with_skimage(rng):
    ref = rng.random((32, 40))
    test = ref + 0.05 * rng.normal(size=ref.shape)
    assert psnr(ref, test, data_range=1.0) == pytest.approx(
        peak_signal_noise_ratio(ref, test, data_range=1.0), abs=1e-10)


def test_shape_mismatch_and_constant_reference_raise():
    with pytest.raises(InputError, match="shape"):
        mse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(InputError, match="data_range"):
        psnr(np.zeros((4, 4)), np.ones((4, 4)))


@pytest.mark.parametrize("kw", [{}, {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}])
def test_ssim_agrees_with_skimage(rng, kw):
    ref = rng.random((48, 48))
    test = np.clip(ref + 0.1 * rng.normal(size=ref.shape), 0, 1)
    expected = structural_similarity(ref, test, data_range=float(ref.max() - ref.min()), **kw)
    assert ssim(ref, test, **kw) == pytest.approx(expected, abs=1e-6)
    assert ssim(ref, ref) == pytest.approx(1.0)
    val, smap = ssim(ref, test, full=True)
    assert smap.shape == ref.shape and 0 < val < 1


def test_ssim_torch_agrees_with_skimage_to_1e6(rng):
    ref = rng.random((3, 2, 40, 36))
    test = np.clip(ref + 0.1 * rng.normal(size=ref.shape), 0, 1)
    got = ssim_torch(torch.from_numpy(test), torch.from_numpy(ref), data_range=1.0).numpy()
    for i in range(3):
        expected = structural_similarity(ref[i], test[i], data_range=1.0, channel_axis=0)
        assert got[i] == pytest.approx(expected, abs=1e-6)
    # (N, H, W) with the default per-target range
    got2 = ssim_torch(torch.from_numpy(test[:, 0]), torch.from_numpy(ref[:, 0])).numpy()
    for i in range(3):
        r = float(ref[i, 0].max() - ref[i, 0].min())
        assert got2[i] == pytest.approx(structural_similarity(ref[i, 0], test[i, 0], data_range=r), abs=1e-6)


def test_ssim_torch_is_differentiable():
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    ssim_torch(x, y, data_range=1.0).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_psnr_torch_matches_numpy(rng):
    ref = rng.random((2, 1, 8, 8))
    test = ref + 0.02 * rng.normal(size=ref.shape)
    got = psnr_torch(torch.from_numpy(test), torch.from_numpy(ref), data_range=1.0).numpy()
    for i in range(2):
        assert got[i] == pytest.approx(psnr(ref[i], test[i], data_range=1.0), abs=1e-9)


def test_mae_map_stack():
    ref = np.zeros((2, 2, 2))
    test = np.array([[[1, -1], [0, 2]], [[3, 1], [0, 0]]], dtype=float)
    np.testing.assert_allclose(mae_map(ref, test), [[2, 1], [0, 1]])


def test_error_vs_position_tiles():
    e = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(error_vs_position(e, tile_shape=(2, 2)),
                               [[(0 + 2 + 8 + 10) / 4, (1 + 3 + 9 + 11) / 4],
                                [(4 + 6 + 12 + 14) / 4, (5 + 7 + 13 + 15) / 4]])
    np.testing.assert_allclose(error_vs_position(np.stack([e, 3 * e])), 2 * e)
    # partial tiles: a 3x3 map folded on 2x2 tiles
    f = np.arange(9, dtype=float).reshape(3, 3)
    np.testing.assert_allclose(error_vs_position(f, (2, 2)), [[(0 + 2 + 6 + 8) / 4, (1 + 7) / 2],
                                                            [(3 + 5) / 2, 4.0]])


def test_error_vs_edge_distance():
    e = np.ones((5, 5))
    e[1:4, 1:4] = 3.0
    e[2, 2] = 7.0
    prof = error_vs_edge_distance(e)
    np.testing.assert_array_equal(prof.distance, [0, 1, 2])
    np.testing.assert_allclose(prof.mean, [1.0, 3.0, 7.0])
    np.testing.assert_array_equal(prof.count, [16, 8, 1])


def test_error_vs_distance_to_path():
    mask = np.zeros((1, 6), bool)
    mask[0, 0] = True
    err = np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    prof = error_vs_distance_to_path(err, mask)
    np.testing.assert_allclose(prof.distance, np.arange(6))
    np.testing.assert_allclose(prof.mean, np.arange(6))
    # diagonal distances are Euclidean: sqrt(2) -> bin 1, sqrt(8) -> bin 3
    mask2 = np.zeros((3, 3), bool)
    mask2[0, 0] = True
    err2 = np.arange(9, dtype=float).reshape(3, 3)
    prof2 = error_vs_distance_to_path(err2, mask2, bins=[0, 0.5, 1.5, 2.5, 3.0])
    np.testing.assert_array_equal(prof2.count, [1, 3, 4, 1])
    assert prof2.mean[1] == pytest.approx((1 + 3 + 4) / 3)
    with pytest.raises(InputError, match="no scanned"):
        error_vs_distance_to_path(err2, np.zeros((3, 3), bool))
