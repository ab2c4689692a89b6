"""Round trips through every writer (TIFF, HDF5, NPY) and the PNG preview."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from scopenet.errors import WriteError
from scopenet.image.micrograph import Axis, Micrograph, provenance_entry
from scopenet.io import read, read_all, write
from scopenet.io.generic import save_preview, sidecar_path
from scopenet.io.hdf5_io import write_hdf5


def _img(rng, stack=False, **kw) -> Micrograph:
    shape = (3, 20, 30) if stack else (20, 30)
    axes = [Axis("y", 20, 0.2, 1.0, "nm"), Axis("x", 30, 0.1, -2.5, "nm")]
    if stack:
        axes.insert(0, Axis("defocus", 3, 5.0, -5.0, "nm"))
    data = rng.normal(size=shape).astype(np.float32)
    data.flat[7] = np.nan  # NaN survives (unscanned pixels)
    kw = {"signal": "HAADF", "signal_unit": "counts", "modality": "STEM",
          "metadata": {"Microscope": {"HT": 300000.0, "name": "Titan µ"}, "list": [1, 2.5, "x"],
                       "flag": True, "none": None},
          "provenance": [provenance_entry("flatten", method="plane", order=1)], **kw}
    return Micrograph(data, axes=axes, **kw)


def _assert_same(a: Micrograph, b: Micrograph):
    np.testing.assert_array_equal(a.data, b.data)  # bit-exact, NaN included
    assert b.data.dtype == np.float32
    assert a.axes == b.axes
    assert (a.signal, a.signal_unit, a.modality, a.scan_direction) == \
           (b.signal, b.signal_unit, b.modality, b.scan_direction)
    assert b.metadata == a.metadata
    assert b.provenance[:-1] == a.provenance
    assert b.provenance[-1]["operation"] == "read"


@pytest.mark.parametrize("ext", [".tif", ".h5", ".npy"])
@pytest.mark.parametrize("stack", [False, True])
def test_round_trip_restores_everything(tmp_path, rng, ext, stack):
    img = _img(rng, stack=stack)
    p = write(img, tmp_path / f"out{ext}")
    back = read(p)
    _assert_same(img, back)
    assert back.source == p


@pytest.mark.parametrize("ext", [".tif", ".h5", ".npy"])
def test_round_trip_spm_image(tmp_path, rng, ext):
    img = _img(rng, signal="Z", signal_unit="m", modality="STM", scan_direction="backward/up")
    _assert_same(img, read(write(img, tmp_path / f"s{ext}")))


def test_tiff_is_imagej_calibrated_float32(tmp_path, rng):
    import tifffile

    img = _img(rng)
    p = write(img, tmp_path / "cal.tif")
    with tifffile.TiffFile(p) as tf:
        assert tf.is_imagej
        page = tf.pages[0]
        assert page.dtype == np.float32
        num, den = page.tags["XResolution"].value
        assert den / num == pytest.approx(0.1, rel=1e-6)  # pixels per nm -> 0.1 nm / px
        num, den = page.tags["YResolution"].value
        assert den / num == pytest.approx(0.2, rel=1e-6)
        assert tf.imagej_metadata["unit"] == "nm"
        assert json.loads(tf.imagej_metadata["scopenet"])["signal"] == "HAADF"


def test_tiff_micrometre_unit_is_imagej_micron(tmp_path, rng):
    import tifffile

    img = Micrograph(rng.random((8, 8)), axes=[Axis("y", 8, 0.5, unit="µm"), Axis("x", 8, 0.5, unit="µm")])
    p = write(img, tmp_path / "um.tif")
    with tifffile.TiffFile(p) as tf:
        assert tf.imagej_metadata["unit"] == "micron"
    assert read(p).pixel_unit == "µm"


def test_tiff_calibration_without_json_state(tmp_path, rng):
    """An ImageJ TIFF without scopenet's JSON (e.g. re-saved by Fiji) keeps its calibration."""
    import tifffile

    img = _img(rng)
    q = tmp_path / "b.tif"
    tifffile.imwrite(q, img.data, imagej=True, resolution=(10.0, 5.0), metadata={"unit": "nm"})
    back = read(q)
    assert back.pixel_size == (pytest.approx(0.2), pytest.approx(0.1)) and back.pixel_unit == "nm"
    np.testing.assert_array_equal(back.data, img.data)


def test_uncalibrated_round_trip(tmp_path, rng):
    img = Micrograph(rng.random((5, 7)))
    for ext in (".tif", ".h5", ".npy"):
        back = read(write(img, tmp_path / f"u{ext}"))
        assert back.axes == img.axes and not back.axes[-1].calibrated


def test_metadata_is_made_jsonable(tmp_path, rng):
    img = _img(rng, metadata={"arr": np.arange(3), "big": np.zeros(1000), "f": np.float32(1.5),
                              "b": b"bytes"})
    for ext in (".tif", ".h5", ".npy"):
        back = read(write(img, tmp_path / f"m{ext}"))
        assert back.metadata["arr"] == [0, 1, 2]
        assert back.metadata["f"] == 1.5 and back.metadata["b"] == "bytes"
        assert "shape=(1000,)" in back.metadata["big"]


def test_hdf5_several_images_and_layout(tmp_path, rng):
    import h5py

    a, b = _img(rng), _img(rng, stack=True)
    p = tmp_path / "two.h5"
    write_hdf5([a, b], p)
    back = read_all(p)
    assert len(back) == 2
    _assert_same(a, back[0])
    _assert_same(b, back[1])
    with h5py.File(p) as f:  # calibration readable by any HDF5 tool
        ds = f["scopenet/image_001/data"]
        np.testing.assert_allclose(ds.attrs["axis_scales"], [5.0, 0.2, 0.1])
        assert [s.decode() if isinstance(s, bytes) else s for s in ds.attrs["axis_units"]] == ["nm"] * 3


def test_npy_sidecar_written_beside_final_name(tmp_path, rng):
    img = _img(rng)
    p = write(img, tmp_path / "scan.npy")
    assert sidecar_path(p) == tmp_path / "scan.npy.json"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["scan.npy", "scan.npy.json"]
    np.testing.assert_array_equal(np.load(p), img.data)


def test_npy_failing_sidecar_leaves_nothing_behind(tmp_path, rng, monkeypatch):
    import scopenet.io.generic as G

    def boom(img):
        raise RuntimeError("disk full")

    monkeypatch.setattr(G, "state_to_json", boom)
    with pytest.raises(WriteError, match="scan.npy.*disk full"):
        write(_img(rng), tmp_path / "scan.npy")
    assert list(tmp_path.iterdir()) == []


def test_npy_sidecar_follows_the_main_file(tmp_path, rng, monkeypatch):
    import os

    p = tmp_path / "scan.npy"
    write(_img(rng), p)
    old_side = sidecar_path(p).read_text()
    calls = []

    def failing_replace(src, dst):
        calls.append(Path(dst).name)
        raise OSError("read-only file system")

    # the main file's rename fails: the existing pair is untouched and no temporary file remains
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="read-only"):
        write(_img(rng), p, overwrite=True)
    monkeypatch.undo()
    assert calls == ["scan.npy"]                                        # the sidecar is never moved first
    assert sorted(x.name for x in tmp_path.iterdir()) == ["scan.npy", "scan.npy.json"]
    assert sidecar_path(p).read_text() == old_side


@pytest.mark.parametrize("ext", [".tif", ".h5", ".npy", ".png"])
def test_no_overwrite_without_flag(tmp_path, rng, ext):
    p = tmp_path / f"exists{ext}"
    p.write_bytes(b"original")
    with pytest.raises(WriteError, match="exists"):
        write(_img(rng), p)
    assert p.read_bytes() == b"original"
    assert [x.name for x in tmp_path.iterdir()] == [p.name]  # no partial file left
    write(_img(rng), p, overwrite=True)
    assert p.read_bytes() != b"original"


def test_unknown_extension_is_write_error(tmp_path, rng):
    with pytest.raises(WriteError, match="no writer"):
        write(_img(rng), tmp_path / "x.xyz")


# ---------------------------------------------------------------------------------- PNG preview
def _png_size(p):
    from PIL import Image

    with Image.open(p) as im:
        im.verify()
    with Image.open(p) as im:
        return im.size, im.mode


@pytest.mark.parametrize("shape", [(40, 80), (100, 50), (8, 8)])
def test_png_preview_valid_and_aspect(tmp_path, rng, shape):
    img = Micrograph(rng.random(shape), axes=[Axis("y", shape[0], 0.5, unit="nm"),
                                              Axis("x", shape[1], 0.5, unit="nm")])
    p = write(img, tmp_path / "p.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (w, h), mode = _png_size(p)
    assert w / h == pytest.approx(shape[1] / shape[0], rel=0.02)
    assert max(w, h) >= 256


def test_png_preview_physical_aspect(tmp_path, rng):
    """Non-square pixels: the preview shows the physical shape (20 x 0.4 nm high, 20 x 0.2 nm wide)."""
    img = Micrograph(rng.random((20, 20)), axes=[Axis("y", 20, 0.4, unit="nm"), Axis("x", 20, 0.2, unit="nm")])
    (w, h), _ = _png_size(write(img, tmp_path / "p.png"))
    assert h / w == pytest.approx(2.0, rel=0.02)


def test_png_preview_colours_and_scale_bar(tmp_path, rng):
    from PIL import Image

    base = rng.random((64, 64))
    spm = Micrograph(base, axes=[Axis("y", 64, 1e-10, unit="m"), Axis("x", 64, 1e-10, unit="m")],
                     modality="STM", scan_direction="forward/up")
    p1 = save_preview(spm, tmp_path / "spm.png")  # afmhot: red > blue on average
    a = np.asarray(Image.open(p1).convert("RGB"), dtype=float)
    assert a[..., 0].mean() > a[..., 2].mean() + 10
    p2 = save_preview(base, tmp_path / "gray.png", cmap="gray")  # grey: R == G == B
    b = np.asarray(Image.open(p2).convert("RGB"), dtype=int)
    assert np.array_equal(b[..., 0], b[..., 2])
    # a calibrated image gets a scale bar: the bottom-left region differs from the uncalibrated one
    flat = np.zeros((64, 64))
    flat[0, 0] = 1.0
    cal = Micrograph(flat, axes=[Axis("y", 64, 1.0, unit="nm"), Axis("x", 64, 1.0, unit="nm")])
    pc = save_preview(cal, tmp_path / "cal.png", cmap="gray")
    pu = save_preview(Micrograph(flat), tmp_path / "uncal.png", cmap="gray")
    c = np.asarray(Image.open(pc).convert("L"), dtype=int)
    u = np.asarray(Image.open(pu).convert("L"), dtype=int)
    assert c.shape == u.shape
    assert (c[int(0.8 * c.shape[0]):, : c.shape[1] // 2] > 128).sum() > 50

    def longest_bright_run(a):
        runs = "\n".join("".join("1" if v > 128 else "0" for v in row) for row in a[int(0.8 * a.shape[0]):])
        return max(len(r) for r in runs.replace("\n", "0").split("0"))

    # the calibrated one has a bar (10 nm of the 64 nm width at 4 PNG px per pixel); the uncalibrated
    # one only the word "uncalibrated" (issue #18), no bar
    assert longest_bright_run(c) >= 38
    assert longest_bright_run(u) < 20


def test_png_preview_colorbar_widens(tmp_path, rng):
    img = Micrograph(rng.random((50, 50)))
    (w0, h0), _ = _png_size(save_preview(img, tmp_path / "a.png"))
    (w1, h1), _ = _png_size(save_preview(img, tmp_path / "b.png", colorbar=True))
    assert h1 == h0 and w1 > w0


def test_save_preview_overwrite(tmp_path, rng):
    p = tmp_path / "keep.png"
    save_preview(rng.random((10, 10)), p)
    before = p.read_bytes()
    with pytest.raises(WriteError):
        save_preview(rng.random((10, 10)) * 5, p)
    assert p.read_bytes() == before
    save_preview(np.zeros((10, 10)), p, overwrite=True)  # constant image: no division by zero
    assert p.read_bytes() != before


def test_png_preview_of_stack_and_nan(tmp_path, rng):
    data = rng.random((3, 16, 24))
    data[0, :4] = np.nan
    (w, h), _ = _png_size(write(Micrograph(data), tmp_path / "s.png"))
    assert w / h == pytest.approx(24 / 16, rel=0.02)


@pytest.mark.parametrize("scale, unit, ij_unit, ij_scale", [
    (1e-10, "m", "nm", 0.1), (7.8125e-10, "m", "nm", 0.78125), (2e-5, "m", "micron", 20.0),
    (0.05, "nm", "nm", 0.05), (1234.5, "nm", "nm", 1234.5),
])
def test_tiff_imagej_calibration_for_si_metres(tmp_path, rng, scale, unit, ij_unit, ij_scale):
    """SPM files calibrate in metres: ImageJ gets nm/micron, the JSON keeps metres exactly."""
    import tifffile

    img = Micrograph(rng.random((6, 6)), axes=[Axis("y", 6, scale, unit=unit), Axis("x", 6, scale, unit=unit)])
    p = write(img, tmp_path / "m.tif")
    with tifffile.TiffFile(p) as tf:
        num, den = tf.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(ij_scale, rel=1e-5)
        assert tf.imagej_metadata["unit"] == ij_unit
    back = read(p)
    assert back.axes == img.axes


# ------------------------------------------------------------------- all-NaN / all-inf images
@pytest.mark.parametrize("ext", [".tif", ".h5", ".npy", ".png"])
@pytest.mark.parametrize("fill", [np.nan, np.inf, "mixed"])
@pytest.mark.parametrize("stack", [False, True])
def test_all_nan_or_inf_image_is_refused(tmp_path, ext, fill, stack):
    """``flatten`` of an all-NaN image wrote an all-NaN file and exited 0: a writer refuses it."""
    shape = (3, 6, 7) if stack else (6, 7)
    data = np.full(shape, np.nan if fill == "mixed" else fill, dtype=np.float32)
    if fill == "mixed":
        data.flat[::2] = -np.inf
    p = tmp_path / f"empty{ext}"
    with pytest.raises(WriteError, match=rf"empty{re.escape(ext)}.*all (NaN|infinite|NaN or infinite)"):
        write(Micrograph(data), p)
    assert list(tmp_path.iterdir()) == []


def test_all_nan_preview_is_refused_but_one_finite_value_is_enough(tmp_path):
    with pytest.raises(WriteError, match="nan.png.*all NaN"):
        save_preview(np.full((5, 5), np.nan), tmp_path / "nan.png")
    data = np.full((5, 5), np.nan)
    data[2, 3] = 1.0
    for ext in (".tif", ".h5", ".npy", ".png"):
        write(Micrograph(data), tmp_path / f"one{ext}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "one.npy", "one.npy.json", "one.png",
                                                          "one.tif"]
