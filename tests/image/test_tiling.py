"""Tiled prediction: exact reconstruction with an identity model, blending, borders, memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import scopenet as sn
from scopenet.errors import InputError
from scopenet.image.tiling import blend_window, iter_tiles, predict_tiled, tile_starts


def identity(batch):
    assert batch.dtype == np.float32 and batch.ndim == 3
    return batch


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 300), (257, 513)])
@pytest.mark.parametrize("tile, overlap", [(256, 32), (64, 16), (17, 5), (8, 7), (4, 0)])
def test_identity_reconstructs_exactly(rng, shape, tile, overlap):
    if shape == (257, 513) and tile < 17:
        pytest.skip("covered by smaller shapes; thousands of tiny tiles")
    x = rng.normal(3, 2, shape).astype(np.float32)
    y = predict_tiled(x, identity, tile=tile, overlap=overlap, batch_size=3)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-6, rtol=1e-6)


def test_identity_3000x2000(rng):
    x = rng.random((3000, 2000), dtype=np.float32)
    y = predict_tiled(x, identity, tile=256, overlap=32, batch_size=8)
    np.testing.assert_allclose(y, x, atol=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.integers(4, 48), frac=st.floats(0, 0.95),
       batch=st.integers(1, 5), mode=st.sampled_from(["reflect", "symmetric", "edge", "wrap", "constant"]))
@example(h=49, w=18, tile=15, frac=0.9375, batch=1, mode="reflect")  # heavy overlap: float64 accumulation
def test_identity_any_size_tile_overlap(h, w, tile, frac, batch, mode):
    overlap = min(int(frac * tile), tile - 1)
    x = np.random.default_rng(h * 1000 + w).normal(size=(h, w)).astype(np.float32)
    y = predict_tiled(x, identity, tile=tile, overlap=overlap, batch_size=batch, pad_mode=mode)
    np.testing.assert_allclose(y, x, atol=1e-6, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 700), tile=st.integers(1, 300), frac=st.floats(0, 0.99))
def test_tiles_cover_every_pixel_with_overlap(n, tile, frac):
    overlap = min(int(frac * tile), tile - 1)
    starts = tile_starts(n, tile, overlap)
    assert starts[0] <= 0 and starts[-1] + tile >= n
    cover = np.zeros(n, int)
    for s in starts:
        cover[max(s, 0):min(s + tile, n)] += 1
    assert cover.min() >= 1
    if len(starts) > 1:  # neighbours overlap by at least the requested amount
        assert np.all(np.diff(starts) <= tile - overlap)
        assert starts[0] <= -(overlap // 2) and starts[-1] + tile >= n + overlap // 2


def test_iter_tiles_specs_and_slices():
    specs = list(iter_tiles((100, 150), tile=64, overlap=16))
    assert len({s.index for s in specs}) == len(specs)
    for s in specs:
        ys, xs = s.image_slices((100, 150))
        ty, tx = s.tile_slices((100, 150))
        assert ys.stop - ys.start == ty.stop - ty.start and xs.stop - xs.start == tx.stop - tx.start
        assert 0 <= ty.start < ty.stop <= 64
    assert specs[0].y0 == -8 and specs[0].x0 == -8  # half the overlap reaches into the reflected border


def test_blend_window_shape():
    w = blend_window(64, 16)
    assert w.shape == (64,) and np.all(w > 0) and w.max() == 1.0
    assert w[0] <= 1e-6 and w[3] <= 1e-6 and w[-1] <= 1e-6  # tile edges count for almost nothing
    assert np.all(w[16:48] == 1.0)
    assert np.allclose(w, w[::-1])
    assert np.all(blend_window(10, 0) == 1)


def test_blending_discards_tile_edges(rng):
    """A model that is wrong only near tile edges leaves (almost) no trace in the result."""
    x = rng.random((200, 300)).astype(np.float32)

    def edgy(batch):
        out = batch.copy()
        out[:, :3, :] += 10.0
        out[:, -3:, :] += 10.0
        out[:, :, :3] += 10.0
        out[:, :, -3:] += 10.0
        return out

    y = predict_tiled(x, edgy, tile=64, overlap=32)
    assert np.abs(y - x).max() < 1e-3
    plain = predict_tiled(x, edgy, tile=64, overlap=0)
    assert np.abs(plain - x).max() >= 10.0 - 1e-4


def test_reflection_at_true_borders():
    seen = []

    def record(batch):
        seen.append(batch.copy())
        return batch

    x = np.arange(5 * 6, dtype=np.float32).reshape(5, 6)
    predict_tiled(x, record, tile=8, overlap=2)
    t = seen[0][0]
    ref = np.pad(x, ((1, 2), (1, 1)), mode="reflect")
    assert np.array_equal(t, ref)


def test_single_tile_functions_and_stacks(rng):
    x = rng.random((3, 40, 50)).astype(np.float32)
    calls = []

    def single(t):
        calls.append(t.shape)
        if t.ndim != 2:
            raise ValueError("single tiles only")
        return 2 * t

    y = predict_tiled(x, single, tile=32, overlap=8)
    np.testing.assert_allclose(y, 2 * x, rtol=1e-6)
    assert all(c == (32, 32) for c in calls[1:])
    y2 = predict_tiled(x, lambda t: t + 1, tile=32, overlap=8, batched=False)
    np.testing.assert_allclose(y2, x + 1, rtol=1e-6)


def test_micrograph_keeps_calibration(rng):
    axes = [sn.Axis("y", 30, 0.2, 0, "nm"), sn.Axis("x", 40, 0.2, 0, "nm")]
    img = sn.Micrograph(rng.random((30, 40)), axes=axes, signal="HAADF")
    out = predict_tiled(img, lambda b: -b, tile=16, overlap=4)
    assert isinstance(out, sn.Micrograph) and out.axes == img.axes
    np.testing.assert_allclose(out.data, -img.data, atol=1e-6)
    assert out.provenance[-1]["operation"] == "predict_tiled"


def test_errors():
    x = np.zeros((10, 10), np.float32)
    with pytest.raises(InputError, match="overlap"):
        predict_tiled(x, identity, tile=8, overlap=8)
    with pytest.raises(InputError):
        predict_tiled(np.zeros(5), identity)
    with pytest.raises(InputError, match="returned shape"):
        predict_tiled(x, lambda b: b[:, :4], tile=8, overlap=2, batched=True)
    with pytest.raises(InputError, match="returned shape"):
        predict_tiled(x, lambda b: b[:4], tile=8, overlap=2, batched=False)
    with pytest.raises(InputError, match="pad_mode"):
        predict_tiled(x, identity, tile=16, overlap=2, pad_mode="mirror")


@pytest.mark.slow
def test_memory_bounded_8192():
    n = 8192
    x = np.ones((n, n), dtype=np.float32)
    x[::7] = 2.0
    tile, batch = 256, 8
    tracemalloc.start()
    try:
        y = predict_tiled(x, identity, tile=tile, overlap=32, batch_size=batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image_bytes = x.nbytes
    tile_bytes = 8 * batch * tile * tile * 4  # batch buffer, prediction, window products...
    assert peak < 1.5 * image_bytes + tile_bytes, f"peak {peak / 2**20:.0f} MiB"
    np.testing.assert_allclose(y, x, atol=1e-6)
