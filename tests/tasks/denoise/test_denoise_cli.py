"""``scopenet denoise``: writes denoised files, keeps calibration and provenance, refuses bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import scopenet as sn
from scopenet.cli.main import app
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.denoise.model import Denoiser

runner = CliRunner()


@pytest.fixture
def model_stem(tmp_path):
    torch.manual_seed(0)
    Denoiser(arch_config={"widths": [8, 16]}).save(tmp_path / "tiny")
    return str(tmp_path / "tiny")


@pytest.fixture
def tif(tmp_path):
    rng = np.random.default_rng(0)
    m = Micrograph(rng.poisson(50, (48, 64)).astype(np.float32),
                   axes=[Axis("y", 48, 0.25, 0, "nm"), Axis("x", 64, 0.25, 0, "nm")])
    p = tmp_path / "in.tif"
    sn.write(m, p)
    return p


def test_cli_denoise_keeps_calibration_and_provenance(tif, tmp_path, model_stem):
    out = tmp_path / "out.tif"
    r = runner.invoke(app, ["denoise", str(tif), "-o", str(out), "--model", model_stem, "--dose-estimate"])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "dose" in r.output
    back = sn.read(out)
    src = sn.read(tif)
    assert back.shape == src.shape
    assert back.pixel_size == pytest.approx(src.pixel_size) and back.pixel_unit == "nm"
    assert any(p.get("operation") == "denoise" for p in back.provenance)


def test_cli_refuses_overwrite_and_bad_input(tif, tmp_path, model_stem):
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep")
    r = runner.invoke(app, ["denoise", str(tif), "-o", str(out), "--model", model_stem])
    assert r.exit_code == 1 and "exists" in r.output
    assert out.read_bytes() == b"keep"
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    r = runner.invoke(app, ["denoise", str(bad), "-o", str(tmp_path / "o2.tif"), "--model", model_stem])
    assert r.exit_code == 1 and "bad.tif" in r.output
    assert not (tmp_path / "o2.tif").exists()
    r = runner.invoke(app, ["denoise", str(tif), "-o", str(tmp_path / "o3.tif"), "--model", "no-such-model"])
    assert r.exit_code == 1 and "no-such-model" in r.output


def test_cli_several_inputs_into_folder(tif, tmp_path, model_stem):
    other = tmp_path / "b.tif"
    sn.write(sn.read(tif), other)
    r = runner.invoke(app, ["denoise", str(tif), str(other), "-o", str(tmp_path / "outdir"), "--model", model_stem])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["b-denoised.tif", "in-denoised.tif"]


def test_cli_single_input_into_new_folder(tif, tmp_path, model_stem):
    r = runner.invoke(app, ["denoise", str(tif), "-o", str(tmp_path / "newdir"), "--model", model_stem])
    assert r.exit_code == 0, r.output
    assert [p.name for p in (tmp_path / "newdir").iterdir()] == ["in-denoised.tif"]


# ---------------------------------------------------------------- issue #18, through the real command
def test_batch_goes_on_after_a_bad_file(tif, tmp_path, model_stem):
    from ...cli._run import scopenet

    other = tmp_path / "b.tif"
    sn.write(sn.read(tif), other)
    bad = tmp_path / "c.ser"
    bad.write_bytes(b"not a TIA file" * 20)
    out = tmp_path / "outdir"
    r = scopenet("denoise", tif, bad, other, "-o", out, "--model", model_stem)
    assert r.returncode == 1, r.output
    assert "Traceback" not in r.output
    assert "2 of 3 files done; failed: " in r.stderr and "c.ser" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b-denoised.tif", "in-denoised.tif"]
    np.testing.assert_allclose(sn.read(out / "b-denoised.tif").data, sn.denoise(sn.read(other), model=model_stem).data,
                               rtol=1e-5, atol=1e-6)


def test_unwritable_output_is_one_line(tif, tmp_path, model_stem):
    from ...cli._run import scopenet

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, named in ((blocker / "o.tif", blocker), (blocker / "outdir", blocker), ("/proc/sn-den", "/proc")):
        r = scopenet("denoise", tif, "-o", out, "--model", model_stem)
        assert r.returncode == 1 and "Traceback" not in r.output, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and str(named) in lines[0], r.stderr
    assert blocker.read_text() == "x"


def test_signal_default_is_the_haadf_image(tmp_path, model_stem):
    from ...cli._run import scopenet
    from ...conftest import shared_path

    emd = shared_path("fixtures", "em", "emd", "Test SI 16x16 ReducedData 215 kx.emd")
    imgs = sn.read_all(emd)
    r = scopenet("denoise", emd, "-o", tmp_path / "d.tif", "--model", model_stem)
    assert r.returncode == 0, r.output
    assert "#4 HAADF" in r.stderr
    want = sn.denoise(imgs[4], model=model_stem).data
    np.testing.assert_allclose(sn.read(tmp_path / "d.tif").data, want, rtol=1e-5, atol=1e-6)
    r = scopenet("denoise", emd, "-o", tmp_path / "cu.tif", "--model", model_stem, "--signal", "Cu", "-q")
    assert r.returncode == 0 and r.stderr == "", r.output
    np.testing.assert_allclose(sn.read(tmp_path / "cu.tif").data, sn.denoise(imgs[3], model=model_stem).data,
                               rtol=1e-5, atol=1e-6)
