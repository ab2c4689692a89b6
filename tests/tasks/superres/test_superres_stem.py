"""STEM super-resolution: decimated sub-lattice scans (``sampling="decimate"`` in tasks.inpaint.superres)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.simulate.scans import sublattice_mask
from scopenet.tasks.superres import (
    SuperResolver,
    block_mean,
    coarsen,
    decimate,
    make_pairs,
    super_resolve,
    upsample,
)


def _ramp(size=32):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    return 0.3 * yy + 0.7 * xx + 1.0


def _random_est(seed=3, **config):
    """A SuperResolver whose small VDSR has random (non-identity) weights."""
    torch.manual_seed(seed)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4}, **config)
    for p in est.net_.parameters():
        p.data.normal_(0, 0.1)
    return est


@pytest.mark.parametrize("factor", [2, 4])
def test_decimate_keeps_the_sublattice_probe_positions(factor):
    img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    c = decimate(img, factor)
    assert c.shape == (16 // factor, 16 // factor)
    np.testing.assert_array_equal(c.ravel(), img[sublattice_mask(16, step=factor)])
    assert decimate(np.zeros((3, 17, 18)), factor).shape == (3, 17 // factor, 18 // factor)


@pytest.mark.parametrize("factor", [2, 4])
def test_decimated_ramp_upsampled_bilinear_is_exact_in_the_interior(factor):
    ramp = _ramp()
    up = upsample(decimate(ramp, factor), factor, "bilinear", sampling="decimate")
    inner = slice(0, 32 - factor)  # the last factor-1 rows/columns lie past the last sample
    np.testing.assert_allclose(up[inner, inner], ramp[inner, inner], atol=1e-4)
    # the block-mean (half-pixel) convention is off by (factor - 1) / 2 px on decimated data
    off = upsample(decimate(ramp, factor), factor, "bilinear")
    assert np.abs(off[inner, inner] - ramp[inner, inner]).max() > 0.3 * (factor - 1) / 2


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_decimate_upsample_passes_through_the_samples(mode, factor):
    c = np.random.default_rng(factor).random((6, 5)).astype(np.float32)
    up = upsample(c, factor, mode, sampling="decimate")
    assert up.shape == (6 * factor, 5 * factor)
    np.testing.assert_allclose(up[::factor, ::factor], c, atol=1e-5)
    t = upsample(torch.from_numpy(c)[None, None], factor, mode, sampling="decimate")
    np.testing.assert_allclose(t[0, 0].numpy(), up)


def test_block_mean_is_the_default_sampling_and_unchanged():
    img = np.random.default_rng(1).random((8, 8)).astype(np.float32)
    np.testing.assert_array_equal(coarsen(img, 2), block_mean(img, 2))
    c = block_mean(img, 2)
    t = torch.from_numpy(c)[None, None]
    ref = torch.nn.functional.interpolate(t, scale_factor=2, mode="bicubic", align_corners=False)[0, 0].numpy()
    np.testing.assert_array_equal(upsample(c, 2), ref)
    np.testing.assert_array_equal(upsample(c, 2, "bicubic", "block_mean"), ref)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    assert est.sampling == "block_mean"


def test_make_pairs_decimate_shapes_and_values():
    imgs = np.random.default_rng(2).random((3, 40, 40)).astype(np.float32)
    lo, hi = make_pairs(imgs, 4, 16, 5, np.random.default_rng(0), sampling="decimate")
    assert lo.shape == (5, 1, 4, 4) and hi.shape == (5, 1, 16, 16)
    assert lo.dtype == hi.dtype == np.float32
    np.testing.assert_array_equal(lo, hi[..., ::4, ::4])
    assert hi.min() == 0.0 and hi.max() == pytest.approx(1.0)
    lo_bm, hi_bm = make_pairs(imgs, 4, 16, 5, np.random.default_rng(0))  # same draws, block means
    np.testing.assert_array_equal(hi_bm, hi)
    np.testing.assert_allclose(lo_bm, block_mean(hi, 4))


def test_make_pairs_rejects_bad_input():
    imgs = np.zeros((2, 20, 20), np.float32)
    with pytest.raises(InputError, match="sampling"):
        make_pairs(imgs, 2, 16, 1, np.random.default_rng(0), sampling="mean")
    with pytest.raises(InputError, match="patch"):
        make_pairs(imgs, 4, 32, 1, np.random.default_rng(0), sampling="decimate")
    with pytest.raises(InputError, match="multiple"):
        make_pairs(imgs, 3, 16, 1, np.random.default_rng(0), sampling="decimate")


@pytest.mark.parametrize("factor", [2, 4])
def test_untrained_decimate_model_returns_the_aligned_interpolation(factor):
    img = np.random.default_rng(4).random((8, 8)).astype(np.float32) * 50 + 10
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4}, sampling="decimate")
    out = est.predict(img, factor)
    assert out.shape == (8 * factor, 8 * factor) and out.dtype == np.float32
    np.testing.assert_allclose(out, upsample(img, factor, "bicubic", "decimate"), rtol=1e-5, atol=1e-3)


def test_decimate_model_keeps_the_measured_samples():
    img = np.random.default_rng(5).random((8, 8)).astype(np.float32) * 3 - 1
    est = _random_est(sampling="decimate")
    out = est.predict(img, 4)
    np.testing.assert_allclose(out[::4, ::4], img, atol=1e-5)
    assert not np.allclose(out, upsample(img, 4, "bicubic", "decimate"), atol=1e-3)  # the weights matter


def test_fit_with_decimate_runs_and_records_history():
    imgs = np.random.default_rng(6).random((2, 24, 24)).astype(np.float32)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4}, sampling="decimate")
    est.fit(imgs, factors=(2, 4), steps=3, batch_size=2, patch=16, seed=0)
    assert len(est.history_) == 3 and all(np.isfinite(est.history_))


def test_save_load_round_trip_keeps_sampling(tmp_path):
    est = _random_est(sampling="decimate")
    img = np.random.default_rng(7).random((8, 8)).astype(np.float32)
    est.save(tmp_path / "stem")
    back = SuperResolver.load(tmp_path / "stem")
    assert back.sampling == "decimate" and back.card_.config["sampling"] == "decimate"
    assert back.card_.task == "superres" and back.card_.preprocessing["input_shape"] == [1, 1, 128, 128]
    np.testing.assert_array_equal(back.predict(img, 2), est.predict(img, 2))
    # an SPM model saved now records block_mean explicitly and loads the same way
    _random_est().save(tmp_path / "spm")
    assert SuperResolver.load(tmp_path / "spm").sampling == "block_mean"
    # a keyword overrides the card's setting
    assert SuperResolver.load(tmp_path / "stem").sampling == "decimate"
    assert SuperResolver.load(tmp_path / "stem", sampling="block_mean").sampling == "block_mean"


def test_bad_sampling_and_input_raise():
    with pytest.raises(InputError, match="sampling"):
        SuperResolver(arch_config={"n_layers": 3, "channels": 4}, sampling="nearest")
    with pytest.raises(InputError, match="sampling"):
        SuperResolver({"sampling": "bogus"})
    with pytest.raises(InputError, match="sampling"):
        upsample(np.zeros((4, 4)), 2, "bicubic", sampling="every-other")
    with pytest.raises(InputError, match="sampling"):
        coarsen(np.zeros((4, 4)), 2, "max")
    with pytest.raises(InputError, match="mode"):
        upsample(np.zeros((4, 4)), 2, "lanczos", sampling="decimate")
    with pytest.raises(InputError, match="factor"):
        decimate(np.zeros((8, 8)), 1)
    with pytest.raises(InputError, match="smaller"):
        decimate(np.zeros((3, 3)), 4)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4}, sampling="decimate")
    assert est.predict(np.zeros((2, 8, 8)), 2).shape == (2, 16, 16)  # a stack, frame by frame
    with pytest.raises(InputError):
        est.predict(np.zeros((2, 2, 8, 8)), 2)
    with pytest.raises(InputError):
        est.predict(np.array([[np.inf, 0], [0, 0]]), 2)
    with pytest.raises(InputError, match="stack"):
        est.predict_batch(np.zeros((8, 8)), 2)


def test_shipped_stem_model_super_resolves():
    from scopenet.training.packaging import model_files
    from scopenet.weights import SHIPPED_DIR

    if not model_files(SHIPPED_DIR / "superres-stem-x4")[0].exists():
        pytest.skip("superres-stem-x4 weights not shipped in this checkout")
    est = SuperResolver.pretrained("stem-x4")
    assert est.sampling == "decimate" and est.card_.architecture.name == "superres-vdsr"
    img = np.random.default_rng(8).random((24, 20)).astype(np.float32)
    out = super_resolve(img, 2, model="stem-x4")
    assert out.shape == (48, 40) and np.isfinite(out).all()
    np.testing.assert_allclose(out[::2, ::2], img, atol=1e-5)
