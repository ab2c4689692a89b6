"""``scopenet inpaint``: completes scans, keeps calibration, refuses bad input, never overwrites."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import scopenet as sn
from scopenet.cli.main import app
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.simulate import scans
from scopenet.tasks.inpaint import Inpainter
from scopenet.tasks.inpaint import baselines as B

runner = CliRunner()


@pytest.fixture
def model_stem(tmp_path):
    Inpainter().save(tmp_path / "inpaint-tiny")  # untrained: returns the NN infill
    return str(tmp_path / "inpaint-tiny")


def _write(path, data):
    m = Micrograph(np.asarray(data, np.float32), axes=[Axis("y", data.shape[0], 0.5, 0, "nm"),
                                                       Axis("x", data.shape[1], 0.5, 0, "nm")])
    sn.write(m, path)
    return path


@pytest.fixture
def scan_files(tmp_path):
    yy, xx = np.mgrid[:64, :64] / 64
    img = (0.5 + 0.3 * np.sin(7 * xx) * np.cos(4 * yy)).astype(np.float32)
    m = scans.random_pixels_mask(64, 0.1, np.random.default_rng(0))
    return img, m, _write(tmp_path / "scan.tif", img * m), _write(tmp_path / "mask.tif", m.astype(np.float32))


def test_scan_and_mask(tmp_path, model_stem, scan_files):
    img, m, scan, mask = scan_files
    out = tmp_path / "out.tif"
    r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(mask), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 0, r.output
    res = sn.read(out)
    assert res.pixel_size == (0.5, 0.5) and res.pixel_unit == "nm"
    np.testing.assert_allclose(res.data, B.nearest(img * m, m), rtol=1e-5, atol=1e-6)
    r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(mask), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 1 and "exists" in r.output


def test_simulate_preview(tmp_path, model_stem, scan_files):
    img, _, _, _ = scan_files
    full = _write(tmp_path / "full.tif", img)
    out, mk = tmp_path / "prev.tif", tmp_path / "prev-mask.tif"
    r = runner.invoke(app, ["inpaint", str(full), "--simulate", "random", "--coverage", "0.05", "-o", str(out),
                            "--save-mask", str(mk), "--model", model_stem])
    assert r.exit_code == 0, r.output
    m = sn.read(mk).data > 0
    assert abs(m.mean() - 0.05) < 0.01
    np.testing.assert_allclose(sn.read(out).data, B.nearest(img * m, m), rtol=1e-5, atol=1e-6)


def test_bad_masks(tmp_path, model_stem, scan_files):
    _, _, scan, _ = scan_files
    small = _write(tmp_path / "small.tif", np.ones((32, 32)))
    zero = _write(tmp_path / "zero.tif", np.zeros((64, 64)))
    out = tmp_path / "o.tif"
    r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(small), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 1 and "shape" in r.output
    r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(zero), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 1 and "no scanned" in r.output
    r = runner.invoke(app, ["inpaint", str(scan), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 1 and "exactly one" in r.output
    assert not out.exists()


def test_fourier_option(tmp_path, model_stem):
    yy, xx = np.mgrid[:96, :96]
    img = (0.5 + 0.25 * np.cos(2 * np.pi * xx / 6.1) + 0.25 * np.cos(2 * np.pi * (0.5 * xx + yy) / 7.3)).astype(np.float32)
    m = scans.spiral_mask(96, 1 / 10)
    scan, mask = _write(tmp_path / "lat.tif", img * m), _write(tmp_path / "lat-mask.tif", m.astype(np.float32))
    est = Inpainter.load(model_stem)
    for mode in ("on", "off"):
        out = tmp_path / f"{mode}.tif"
        r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(mask), "-o", str(out), "--model", model_stem,
                                "--fourier", mode])
        assert r.exit_code == 0, r.output
        assert ("refined by Fourier sparsity" in r.output) == (mode == "on")
        np.testing.assert_allclose(sn.read(out).data, est.predict(img * m, m, fourier=mode), rtol=1e-5, atol=1e-5)
    out = tmp_path / "bad.tif"
    r = runner.invoke(app, ["inpaint", str(scan), "--mask", str(mask), "-o", str(out), "--model", model_stem,
                            "--fourier", "sometimes"])
    assert r.exit_code == 1 and "--fourier" in r.output and not out.exists()


# ---------------------------------------------------------------- issue #18, through the real command
def test_several_scans_go_on_after_a_bad_one(tmp_path, model_stem, scan_files):
    from ...cli._run import scopenet

    img, m, scan, mask = scan_files
    other = _write(tmp_path / "other.tif", img[::-1] * m)
    bad = tmp_path / "bad.dm3"
    bad.write_bytes(b"\x00" * 300)
    out = tmp_path / "done"
    r = scopenet("inpaint", scan, bad, other, "--mask", mask, "-o", out, "--model", model_stem)
    assert r.returncode == 1 and "Traceback" not in r.output, r.output
    assert "2 of 3 files done; failed: " in r.stderr and "bad.dm3" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["other-inpainted.tif", "scan-inpainted.tif"]
    np.testing.assert_allclose(sn.read(out / "other-inpainted.tif").data, B.nearest(img[::-1] * m, m),
                               rtol=1e-5, atol=1e-6)


def test_unwritable_output_is_one_line_and_writes_nothing(tmp_path, model_stem, scan_files):
    from ...cli._run import scopenet

    _, _, scan, _ = scan_files
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    mk = tmp_path / "mask-out.tif"
    for out, named in ((blocker / "o.tif", blocker), ("/proc/sn-inpaint.tif", "/proc")):
        r = scopenet("inpaint", scan, "--simulate", "random", "-o", out, "--save-mask", mk, "--model", model_stem)
        assert r.returncode == 1 and "Traceback" not in r.output, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and str(named) in lines[0], r.stderr
        assert not mk.exists()  # checked before any work: the mask is not written either


def test_signal_default_is_the_haadf_image(tmp_path, model_stem):
    from ...cli._run import scopenet
    from ...conftest import shared_path

    emd = shared_path("fixtures", "em", "emd", "Test SI 16x16 ReducedData 215 kx.emd")
    haadf = sn.read_all(emd)[4]
    mk = tmp_path / "m.tif"
    r = scopenet("inpaint", emd, "--simulate", "random", "--coverage", "0.3", "-o", tmp_path / "o.tif",
                 "--save-mask", mk, "--model", model_stem)
    assert r.returncode == 0, r.output
    assert "#4 HAADF" in r.stderr
    m = sn.read(mk).data > 0
    np.testing.assert_allclose(sn.read(tmp_path / "o.tif").data, B.nearest(haadf.data * m, m), rtol=1e-5, atol=1e-3)
