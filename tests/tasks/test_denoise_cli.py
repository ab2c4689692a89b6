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
