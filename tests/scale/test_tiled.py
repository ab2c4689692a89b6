"""Block-by-block processing (scale.tiled) in one process: the same result as the in-memory tiler."""
from __future__ import annotations

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.scale.tiled import Block, DenoisePlan, blocks_of, run_tiled_local
from scopenet.tasks.denoise import Denoiser


@pytest.fixture(scope="module")
def est():
    import torch

    torch.manual_seed(0)
    return Denoiser(arch_config={"widths": [8, 16]}, tile=64, overlap=16, max_direct_pixels=1, batch_size=5)


def test_blocks_cover_the_image_once():
    bs = blocks_of((2, 100, 70), 32)
    assert len(bs) == 2 * 4 * 3 and bs[0] == Block(0, 0, 32, 0, 32) and bs[-1] == Block(1, 96, 100, 64, 70)
    cover = np.zeros((2, 100, 70), int)
    for b in bs:
        cover[b.f, b.y0:b.y1, b.x0:b.x1] += 1
    assert (cover == 1).all()
    with pytest.raises(InputError, match="block"):
        blocks_of((10, 10), 8)


@pytest.mark.parametrize("shape", [(250, 300), (2, 130, 200)])
def test_blocks_equal_the_in_memory_result(tmp_path, est, shape):
    """Blocks of 96 px (not aligned with the 64 px tiles or the image): equal to ``predict`` to 1e-5; NaN
    input pixels stay NaN; each frame of a stack has its own scaling, as in memory. (Counts with many ties,
    so the sampled median that fills the NaN pixel is the exact one.)"""
    rng = np.random.default_rng(1)
    a = rng.poisson(25, shape).astype(np.float32)
    if a.ndim == 3:
        a[1] = 3 * a[1] + 40
    a[..., 3, 4] = np.nan
    img = sn.Micrograph(a)
    path = sn.write(img, tmp_path / "in.npy")
    out = run_tiled_local(est, DenoisePlan, path, tmp_path / "out.zarr", block=96)
    got = sn.read(out)
    ref = est.predict(img)
    assert got.shape == ref.shape and np.isnan(got.data[..., 3, 4]).all()
    np.testing.assert_allclose(got.data, ref.data, atol=1e-5 * float(np.nanmax(a)))
    assert got.provenance[-2]["operation"] == "denoise" and got.provenance[-2]["params"]["tiled"]


def test_block_wise_denoising_refuses_tta(tmp_path, est):
    path = sn.write(sn.Micrograph(np.ones((40, 40))), tmp_path / "a.npy")
    with pytest.raises(InputError, match="tta"):
        run_tiled_local(est, DenoisePlan, path, tmp_path / "o.zarr", tta=2)


def test_a_block_wise_output_copies_to_a_tiled_tiff_with_its_calibration(tmp_path, est):
    from scopenet.io.zarr_io import store_to_tiled_tiff

    img = sn.Micrograph(np.random.default_rng(2).random((300, 280)), axes=[sn.Axis("y", 300, 0.5, unit="nm"),
                                                                        sn.Axis("x", 280, 0.5, unit="nm")])
    store = run_tiled_local(est, DenoisePlan, sn.write(img, tmp_path / "in.npy"), tmp_path / "o.zarr", block=128)
    tif = store_to_tiled_tiff(store, tmp_path / "o.tif", tile=64)
    import tifffile

    with tifffile.TiffFile(tif) as tf:
        assert tf.pages[0].is_tiled and tf.pages[0].tilewidth == 64
    back, ref = sn.read(tif, lazy=True), sn.read(store)
    np.testing.assert_array_equal(np.asarray(back), ref.data)
    assert back.axes == ref.axes and back.provenance[-2]["operation"] == "denoise"
