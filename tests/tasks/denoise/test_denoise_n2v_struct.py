"""Structured Noise2Void and N2V2 sampling (scopenet.tasks.denoise.n2v).

The row-correlation test fits the best *linear* blind-spot predictor (a 9 x 9 filter, least squares on
the masked crops, which is what a network trained with the N2V loss approximates) and measures the
line-correlated power left in its output: plain N2V masks let the predictor read the correlated noise
from the neighbours on the same scan line, so it reproduces it; the structured mask hides those neighbours.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from scopenet.errors import InputError
from scopenet.simulate.em.degrade import fast_scan_lag, row_noise
from scopenet.tasks.denoise.n2v import n2v_mask

R = 4  # half-width of the linear predictor's window


def _scene(rng, n=24, size=64):
    clean = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 4, 4))
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    noisy = np.stack([row_noise(fast_scan_lag(c + rng.normal(0, 0.1, c.shape), 2.0), rng, 0.08) for c in clean])
    return clean, noisy


def _fit_blind_spot_filter(noisy, rng, **mask_kw):
    feats, targets = [], []
    for img in noisy:
        masked, mask = n2v_mask(img, rng, 0.02, 2, **mask_kw)
        win = sliding_window_view(np.pad(masked, R, mode="reflect"), (2 * R + 1, 2 * R + 1))
        ys, xs = np.nonzero(mask)
        feats.append(win[ys, xs].reshape(len(ys), -1))
        targets.append(img[ys, xs])
    A, b = np.concatenate(feats), np.concatenate(targets)
    A = np.hstack([A, np.ones((len(A), 1))])
    w = np.linalg.lstsq(A, b, rcond=None)[0]
    return w[:-1].reshape(2 * R + 1, 2 * R + 1), w[-1]


def _apply(kernel, bias, imgs):
    return np.stack([ndimage.correlate(im, kernel, mode="reflect") + bias for im in imgs])


def _line_power(res):
    """Power of the residual that is correlated along scan lines: variance of the line means plus the
    lag-1 autocovariance along the lines (both zero for white residuals)."""
    r = res - res.mean()
    return float(np.var(r.mean(axis=-1)) + np.mean(r[..., 1:] * r[..., :-1]))


def test_struct_n2v_removes_row_correlated_noise_that_plain_n2v_keeps():
    rng = np.random.default_rng(0)
    clean, noisy = _scene(rng)
    p_in = _line_power(noisy - clean)
    # uniform replacement: the probe then puts (almost) no weight on the blind spot itself, which at
    # inference holds the pixel's own noisy value (a median replacement is predictive and leaks it back)
    k, b = _fit_blind_spot_filter(noisy, np.random.default_rng(1))
    p_plain = _line_power(_apply(k, b, noisy) - clean)
    ks, bs = _fit_blind_spot_filter(noisy, np.random.default_rng(1), struct=R, axis="x")
    p_struct = _line_power(_apply(ks, bs, noisy) - clean)
    assert p_plain > 0.6 * p_in     # plain N2V reproduces the line-correlated noise
    assert p_struct < 0.3 * p_in    # the structured mask removes most of it
    off_centre = np.r_[0:R, R + 1:2 * R + 1]
    assert np.abs(ks[R, off_centre]).sum() < 0.2 * np.abs(k[R, off_centre]).sum()  # line weights vanish


def test_struct_mask_randomises_the_line_and_n2v2_uses_the_median():
    rng = np.random.default_rng(2)
    img = np.arange(400, dtype=np.float32).reshape(20, 20)
    masked, mask = n2v_mask(img, rng, 0.01, 1, struct=2, axis="x", sampling="n2v2")
    (y, x), = np.argwhere(mask)[:1]
    nb = [img[yy, xx] for yy in range(y - 1, y + 2) for xx in range(x - 1, x + 2)
          if 0 <= yy < 20 and 0 <= xx < 20 and yy != y]  # the line (within struct) is excluded
    assert masked[y, x] == pytest.approx(np.median(nb))
    changed = np.argwhere(masked != img)
    assert set(map(tuple, changed)) <= {(y, x + k) for k in range(-2, 3)} | {tuple(p) for p in np.argwhere(mask)} \
        | {(yy, xx + k) for yy, xx in np.argwhere(mask) for k in range(-2, 3)}
    ym, _ = n2v_mask(img, np.random.default_rng(3), 0.05, 1, struct=3, axis="y")
    diff = np.argwhere(ym != img)
    assert len(diff) > 0
    with pytest.raises(InputError):
        n2v_mask(img, rng, 0.05, 1, axis="z")


def test_n2v2_sampling_leaves_no_checkerboard_in_a_constant_image():
    # uniform sampling copies a neighbour; median sampling of a constant image is the constant itself
    img = np.full((32, 32), 0.5, np.float32)
    m, _ = n2v_mask(img, np.random.default_rng(4), 0.1, 2, sampling="n2v2")
    assert np.array_equal(m, img)


@pytest.mark.slow
def test_user_batches_apply_the_structured_mask():
    from scopenet.tasks.denoise.config import DenoiseTrainConfig
    from scopenet.tasks.denoise.train import user_batches

    rng = np.random.default_rng(6)
    imgs = [rng.random((40, 40)).astype(np.float32)]
    cfg = DenoiseTrainConfig(workdir=None, mode="n2v", crop_size=32, batch_size=3, n2v_struct=3, n2v_fraction=0.01)
    x, y, m = user_batches(imgs, None, cfg)(np.random.default_rng(7))
    assert x.shape == y.shape == m.shape == (3, 1, 32, 32)
    n_changed = int((x != y).sum())
    assert n_changed > int(m.sum()) * 4  # each blind spot randomises up to 6 pixels of its line too


@pytest.mark.slow
def test_fit_n2v_with_structured_mask_runs_through_the_estimator():
    from scopenet.tasks.denoise import Denoiser

    rng = np.random.default_rng(5)
    clean, noisy = _scene(rng, n=2, size=40)
    den = Denoiser(arch_config={"widths": [4, 8]})
    den.fit(list(noisy), mode="n2v", steps=2, crop_size=32, batch_size=2, n2v_struct=3)
    ft = den.card_.training.fine_tuning[-1]
    assert ft["settings"]["n2v_struct"] == 3 and ft["settings"]["n2v_sampling"] == "n2v2"
    assert den.predict(noisy[0]).shape == (40, 40)
