"""``.npy`` and ``.png`` reading, format dispatch and bad input for the generic/HDF5/TIFF readers."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import ReadError
from scopenet.io import find_format, read, read_all
from scopenet.io.generic import rgb_to_gray, robust_limits, sidecar_path


# ---------------------------------------------------------------------------------- npy
def test_npy_without_sidecar_is_uncalibrated(tmp_path):
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    p = tmp_path / "a.npy"
    np.save(p, a)
    img = read(p)
    np.testing.assert_array_equal(img.data, a)
    assert img.data.dtype == np.float32 and not img.axes[-1].calibrated
    assert img.provenance[-1]["params"]["format"] == "NPY"


def test_npy_stack(tmp_path):
    p = tmp_path / "s.npy"
    np.save(p, np.ones((2, 3, 4)))
    assert read(p).shape == (2, 3, 4)


@pytest.mark.parametrize("arr, msg", [
    (np.arange(5.0), "shape"),
    (np.zeros((2, 2, 2, 2)), "shape"),
    (np.zeros((2, 2), dtype=complex), "complex"),
    (np.array(["a", "b"]).reshape(1, 2), "dtype"),
])
def test_npy_bad_arrays(tmp_path, arr, msg):
    p = tmp_path / "bad.npy"
    np.save(p, arr)
    with pytest.raises(ReadError, match=msg) as exc:
        read(p)
    assert exc.value.path == p


def test_npy_object_array_is_refused(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ReadError, match="obj.npy"):
        read(p)


def test_npy_sidecar_mismatch_and_garbage(tmp_path, rng):
    from scopenet.image.micrograph import Micrograph
    from scopenet.io import write

    p = write(Micrograph(rng.random((4, 5))), tmp_path / "m.npy")
    np.save(p, np.zeros((6, 5)))  # data replaced behind scopenet's back
    with pytest.raises(ReadError, match="shape"):
        read(p)
    sidecar_path(p).write_text("not json")
    with pytest.raises(ReadError, match="sidecar"):
        read(p)


def test_truncated_npy(tmp_path):
    p = tmp_path / "t.npy"
    np.save(p, np.zeros((50, 50)))
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(ReadError, match="t.npy"):
        read(p)


# ---------------------------------------------------------------------------------- png
def _save(tmp_path, arr, mode=None, name="x.png"):
    from PIL import Image

    p = tmp_path / name
    Image.fromarray(arr, mode=mode).save(p) if mode else Image.fromarray(arr).save(p)
    return p


def test_png_grey_8_and_16_bit(tmp_path):
    a8 = np.arange(60, dtype=np.uint8).reshape(6, 10)
    img = read(_save(tmp_path, a8, name="g8.png"))
    np.testing.assert_array_equal(img.data, a8)
    a16 = (np.arange(60, dtype=np.uint16) * 1000).reshape(6, 10)
    img16 = read(_save(tmp_path, a16, name="g16.png"))
    np.testing.assert_array_equal(img16.data, a16)
    assert "scopenet_note" not in img16.metadata


def test_png_rgb_identical_channels_is_one_channel(tmp_path):
    g = np.arange(60, dtype=np.uint8).reshape(6, 10)
    img = read(_save(tmp_path, np.stack([g, g, g], -1)))
    assert img.shape == (6, 10)
    np.testing.assert_array_equal(img.data, g)
    assert "scopenet_note" not in img.metadata


def test_png_true_colour_is_luminance_with_note(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 100
    img = read(_save(tmp_path, rgb))
    assert img.shape == (4, 4)
    np.testing.assert_allclose(img.data, 0.299 * 200 + 0.114 * 100, rtol=1e-6)
    assert "luminance" in img.metadata["scopenet_note"]


def test_png_rgba_and_grey_alpha(tmp_path):
    g = np.full((3, 5), 77, dtype=np.uint8)
    rgba = np.stack([g, g, g, np.full_like(g, 10)], -1)
    np.testing.assert_array_equal(read(_save(tmp_path, rgba, name="a.png")).data, g)
    la = np.stack([g, np.full_like(g, 255)], -1)
    np.testing.assert_array_equal(read(_save(tmp_path, la, mode="LA", name="la.png")).data, g)


def test_png_palette(tmp_path):
    from PIL import Image

    im = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10).convert("P")
    p = tmp_path / "p.png"
    im.save(p)
    np.testing.assert_array_equal(read(p).data, np.arange(16).reshape(4, 4) * 10)


def test_rgb_to_gray_helper():
    same = np.dstack([np.eye(3)] * 3)
    out, how = rgb_to_gray(same)
    assert how == "identical channels" and np.array_equal(out, np.eye(3))
    out, how = rgb_to_gray(np.array([[[1.0, 0.0, 0.0]]]))
    assert out[0, 0] == pytest.approx(0.299) and "luminance" in how


def test_robust_limits():
    data = np.linspace(0, 1, 10001)
    data[0] = -1e9  # an outlier does not set the contrast
    lo, hi = robust_limits(data)
    assert lo == pytest.approx(0.005, abs=1e-3) and hi == pytest.approx(0.995, abs=1e-3)
    assert robust_limits(np.full((3, 3), 2.0)) == (1.5, 2.5)
    assert robust_limits(np.full((3, 3), np.nan)) == (0.0, 1.0)


# ---------------------------------------------------------------------------------- dispatch & bad input
@pytest.mark.parametrize("head, name", [
    (b"\x93NUMPY\x01\x00", "NPY"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"\x89HDF\r\n\x1a\n", "HDF5"),
])
def test_magic_bytes(tmp_path, head, name):
    assert find_format(tmp_path / "file.unknown", head + bytes(504)).name == name


def test_extension_fallback():
    from pathlib import Path

    assert find_format(Path("a.emd")).name == "EMD"
    assert find_format(Path("a.h5")).name == "HDF5"
    assert find_format(Path("a.tiff"), for_writing=True).name == "TIFF"


def test_wrong_extension_still_read(tmp_path, rng):
    from scopenet.image.micrograph import Micrograph
    from scopenet.io import write

    p = write(Micrograph(rng.random((4, 6))), tmp_path / "a.h5")
    q = tmp_path / "a.tif"
    p.rename(q)
    assert read(q).shape == (4, 6)  # HDF5 by its signature, not its name


@pytest.mark.parametrize("ext", [".npy", ".png", ".h5", ".tif"])
def test_zero_byte_and_garbage(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.touch()
    with pytest.raises(ReadError, match="empty"):
        read(p)
    g = tmp_path / f"garbage{ext}"
    g.write_bytes(b"this is not an image at all" * 20)
    with pytest.raises(ReadError) as exc:
        read(g)
    assert exc.value.path == g


def test_directory_and_missing(tmp_path):
    with pytest.raises(ReadError, match="directory"):
        read(tmp_path)
    with pytest.raises(ReadError, match="no such file"):
        read(tmp_path / "nope.tif")


def test_truncated_hdf5(tmp_path, rng):
    from scopenet.image.micrograph import Micrograph
    from scopenet.io import write

    p = write(Micrograph(rng.random((64, 64))), tmp_path / "t.h5", compression=None)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(ReadError, match="cut.h5"):
        read_all(cut)


def test_hdf5_without_images(tmp_path):
    import h5py

    p = tmp_path / "n.h5"
    with h5py.File(p, "w") as f:
        f["v"] = np.arange(4)
    with pytest.raises(ReadError, match="no 2-D/3-D numeric dataset"):
        read(p)


def test_rgb_tiff_becomes_one_channel(tmp_path):
    import tifffile

    g = np.arange(20, dtype=np.uint8).reshape(4, 5)
    p = tmp_path / "grey_rgb.tif"
    tifffile.imwrite(p, np.stack([g, g, g], -1), photometric="rgb")
    img = read(p)
    assert img.shape == (4, 5)
    np.testing.assert_array_equal(img.data, g)
    q = tmp_path / "colour.tif"
    tifffile.imwrite(q, np.stack([g, np.zeros_like(g), np.zeros_like(g)], -1), photometric="rgb")
    np.testing.assert_allclose(read(q).data, 0.299 * g, rtol=1e-6)
