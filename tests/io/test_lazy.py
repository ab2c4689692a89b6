"""``sn.read(path, lazy=True)``: dask-backed Micrographs equal to the eager read, without a full read."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import scopenet as sn
from scopenet.io._lazyimage import LazyMicrograph
from tests.conftest import TEST_DATA, shared_path

GEN = TEST_DATA / "em"


def _same(lazy, eager):
    assert isinstance(lazy, LazyMicrograph) and not lazy.in_memory
    assert type(lazy.data).__module__.startswith("dask")
    assert lazy.data.dtype == np.float32 and lazy.shape == eager.shape
    np.testing.assert_array_equal(np.asarray(lazy), eager.data)
    assert lazy.axes == eager.axes
    assert (lazy.signal, lazy.signal_unit, lazy.modality, lazy.scan_direction) == (
        eager.signal, eager.signal_unit, eager.modality, eager.scan_direction)
    assert [p["operation"] for p in lazy.provenance] == [p["operation"] for p in eager.provenance]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One calibrated 600 x 700 image in every lazily readable format, written by scopenet and by others."""
    import h5py
    import mrcfile
    import tifffile

    d = tmp_path_factory.mktemp("lazy")
    a = np.random.default_rng(0).random((600, 700)).astype(np.float32)
    img = sn.Micrograph(a, axes=[sn.Axis("y", 600, 0.2, 1.0, "nm"), sn.Axis("x", 700, 0.25, 2.0, "nm")],
                        signal="HAADF", signal_unit="counts", modality="STEM")
    out = {}
    for ext in ("tif", "h5", "npy", "zarr"):
        out[f"scopenet.{ext}"] = sn.write(img, d / f"ours.{ext}")
    tifffile.imwrite(d / "tiled.tif", a, tile=(128, 128), compression="zlib")
    out["foreign tiled+zlib.tif"] = d / "tiled.tif"
    tifffile.imwrite(d / "plain.tif", (a * 1000).astype(np.uint16))
    out["foreign uint16.tif"] = d / "plain.tif"
    with mrcfile.new(d / "a.mrc") as m:
        m.set_data(a)
        m.voxel_size = 1.5
    out["mrc"] = d / "a.mrc"
    with h5py.File(d / "plain.h5", "w") as f:
        f.create_dataset("scan/image", data=a, chunks=(64, 64))
    out["plain.h5"] = d / "plain.h5"
    np.save(d / "bare.npy", a.astype(np.float64))
    out["bare.npy"] = d / "bare.npy"
    return out


@pytest.mark.parametrize("kind", ["scopenet.tif", "scopenet.h5", "scopenet.npy", "scopenet.zarr",
                                  "foreign tiled+zlib.tif", "foreign uint16.tif", "mrc", "plain.h5", "bare.npy"])
def test_lazy_equals_eager(files, kind):
    _same(sn.read(files[kind], lazy=True), sn.read(files[kind]))


@pytest.mark.parametrize("name", ["generated.mrc", "generated_stack.mrc", "generated_ncem.emd",
                                  "generated_imagej_micron.tif", "generated_imagej_stack.tif", "generated_plain.h5"])
def test_lazy_equals_eager_on_instrument_style_files(name):
    _same(sn.read(GEN / name, lazy=True), sn.read(GEN / name))


@pytest.mark.parametrize("parts", [("em", "emd", "Acquisition_18.emd"), ("em", "mrc", "HAADFscan.mrc"),
                                   ("em", "tiff", "test_loading_image_saved_with_imageJ.tif")])
def test_lazy_equals_eager_on_real_fixtures(parts):
    p = shared_path("fixtures", *parts)
    _same(sn.read(p, lazy=True), sn.read(p))


@pytest.mark.slow  # writes seven 64 MiB files
@pytest.mark.parametrize("kind", ["scopenet.tif", "scopenet.h5", "scopenet.npy", "scopenet.zarr",
                                  "foreign tiled+zlib.tif", "foreign plain.tif", "mrc"])
def test_a_small_slice_reads_only_its_chunks(files, tmp_path, kind):
    """An 8192 x 2048 float32 image (64 MiB) in chunks of at most 1024 x 1024: opening it lazily and reading
    a 32 x 32 corner reads one chunk (at most 4 MiB decoded plus the reader's buffers), far below a full read
    (64 MiB): neither allocated (tracemalloc) nor resident (RSS, which counts the touched pages of a memory
    map: dask hashes every page of a memory map it is given to name it, unless named otherwise)."""
    import psutil
    import tifffile

    big = (np.arange(8192 * 2048) % 977).astype(np.float32).reshape(8192, 2048)  # compresses fast
    if kind.startswith("scopenet"):
        path = sn.write(sn.Micrograph(big), tmp_path / f"big.{kind.split('.')[1]}")
    elif kind == "mrc":
        import mrcfile

        path = tmp_path / "big.mrc"
        with mrcfile.new(path) as m:
            m.set_data(big)
    elif kind == "foreign plain.tif":
        path = tmp_path / "big.tif"
        tifffile.imwrite(path, big)
    else:
        path = tmp_path / "big.tif"
        tifffile.imwrite(path, big, tile=(256, 256), compression="zlib")
    sn.read(files["scopenet.tif"], lazy=True).data[:4, :4].compute()  # imports and first-use caches
    del big
    rss0 = psutil.Process().memory_info().rss
    tracemalloc.start()
    try:
        img = sn.read(path, lazy=True)
        corner = img.data[:32, :32].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grew = psutil.Process().memory_info().rss - rss0
    assert img.data.npartitions >= 16 and max(img.data.chunksize) <= 1024
    np.testing.assert_array_equal(corner, (np.arange(32 * 2048) % 977).astype(np.float32).reshape(32, 2048)[:, :32])
    assert peak < 2**26 / 3, f"{kind}: reading a 32x32 corner allocated {peak / 2**20:.1f} MiB"
    assert grew < 2**26 / 2, f"{kind}: opening and reading a 32x32 corner grew RSS by {grew / 2**20:.1f} MiB"


def test_crop_of_a_lazy_image_is_an_eager_calibrated_crop(files):
    lazy = sn.read(files["scopenet.tif"], lazy=True)
    crop = lazy.crop(100, 164, 200, 232)
    ref = sn.read(files["scopenet.tif"]).crop(100, 164, 200, 232)
    assert type(crop) is sn.Micrograph and crop.axes == ref.axes
    np.testing.assert_array_equal(crop.data, ref.data)
    assert type(lazy.compute()) is sn.Micrograph


def test_formats_that_cannot_be_lazy_are_read_into_memory_and_say_so(tmp_path):
    src = sn.Micrograph(np.arange(12.0).reshape(3, 4))
    path = sn.write(src, tmp_path / "a.png")
    img = sn.read(path, lazy=True)
    assert isinstance(img, LazyMicrograph) and img.in_memory
    np.testing.assert_array_equal(np.asarray(img), sn.read(path).data)


def test_zarr_store_round_trip_and_refuses_to_overwrite(tmp_path):
    from scopenet.errors import WriteError

    img = sn.Micrograph(np.ones((3, 40, 50)), axes=[sn.Axis("frame", 3), sn.Axis("y", 40, 2.0, unit="nm"),
                                                   sn.Axis("x", 50, 2.0, unit="nm")])
    p = sn.write(img, tmp_path / "s.zarr")
    back = sn.read(p)
    assert back.axes == img.axes and back.shape == (3, 40, 50)
    with pytest.raises(WriteError, match="exists"):
        sn.write(img, p)
    sn.write(sn.read(p, lazy=True), tmp_path / "copy.zarr")  # lazy to zarr: chunk by chunk
    np.testing.assert_array_equal(sn.read(tmp_path / "copy.zarr").data, img.data)
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary store left
