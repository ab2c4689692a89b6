"""Electron-microscopy readers (DM3/DM4, EMD, SER/EMI, MRC, TIFF) on real fixtures and generated files.

Fixture values are those documented in ``../shared/fixtures/README.md`` (section 7 and 8); those
tests skip when the shared folder is absent. Tests on ``tests/data/em`` (made by
``tests/data/make_em_testdata.py``) always run.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import scopenet.io as sio
from scopenet.errors import ReadError
from scopenet.io import em, find_format, read, read_all
from tests.conftest import TEST_DATA, shared_path

GEN = TEST_DATA / "em"


def fx(*parts: str) -> Path:
    return shared_path("fixtures", *parts)


def _check(img, shape, lo, hi, mean, first=None, scale=None, unit=None, mean_rel=1e-4):
    assert img.shape == shape
    assert img.data.dtype == np.float32
    assert float(img.data.min()) == pytest.approx(lo, rel=1e-6)
    assert float(img.data.max()) == pytest.approx(hi, rel=1e-6)
    assert float(img.data.astype(np.float64).mean()) == pytest.approx(mean, rel=mean_rel)
    if first is not None:
        assert float(img.data[(0,) * img.ndim]) == pytest.approx(first, rel=1e-6)
    if scale is not None:
        assert img.axes[-1].scale == pytest.approx(scale, rel=1e-9)
        assert img.axes[-2].scale == pytest.approx(scale, rel=1e-9)
    if unit is not None:
        assert img.axes[-1].unit == unit and img.axes[-2].unit == unit
    assert [a.name for a in img.axes[-2:]] == ["y", "x"]
    assert img.source is not None and img.provenance[-1]["operation"] == "read"


# ---------------------------------------------------------------------------------- fixtures: DM
def test_dm3_multi_signal_keeps_image_skips_plot():
    imgs = read_all(fx("em", "dm", "multi_signal.dm3"))
    assert len(imgs) == 1  # the 1-D 'Plot' signal is skipped
    img = imgs[0]
    _check(img, (512, 512), 0, 9739, 3622.02, first=195, scale=0.017751578241586685, unit="nm")
    assert img.signal == "HAADF"
    assert img.modality == "STEM"
    assert "ImageList" in img.metadata  # original DM tags, untouched
    assert img.provenance[-1]["params"]["format"] == "DM"


def test_dm3_stem_image_offsets():
    img = read(fx("em", "dm", "test_STEM_image.dm3"))
    _check(img, (68, 68), 29407, 36106, 32655.4, first=33121, scale=0.24853801727294922, unit="nm")
    assert img.axes[0].offset == pytest.approx(42.500000953674316)
    assert img.axes[1].offset == pytest.approx(51.44736957550049)
    assert img.pixel_size_m()[1] == pytest.approx(0.24853801727294922e-9)


def test_dm3_diffraction_reciprocal_units():
    img = read(fx("em", "dm", "test_diffraction_pattern.dm3"))
    _check(img, (87, 87), 625, 2974, 1249.8, first=834, scale=0.17443285882472992, unit="1/nm")
    assert img.axes[0].offset == pytest.approx(131.87124127149582)
    assert img.pixel_size_m() == (None, None)  # 1/nm is not a length


def test_dm3_image_stack():
    img = read(fx("em", "dm", "test_stackbuilder_imagestack.dm3"))
    _check(img, (3, 2, 16), 593415, 640661, 610174, scale=0.05998290330171585, unit="µm")
    np.testing.assert_array_equal(img.data[:, 0, :4], [[606491, 615402, 621457, 620374],
                                                       [608562, 601442, 607676, 615272],
                                                       [624275, 610000, 606528, 612178]])
    assert img.is_stack and not img.axes[0].calibrated


def test_dm4_cl_image():
    img = read(fx("em", "dm", "test-MonarcCL_mono-image.dm4"))
    _check(img, (2, 2), 9, 10, 9.75, scale=18.325349807739258, unit="µm")
    np.testing.assert_array_equal(img.data, [[10, 9], [10, 10]])
    assert img.modality == "SEM"
    assert img.signal == "MonoCL-image-rebin"


def test_dm4_spectrum_image_only_is_an_error():
    p = fx("em", "dm", "EELS_SI.dm4")
    with pytest.raises(ReadError, match="no image signal") as exc:
        read(p)
    assert exc.value.path == p and "spectrum image" in str(exc.value)


# ---------------------------------------------------------------------------------- fixtures: EMD
def test_velox_emd_images_only():
    imgs = read_all(fx("em", "emd", "Test SI 16x16 ReducedData 215 kx.emd"))
    assert [m.signal for m in imgs] == ["C", "Ca", "O", "Cu", "HAADF"]  # 4 EDS spectra skipped
    maxima = [1.8154164552688599, 0.8256707787513733, 0.5544787645339966, 0.33977171778678894]
    for m, mx in zip(imgs[:4], maxima):
        assert m.shape == (16, 16)
        assert float(m.data.max()) == pytest.approx(mx, rel=1e-6)
        assert m.axes[0].offset == pytest.approx(-32.393243303653215)
        assert m.axes[1].offset == pytest.approx(-39.59174181557615)
    haadf = imgs[4]
    _check(haadf, (16, 16), 5425, 15943, 9202.5, first=7375, scale=3.5992492559614684, unit="nm")
    assert haadf.modality == "STEM"
    assert find_format(Path("x.emd"), b"\x89HDF\r\n\x1a\n" + bytes(8)).name == "HDF5"  # then handed on
    assert haadf.provenance[-1]["params"]["format"] == "EMD-Velox"


def test_ncem_emd_stored_orientation():
    img = read(fx("em", "emd", "Acquisition_18.emd"))
    _check(img, (1024, 1024), 4842, 23891, 10663.5, first=12487, scale=0.012246524915099144, unit="nm")
    # the stored (dim1=Y, dim2=X) order, as h5py gives it (rsciio's transpose is undone)
    np.testing.assert_array_equal(img.data[0, :4], [12487, 11742, 12603, 8926])
    np.testing.assert_array_equal(img.data[:4, 0], [12487, 12487, 10964, 11336])
    assert "microscope" in img.metadata


# ---------------------------------------------------------------------------------- fixtures: TIA, MRC
@pytest.mark.parametrize("name", ["128x128-TEM_search.emi", "128x128-TEM_search_1.ser"])
def test_tia(name):
    img = read(fx("em", "tia", name))
    _check(img, (128, 128), 255, 14171, 10353.9, first=12796, scale=5.261214205047081, unit="nm")
    # the SER offset (-3.367e-7 m = -64 px) is converted to nm
    assert img.axes[-1].offset == pytest.approx(-64 * 5.261214205047081, rel=1e-9)
    if name.endswith(".emi"):
        assert img.modality == "TEM"


def test_ser_alone_and_emi_without_ser(tmp_path):
    src = fx("em", "tia")
    shutil.copy(src / "128x128-TEM_search_1.ser", tmp_path / "alone_1.ser")
    assert read(tmp_path / "alone_1.ser").shape == (128, 128)
    shutil.copy(src / "128x128-TEM_search.emi", tmp_path / "lonely.emi")
    with pytest.raises(ReadError, match="lonely_1.ser"):
        read(tmp_path / "lonely.emi")


def test_mrc_fixture():
    img = read(fx("em", "mrc", "HAADFscan.mrc"))
    _check(img, (16, 16), 3923, 9399, 6066.2, scale=5.679131317138672, unit="nm")
    np.testing.assert_array_equal(img.data[0, :4], [5715, 6654, 7842, 8618])


# ---------------------------------------------------------------------------------- fixtures: TIFF
def test_imagej_tiff_fixture():
    img = read(fx("em", "tiff", "test_loading_image_saved_with_imageJ.tif"))
    _check(img, (68, 68), 2866.0, 3774.0, 3335.39, first=3465.0, scale=0.16867471098853332, unit="µm")
    assert "ImageDescription" in img.metadata


PARTIAL = {  # file: (max, mean, non-zero pixels)
    "partial_scan-1": (1, 0.0828124, 45773), "partial_scan-5": (1, 0.119374, 45773),
    "truth-1": (1, 0.134038, 262143), "truth-2": (1, 0.0986849, 257524),
    "truth-5": (1, 0.500863, 262143), "mask-3": (0.625, 0.045311, 45773),
}


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_partial_stem_tiffs(name):
    img = read(fx("partial-stem", f"{name}.tif"))
    mx, mean, nz = PARTIAL[name]
    _check(img, (512, 512), 0, mx, mean)
    assert int(np.count_nonzero(img.data)) == nz
    assert not img.axes[-1].calibrated  # no resolution tags


def test_partial_stem_mask_matches_scan():
    mask = read(fx("partial-stem", "mask-2.tif")).data
    scan = read(fx("partial-stem", "partial_scan-2.tif")).data
    np.testing.assert_array_equal(mask > 0, scan > 0)
    assert len(np.unique(mask)) == 11


# ---------------------------------------------------------------------------------- generated files
def _pattern(*shape):
    sys_path = TEST_DATA
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_em", sys_path / "make_em_testdata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.pattern(*shape)


def test_generated_mrc():
    img = read(GEN / "generated.mrc")
    np.testing.assert_array_equal(img.data, _pattern(24, 32))
    assert img.pixel_size == (pytest.approx(0.25), pytest.approx(0.25)) and img.pixel_unit == "nm"
    assert img.pixel_size_m()[1] == pytest.approx(2.5e-10)  # 2.5 Å


def test_generated_mrc_stack():
    img = read(GEN / "generated_stack.mrc")
    assert img.shape == (3, 8, 12)
    np.testing.assert_array_equal(img.data, _pattern(3, 8, 12))
    assert img.axes[0].name == "frame" and not img.axes[0].calibrated
    assert img.axes[-1].scale == pytest.approx(1.0) and img.axes[-1].unit == "nm"


def test_generated_imagej_tiffs():
    img = read(GEN / "generated_imagej.tif")
    np.testing.assert_array_equal(img.data, _pattern(24, 32))
    assert (img.axes[0].scale, img.axes[1].scale) == (pytest.approx(0.25), pytest.approx(0.5))
    assert img.axes[1].offset == pytest.approx(-2.0) and img.pixel_unit == "nm"
    mic = read(GEN / "generated_imagej_micron.tif")
    assert mic.pixel_unit == "µm" and mic.pixel_size[1] == pytest.approx(0.125)
    np.testing.assert_array_equal(mic.data, _pattern(16, 16))
    st = read(GEN / "generated_imagej_stack.tif")
    assert st.shape == (4, 8, 10)
    np.testing.assert_array_equal(st.data, _pattern(4, 8, 10))
    assert st.axes[0].scale == pytest.approx(1.5) and st.axes[0].unit == "nm"
    assert st.axes[-1].scale == pytest.approx(0.2)
    plain = read(GEN / "generated_plain.tif")
    np.testing.assert_array_equal(plain.data, _pattern(10, 12))
    assert not plain.axes[-1].calibrated


def test_generated_ncem_emd_orientation_and_unit():
    img = read(GEN / "generated_ncem.emd")
    assert img.shape == (12, 20)
    np.testing.assert_array_equal(img.data, _pattern(12, 20))  # rows are Y, as stored
    assert img.pixel_unit == "nm"  # NCEM's 'n_m'
    assert img.axes[0].scale == pytest.approx(0.05, rel=1e-6)


def test_emd_wins_over_generic_hdf5(tmp_path):
    # the same NCEM file named .h5 is still recognised as EMD by its layout
    p = tmp_path / "acq.h5"
    shutil.copy(GEN / "generated_ncem.emd", p)
    img = read(p)
    assert img.signal == "single" and img.pixel_unit == "nm"
    assert img.provenance[-1]["params"]["format"] == "EMD-NCEM"


def test_generated_plain_hdf5():
    imgs = read_all(GEN / "generated_plain.h5")
    assert len(imgs) == 1  # the 1-D dataset is not an image
    np.testing.assert_array_equal(imgs[0].data, _pattern(6, 7))
    assert imgs[0].metadata["hdf5_path"] == "/images/frame"


# ---------------------------------------------------------------------------------- magic bytes
def test_magic_detection_ignores_extension(tmp_path):
    for src, name in [(GEN / "generated.mrc", "MRC"), (GEN / "generated_imagej.tif", "TIFF")]:
        p = tmp_path / (src.stem + ".dat")
        shutil.copy(src, p)
        assert find_format(p, p.read_bytes()[:512]).name == name
        assert read(p).shape[-2:] == read(src).shape[-2:]


def test_dm_magic():
    assert em.is_dm(bytes.fromhex("00000003000a873400000001") + bytes(4))
    assert em.is_dm(bytes.fromhex("000000040000000000053053" + "00000001"))
    assert not em.is_dm(b"\x00\x00\x00\x05" + bytes(12))
    assert not em.is_dm(b"II*\x00" + bytes(12))


# ---------------------------------------------------------------------------------- error cases
def _truncate(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


@pytest.mark.parametrize("n", [100, 1024, 2000])
def test_truncated_generated_mrc(tmp_path, n):
    p = _truncate(GEN / "generated.mrc", tmp_path / "cut.mrc", n)
    with pytest.raises(ReadError) as exc:
        read(p)
    assert exc.value.path == p
    if n >= 1024:
        assert "truncated" in str(exc.value)


@pytest.mark.parametrize("n", [8, 200, 1000])
def test_truncated_generated_tiff(tmp_path, n):
    p = _truncate(GEN / "generated_imagej.tif", tmp_path / "cut.tif", n)
    with pytest.raises(ReadError) as exc:
        read(p)
    assert exc.value.path == p


def test_truncated_emd(tmp_path):
    p = _truncate(GEN / "generated_ncem.emd", tmp_path / "cut.emd", 3000)
    with pytest.raises(ReadError, match="cut.emd"):
        read(p)


@pytest.mark.parametrize("frac", [0.02, 0.5, 0.9])
def test_truncated_dm_fixture(tmp_path, frac):
    src = fx("em", "dm", "test_STEM_image.dm3")
    p = _truncate(src, tmp_path / "cut.dm3", int(src.stat().st_size * frac))
    with pytest.raises(ReadError) as exc:
        read(p)
    assert exc.value.path == p


def test_truncated_mrc_fixture(tmp_path):
    src = fx("em", "mrc", "HAADFscan.mrc")
    p = _truncate(src, tmp_path / "cut.mrc", src.stat().st_size - 100)
    with pytest.raises(ReadError, match="truncated MRC"):
        read(p)


@pytest.mark.parametrize("ext", [".dm3", ".dm4", ".mrc", ".ser", ".emd", ".tif"])
def test_random_bytes_with_em_extension(tmp_path, ext):
    p = tmp_path / f"noise{ext}"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(ReadError) as exc:
        sio.read(p)
    assert exc.value.path == p
