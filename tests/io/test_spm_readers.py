"""Scanning-probe readers: Nanonis .sxm, Omicron MATRIX, Gwyddion .gwy, Igor .ibw, Bruker Nanoscope.

Two kinds of tests:

* generated files in ``tests/data/spm`` (always run): a known physical image stored the way each
  instrument stores it, so values, calibration and the orientation convention are checked exactly;
* the real instrument files of ``../shared/fixtures`` (skipped when absent), checked against the
  values documented in its README. The README quotes arrays *as stored*; our readers return them
  as seen on screen (row 0 = top, backward traces mirrored), so stored ``[0, 0]`` maps to the
  corner given in each test.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import scopenet.io as sio
from scopenet.errors import ReadError

from ..conftest import TEST_DATA, shared_path

SPM = TEST_DATA / "spm"
_spec = importlib.util.spec_from_file_location("make_spm_testdata", TEST_DATA / "make_spm_testdata.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def by_key(images):
    return {(m.signal, m.scan_direction): m for m in images}


def rowcorr(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def assert_read_provenance(img, fmt):
    assert img.provenance[0]["operation"] == "read"
    assert img.provenance[0]["params"]["format"] == fmt
    assert Path(img.provenance[0]["params"]["path"]).name == img.source.name


# ================================================================================ Nanonis .sxm
@pytest.mark.parametrize("scan_dir", ["down", "up"])
def test_sxm_generated_orientation_and_values(scan_dir):
    imgs = sio.read_all(SPM / f"generated_{scan_dir}.sxm")
    assert [(m.signal, m.scan_direction) for m in imgs] == [
        ("Z", f"forward/{scan_dir}"), ("Z", f"backward/{scan_dir}"),
        ("Current", f"forward/{scan_dir}"), ("Current", f"backward/{scan_dir}"),
        ("Bias", f"forward/{scan_dir}")]
    k = by_key(imgs)
    z = gen.physical(12, 16, 1e-11, -2e-8)
    np.testing.assert_allclose(k["Z", f"forward/{scan_dir}"].data, z, rtol=1e-6)
    np.testing.assert_allclose(k["Z", f"backward/{scan_dir}"].data, z + 1e-12, rtol=1e-6)
    np.testing.assert_allclose(k["Current", f"backward/{scan_dir}"].data,
                               gen.physical(12, 16, 1e-13, 1e-10) + 1e-14, rtol=1e-6)
    m = k["Z", f"forward/{scan_dir}"]
    assert m.data.dtype == np.float32 and m.shape == (12, 16)
    assert m.pixel_size == pytest.approx((2.4e-9 / 12, 3.2e-9 / 16))
    assert m.pixel_unit == "m" and m.signal_unit == "m"
    assert m.modality == "STM"
    assert m.metadata["SCAN_DIR"] == scan_dir
    assert_read_provenance(m, "nanonis-sxm")


def test_sxm_read_selects_channel_and_direction():
    img = sio.read(SPM / "generated_up.sxm", channel="current", direction="backward")
    assert img.signal == "Current" and img.scan_direction == "backward/up"


def test_sxm_little_endian_double(tmp_path):
    phys = gen.physical(4, 5)
    data = gen.sxm_bytes([("Z", "m", "forward", {"forward": phys})], nx=5, ny=4, width=1e-9,
                         height=1e-9, scanit_type="DOUBLE            LSBFIRST")
    p = tmp_path / "le.sxm"
    p.write_bytes(data)
    (img,) = sio.read_all(p)
    np.testing.assert_allclose(img.data, phys, rtol=1e-6)


def test_sxm_nan_lines_stay_nan(tmp_path):
    phys = gen.physical(6, 4)
    phys[:2] = np.nan  # a down scan stopped early: the last lines never came
    stored = gen.sxm_stored(phys, True, up=True)
    p = tmp_path / "stopped.sxm"
    p.write_bytes(gen.sxm_bytes([("Z", "m", "forward", {"forward": stored})], nx=4, ny=6,
                                width=1e-9, height=1e-9, scan_dir="up"))
    (img,) = sio.read_all(p)
    assert np.isnan(img.data[:2]).all() and np.isfinite(img.data[2:]).all()


def test_sxm_truncated_names_file(tmp_path):
    data = (SPM / "generated_down.sxm").read_bytes()
    p = tmp_path / "cut.sxm"
    p.write_bytes(data[:-10])
    with pytest.raises(ReadError, match="cut.sxm.*truncated"):
        sio.read_all(p)


def test_sxm_huge_declared_size_is_refused_fast(tmp_path):
    data = (SPM / "generated_down.sxm").read_bytes().replace(b"       16       12\n",
                                                              b"       100000       100000\n")
    p = tmp_path / "huge.sxm"
    p.write_bytes(data)
    with pytest.raises(ReadError, match="huge.sxm"):
        sio.read_all(p)


SXM_FIXTURES = {
    # file: (scan_dir, pixel size, {(channel, trace): (min, max, mean, stored [0,0] or None)})
    "Si_7x7_012.sxm": ("down", 7.8125e-10, {
        ("Z", "forward"): (-4.5663466e-08, -4.121504e-08, -4.32337e-08, -4.444725e-08),
        ("Z", "backward"): (-4.5664102e-08, -4.1190248e-08, -4.32218e-08, -4.1190248e-08),
        ("Current", "forward"): (3.6006885e-11, 7.057134e-10, 3.05267e-10, 3.1461442e-10),
        ("Current", "backward"): (9.551258e-11, 2.513668e-09, 2.26507e-10, 2.8684702e-10)}),
    "Si_7x7_051.sxm": ("down", 7.8125e-11, {
        ("Z", "forward"): (-6.8402755e-08, -6.789794e-08, -6.81449e-08, -6.7925676e-08),
        ("Z", "backward"): (-6.840206e-08, -6.789985e-08, -6.81458e-08, -6.7912907e-08),
        ("Current", "forward"): (-1.710088e-11, 6.805513e-10, 2.51276e-10, 2.4085403e-10),
        ("Current", "backward"): (1.2248652e-10, 3.7386996e-10, 2.51222e-10, 2.6899125e-10)}),
    "A151216.123306-02602.sxm": ("up", 1.5625e-11, {
        ("Z", "forward"): (-2.1861611e-08, -2.1861611e-08, -2.18616e-08, None),
        ("Input_4", "backward"): (-0.001214902, 0.0014233958, 3.58471e-05, None),
        ("Current", "forward"): (-2.5943852e-14, 3.4118327e-13, 1.45129e-13, None),
        ("Phase", "backward"): (-3.2381916, 2.772197, -0.225125, None),
        ("Amplitude", "forward"): (9.916741e-11, 1.00694314e-10, 1e-10, None),
        ("Frequency_Shift", "forward"): (-4.84073, -1.4665262, -3.23275, -1.9027416),
        ("Frequency_Shift", "backward"): (-5.017252, -1.2459537, -3.23784, None),
        ("Excitation", "forward"): (-0.00205578, 0.017397167, 0.00779631, None),
        ("LIX_1_omega", "backward"): (-2.3701486e-14, 1.986301e-14, -1.00063e-17, None),
        ("LIY_1_omega", "forward"): (-8.036299e-15, 7.15348e-15, 6.32945e-18, None)}),
}


@pytest.mark.parametrize("name", list(SXM_FIXTURES))
def test_sxm_fixtures(name):
    path = shared_path("fixtures", "sxm", name)
    scan_dir, px, table = SXM_FIXTURES[name]
    imgs = sio.read_all(path)
    k = {(m.signal, m.scan_direction.split("/")[0]): m for m in imgs}
    for (ch, tr), (lo, hi, mean, first) in table.items():
        m = k[ch, tr]
        assert m.scan_direction == f"{tr}/{scan_dir}"
        assert m.data.dtype == np.float32 and not np.isnan(m.data).any()
        assert float(m.data.min()) == pytest.approx(lo, rel=1e-6)
        assert float(m.data.max()) == pytest.approx(hi, rel=1e-6)
        assert float(m.data.astype(np.float64).mean()) == pytest.approx(mean, rel=1e-4, abs=1e-20)
        assert m.pixel_size == pytest.approx((px, px), rel=1e-9)
        if first is not None:
            # stored [0,0]: top-left for forward/down; mirrored to top-right for backward/down;
            # an up scan's stored first line is our bottom row
            row = -1 if scan_dir == "up" else 0
            col = 0 if tr == "forward" else -1
            assert float(m.data[row, col]) == pytest.approx(first, rel=1e-6)
    n_channels = 9 if name.startswith("A151216") else 2
    assert len(imgs) == 2 * n_channels
    assert imgs[0].modality == ("AFM" if name.startswith("A151216") else "STM")


@pytest.mark.parametrize("name, channel, expected", [
    ("Si_7x7_012.sxm", "Z", 0.99), ("Si_7x7_051.sxm", "Z", 0.70),
    ("A151216.123306-02602.sxm", "Frequency_Shift", 0.90)])
def test_sxm_backward_lines_up_with_forward(name, channel, expected):
    imgs = by_key(sio.read_all(shared_path("fixtures", "sxm", name)))
    d = "up" if name.startswith("A151216") else "down"
    fwd, bwd = imgs[channel, f"forward/{d}"].data, imgs[channel, f"backward/{d}"].data
    assert rowcorr(fwd, bwd) > expected
    assert rowcorr(fwd, bwd[:, ::-1]) < 0.3  # the mirrored-back (stored) order does not


# ============================================================================= Omicron MATRIX
def test_matrix_generated_four_traces_line_up():
    imgs = sio.read_all(SPM / "gen_full--1_1.Z_mtrx")
    assert [m.scan_direction for m in imgs] == ["forward/up", "backward/up", "forward/down", "backward/down"]
    phys = gen.physical(10, 8, 1e-12)
    for m in imgs:
        expected = phys + (5e-12 if m.scan_direction.startswith("backward") else 0.0)
        np.testing.assert_allclose(m.data, expected, rtol=1e-6, atol=1e-18)
        assert m.signal == "Z" and m.signal_unit == "m" and m.data.dtype == np.float32
        assert m.pixel_size == pytest.approx((2.5e-9 / 10, 2e-9 / 8))
        assert m.metadata["param"]["EEPA::XYScanner.Points"][0] == 8
        assert_read_provenance(m, "omicron-matrix")


def test_matrix_stopped_during_up_pass_gives_nan_top_rows_and_no_down_traces():
    imgs = sio.read_all(SPM / "gen_stopped_up--1_1.Z_mtrx")
    assert [m.scan_direction for m in imgs] == ["forward/up", "backward/up"]
    fwd = imgs[0]
    assert fwd.shape == (10, 8)
    assert np.isnan(fwd.data[:4]).all() and np.isfinite(fwd.data[4:]).all()
    np.testing.assert_allclose(fwd.data[4:], gen.physical(10, 8, 1e-12)[4:], rtol=1e-6)


def test_matrix_stopped_during_down_pass_and_crop_unscanned():
    from scopenet.io.matrix import crop_unscanned

    k = {m.scan_direction: m for m in sio.read_all(SPM / "gen_stopped_down--1_1.Z_mtrx")}
    assert np.isfinite(k["forward/up"].data).all()
    down = k["forward/down"]
    assert np.isnan(down.data[4:]).all() and np.isfinite(down.data[:4]).all()
    cropped = crop_unscanned(down)
    assert cropped.shape == (4, 8)
    np.testing.assert_array_equal(cropped.data, down.data[:4])
    assert cropped.pixel_size == down.pixel_size
    assert cropped.provenance[-1]["operation"] == "crop_unscanned"
    assert len(cropped.provenance) == len(down.provenance) + 1
    up = crop_unscanned(sio.read_all(SPM / "gen_stopped_up--1_1.Z_mtrx")[0])
    assert up.shape == (6, 8) and up.axes[0].offset == pytest.approx(4 * up.pixel_size[0])


def test_crop_unscanned_rejects_all_nan():
    from scopenet.errors import InputError
    from scopenet.image.micrograph import Micrograph
    from scopenet.io.matrix import crop_unscanned

    with pytest.raises(InputError, match="NaN"):
        crop_unscanned(Micrograph(np.full((3, 3), np.nan)))


def test_matrix_without_index_raises(tmp_path):
    data = (SPM / "gen_full--1_1.Z_mtrx").read_bytes()
    p = tmp_path / "gen_full--1_1.Z_mtrx"
    p.write_bytes(data)
    with pytest.raises(ReadError, match=r"gen_full--1_1\.Z_mtrx.*gen_full_0001\.mtrx"):
        sio.read_all(p)


def test_matrix_index_file_itself_is_refused():
    with pytest.raises(ReadError, match="index file"):
        sio.read_all(SPM / "gen_full_0001.mtrx")


def test_matrix_corrupt_index_raises(tmp_path):
    (tmp_path / "x--1_1.Z_mtrx").write_bytes((SPM / "gen_full--1_1.Z_mtrx").read_bytes())
    (tmp_path / "x_0001.mtrx").write_bytes((SPM / "gen_full_0001.mtrx").read_bytes()[:60])
    with pytest.raises(ReadError, match="x--1_1.Z_mtrx"):
        sio.read_all(tmp_path / "x--1_1.Z_mtrx")


MATRIX_FIXTURE = {  # trace: (min, max, mean, stored [0,0])
    "forward/up": (-3.904101902298851e-08, -3.8778363735632185e-08, -3.891394330228225e-08, -3.900291103448276e-08),
    "backward/up": (-3.904795172413793e-08, -3.878506649425287e-08, -3.891242889231929e-08, -3.9007023390804594e-08),
    "forward/down": (-3.903739603448276e-08, -3.878151752873563e-08, -3.8909840379593234e-08, -3.8990891264367814e-08),
    "backward/down": (-3.9039284310344826e-08, -3.878155597701149e-08, -3.890821327012388e-08, -3.899882936781609e-08),
}


def test_matrix_fixture():
    path = shared_path("fixtures", "matrix", "2014Mar01-093225--7_100.Z_mtrx")
    imgs = sio.read_all(path)
    assert [m.scan_direction for m in imgs] == list(MATRIX_FIXTURE)
    for m in imgs:
        lo, hi, mean, first = MATRIX_FIXTURE[m.scan_direction]
        assert m.shape == (300, 300) and m.data.dtype == np.float32 and not np.isnan(m.data).any()
        assert float(m.data.min()) == pytest.approx(lo, rel=1e-6)
        assert float(m.data.max()) == pytest.approx(hi, rel=1e-6)
        assert float(m.data.astype(np.float64).mean()) == pytest.approx(mean, rel=1e-6)
        assert float(m.data[-1, 0]) == pytest.approx(first, rel=1e-6)  # stored row 0 = bottom
        assert m.pixel_size == pytest.approx((1.4e-08 / 300, 1.4e-08 / 300), rel=1e-9)
        assert m.signal == "Z" and m.signal_unit == "m"
        assert m.metadata["sample_name"] == "I-125/Au 20140225"
    k = {m.scan_direction: m.data for m in imgs}
    assert rowcorr(k["forward/up"], k["backward/up"]) > 0.9
    assert rowcorr(k["forward/up"], k["forward/down"]) > 0.9


def test_matrix_fixture_without_index_is_an_error():
    path = shared_path("fixtures", "matrix", "no_index", "2015Mar25-095231--29_3.Z_mtrx")
    with pytest.raises(ReadError, match=r"2015Mar25-095231--29_3\.Z_mtrx.*index"):
        sio.read_all(path)


# =================================================================================== Gwyddion
def test_gwy_generated_fields():
    imgs = sio.read_all(SPM / "generated.gwy")
    assert [m.signal for m in imgs] == ["Height", "Phase"]
    h, ph = imgs
    np.testing.assert_allclose(h.data, gen.physical(6, 9, 1e-10), rtol=1e-6)
    np.testing.assert_allclose(ph.data, gen.physical(6, 9, 0.5, -10.0), rtol=1e-6)
    assert h.pixel_size == pytest.approx((1e-8, 1e-8)) and h.pixel_unit == "m"
    assert (h.signal_unit, ph.signal_unit) == ("m", "deg")
    assert h.metadata["field"]["xoff"] == pytest.approx(1e-8)
    assert h.metadata["channel"]["/0/meta"]["ImagingMode"] == "AC Mode"
    assert_read_provenance(h, "gwyddion")


def test_gwy_array_count_beyond_file_is_refused_quickly(tmp_path):
    """A string-array count of 2**32-1 makes gwyfile loop for ever; the validator stops it."""
    import struct

    body = b"/s\0S" + struct.pack("<I", 0xFFFFFFFF) + b"a\0"
    data = b"GWYP" + b"GwyContainer\0" + struct.pack("<I", len(body)) + body
    p = tmp_path / "loop.gwy"
    p.write_bytes(data)
    with pytest.raises(ReadError, match="loop.gwy.*corrupt"):
        sio.read_all(p)


def test_gwy_truncated(tmp_path):
    data = (SPM / "generated.gwy").read_bytes()
    p = tmp_path / "half.gwy"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match="half.gwy.*(corrupt|truncated)"):
        sio.read_all(p)


GWY_PTO = {  # title: (unit, min, max, mean)
    "HeightRetrace": ("m", -1.545856775919674e-08, 1.0963674412778346e-07, None),
    "AmplitudeRetrace": ("m", 8.835792340844417e-12, 1.602137089662392e-09, 1.2005731615623743e-10),
    "DeflectionRetrace": ("m", 4.6480298721007784e-08, 1.6605305575012608e-07, 1.0119446707375574e-07),
    "PhaseRetrace": ("deg", -89.98426818847656, 269.9393005371094, 23.944495160780207),
}


def test_gwy_fixture_pto():
    imgs = sio.read_all(shared_path("fixtures", "gwy", "PTO_110_Virgin0001.gwy"))
    assert [m.signal for m in imgs] == list(GWY_PTO)
    for m in imgs:
        unit, lo, hi, mean = GWY_PTO[m.signal]
        assert m.shape == (256, 256) and m.signal_unit == unit
        assert float(m.data.min()) == pytest.approx(lo, rel=1e-6)
        assert float(m.data.max()) == pytest.approx(hi, rel=1e-6)
        if mean is not None:
            assert float(m.data.astype(np.float64).mean()) == pytest.approx(mean, rel=1e-5)
        else:
            assert abs(float(m.data.astype(np.float64).mean())) < 1e-12
        assert m.pixel_size == pytest.approx((3.9215686274509804e-08,) * 2, rel=1e-9)
        assert m.pixel_unit == "m"
    assert imgs[0].metadata["channel"]["/0/meta"]["MicroscopeModel"] == "Cypher"


def test_gwy_fixture_synthetic():
    (m,) = sio.read_all(shared_path("fixtures", "gwy", "test.gwy"))
    assert m.signal == "Test" and m.shape == (128, 128) and m.signal_unit == ""
    assert (float(m.data.min()), float(m.data.max())) == (0.0, pytest.approx(0.001, rel=1e-6))
    assert float(m.data.astype(np.float64).mean()) == pytest.approx(0.0005152968462939743, rel=1e-6)
    assert m.pixel_size == (1.0, 1.0) and not m.axes[-1].calibrated


def test_gwy_fixture_legacy_gwyo_is_an_error():
    with pytest.raises(ReadError, match=r"GwiddionReader_chip\.gwy.*old Gwyddion 1\.x"):
        sio.read_all(shared_path("fixtures", "gwy", "GwiddionReader_chip.gwy"))


# ============================================================================== Igor .ibw
def test_ibw_generated_orientation_calibration():
    (m,) = sio.read_all(SPM / "generated.ibw")
    np.testing.assert_allclose(m.data, gen.physical(7, 11, 1e-12, 4e-10), rtol=1e-6)
    assert m.pixel_size == pytest.approx((3e-11, 2e-11)) and m.pixel_unit == "m"
    assert (m.signal, m.signal_unit, m.scan_direction, m.modality) == ("I", "A", "forward/up", "STM")
    assert "Generated" in m.metadata["note"]
    assert_read_provenance(m, "igor-ibw")


def test_ibw_negative_x_step_is_mirrored(tmp_path):
    phys = gen.physical(3, 4)
    igor = phys[::-1, ::-1].T  # x decreasing along dimension 0
    p = tmp_path / "neg.ibw"
    p.write_bytes(gen.ibw_bytes(igor, name="w", sfa=(-1e-9, 1e-9), sfb=(0.0, 0.0)))
    (m,) = sio.read_all(p)
    np.testing.assert_allclose(m.data, phys, rtol=1e-6)
    assert m.pixel_size == pytest.approx((1e-9, 1e-9))


def test_ibw_one_dimensional_wave_is_refused(tmp_path):
    p = tmp_path / "line.ibw"
    p.write_bytes(gen.ibw_bytes(np.arange(5.0), name="w", sfa=(1.0,), sfb=(0.0,)))
    with pytest.raises(ReadError, match="line.ibw.*only 2-D"):
        sio.read_all(p)


def test_ibw_fixture():
    path = next(shared_path("fixtures", "ibw").glob("*.ibw"))
    (m,) = sio.read_all(path)
    assert m.shape == (58, 256) and m.data.dtype == np.float32
    assert float(m.data.min()) == pytest.approx(4.5671136331639334e-10, rel=1e-6)
    assert float(m.data.max()) == pytest.approx(5.328426752954568e-10, rel=1e-6)
    assert float(m.data.astype(np.float64).mean()) == pytest.approx(4.923754846335058e-10, rel=1e-6)
    assert m.pixel_size == pytest.approx((1.953125e-11, 1.953125e-11), rel=1e-9)
    assert (m.signal, m.signal_unit, m.scan_direction, m.modality) == ("I 3", "A", "backward/down", "STM")
    import igor2.binarywave as bw

    stored = bw.load(str(path))["wave"]["wData"]  # (x, y), y increasing upwards
    np.testing.assert_array_equal(m.data, stored.T[::-1].astype(np.float32))


# ========================================================================== Bruker NanoScope
def test_nanoscope_generated():
    h, a = sio.read_all(SPM / "generated.001")
    r, c = np.mgrid[0:6, 0:10]
    raw = 100.0 * r + c
    np.testing.assert_allclose(h.data, raw * gen.NANOSCOPE_LSB_M, rtol=1e-6)
    np.testing.assert_allclose(a.data, -raw * gen.NANOSCOPE_HARD / 65536, rtol=1e-6)
    assert (h.signal, h.signal_unit, h.scan_direction) == ("Height", "m", "forward/down")
    assert (a.signal, a.signal_unit, a.scan_direction) == ("Amplitude", "V", "backward/down")
    assert h.pixel_size == pytest.approx((1.2e-6 / 6, 1.5e-6 / 10)) and h.modality == "AFM"
    assert h.metadata["image"]["@2:Image Data"] == 'S [Height] "Height"'
    assert_read_provenance(h, "bruker-nanoscope")


def test_nanoscope_found_by_content_with_any_number_extension(tmp_path):
    p = tmp_path / "scan.017"
    p.write_bytes((SPM / "generated.001").read_bytes())
    assert len(sio.read_all(p)) == 2


def test_nanoscope_truncated_data(tmp_path):
    p = tmp_path / "short.spm"
    p.write_bytes((SPM / "generated.001").read_bytes()[:-7])
    with pytest.raises(ReadError, match="short.spm.*truncated"):
        sio.read_all(p)


def test_nanoscope_force_file_refused(tmp_path):
    p = tmp_path / "force.001"
    p.write_bytes(b"\\*Force file list\r\n\\Data length: 100\r\n" + bytes(200))
    with pytest.raises(ReadError, match="force.001.*force-curve"):
        sio.read_all(p)


def test_nanoscope_fixture():
    (m,) = sio.read_all(shared_path("fixtures", "bruker", "old_bruker.002"))
    nm = 1e-9
    assert m.shape == (256, 256) and m.signal == "Height" and m.signal_unit == "m"
    assert float(m.data.min()) == pytest.approx(52.300479918054194 * nm, rel=1e-6)
    assert float(m.data.max()) == pytest.approx(757.0924404385254 * nm, rel=1e-6)
    assert float(m.data.astype(np.float64).mean()) == pytest.approx(379.6178439709459 * nm, rel=1e-6)
    assert float(m.data[-1, 0]) == pytest.approx(230.546989812854 * nm, rel=1e-6)  # stored row 0 = bottom
    assert m.pixel_size == pytest.approx((58.59375 * nm, 58.59375 * nm), rel=1e-9)
    assert m.scan_direction == "forward/up" and m.modality == "AFM"
