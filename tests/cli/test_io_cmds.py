"""`scopenet info / convert / preview / flatten` through typer's CliRunner."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import scopenet as sn
from scopenet.cli.main import app
from scopenet.io.registry import find_format

from ..conftest import TEST_DATA

_spec = importlib.util.spec_from_file_location("make_spm_testdata", TEST_DATA / "make_spm_testdata.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

runner = CliRunner()
NY, NX = 24, 32


def tilted_surface() -> np.ndarray:
    """Height (m): tilt + per-line offsets + a small x pattern."""
    yy, xx = np.mgrid[0:NY, 0:NX].astype(float)
    offsets = np.random.default_rng(5).normal(0, 3e-10, NY)
    return 2e-11 * xx + 1e-11 * yy + offsets[:, None] + 1e-12 * np.sin(xx / 2.0)


@pytest.fixture
def sxm(tmp_path) -> Path:
    """A generated Nanonis file: Z forward/backward (tilted, line offsets) and Current forward."""
    z = tilted_surface()
    cur = np.full((NY, NX), 1e-10) + 1e-12 * np.arange(NX)
    data = gen.sxm_bytes([("Z", "m", "both", {"forward": z, "backward": z[:, ::-1] + 1e-11}),
                          ("Current", "A", "forward", {"forward": cur})],
                         nx=NX, ny=NY, width=NX * 1e-10, height=NY * 1e-10)
    p = tmp_path / "scan.sxm"
    p.write_bytes(data)
    return p


def _ext(*candidates: str) -> str:
    """The first extension scopenet can both write and read, else skip."""
    for ext in candidates:
        path = Path("x" + ext)
        if find_format(path, for_writing=True) is not None and find_format(path) is not None:
            return ext
    pytest.skip(f"no writer+reader registered yet for {candidates}")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------ info
def test_info_lists_every_channel(sxm):
    res = invoke("info", sxm)
    assert res.exit_code == 0, res.output
    for word in ("Z", "Current", "forward", "backward", "24x32", "3 image(s)"):
        assert word in res.output


def test_info_json_matches_reader(sxm):
    res = invoke("info", sxm, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    imgs = sn.read_all(sxm)
    assert doc["file"] == str(sxm) and len(doc["images"]) == len(imgs) == 3
    for row, img in zip(doc["images"], imgs):
        assert row["signal"] == img.signal and row["direction"] == img.scan_direction
        assert row["shape"] == [NY, NX]
        assert row["pixel_size"] == pytest.approx([1e-10, 1e-10])
        assert row["min"] == pytest.approx(float(img.data.min()))
        assert row["max"] == pytest.approx(float(img.data.max()))
        assert row["mean"] == pytest.approx(float(img.data.mean()), rel=1e-6)


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "directory", "unknown-ext"])
def test_info_bad_input_exit_1_names_file(tmp_path, kind):
    p = tmp_path / {"directory": "folder.sxm", "unknown-ext": "scan.xyz"}.get(kind, "scan.sxm")
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(np.random.default_rng(0).bytes(3000))
    elif kind == "directory":
        p.mkdir()
    elif kind == "unknown-ext":
        p.write_bytes(b"hello")
    res = invoke("info", p)
    assert res.exit_code == 1
    assert p.name in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------ convert
def test_convert_round_trip(sxm, tmp_path):
    ext = _ext(".tif", ".h5", ".npy")
    out = tmp_path / f"z{ext}"
    res = invoke("convert", sxm, out, "--channel", "Z", "--direction", "backward")
    assert res.exit_code == 0, res.output
    want = sn.read(sxm, channel="Z", direction="backward")
    got = sn.read(out)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6)
    if ext != ".npy":
        assert got.pixel_size_m() == pytest.approx(want.pixel_size_m())


def test_convert_refuses_to_overwrite(sxm, tmp_path):
    ext = _ext(".tif", ".h5", ".npy")
    out = tmp_path / f"z{ext}"
    out.write_bytes(b"keep me")
    res = invoke("convert", sxm, out)
    assert res.exit_code == 1 and out.name in res.output
    assert out.read_bytes() == b"keep me"
    res = invoke("convert", sxm, out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() != b"keep me"


def test_convert_unknown_channel(sxm, tmp_path):
    out = tmp_path / "z.tif"
    res = invoke("convert", sxm, out, "--channel", "Frequency")
    assert res.exit_code == 1 and "scan.sxm" in res.output and "available" in res.output
    assert not out.exists()


# ------------------------------------------------------------------ flatten
@pytest.mark.parametrize("method", ["lines", "plane", "poly", "ransac", "align", "auto"])
def test_flatten_writes_flatter_image(sxm, tmp_path, method):
    ext = _ext(".tif", ".h5", ".npy")
    out = tmp_path / f"flat{ext}"
    res = invoke("flatten", sxm, "-o", out, "--method", method)
    assert res.exit_code == 0, res.output
    assert out.exists()
    raw = sn.read(sxm, channel="Z")
    flat = sn.read(out)
    assert flat.shape == raw.shape
    line_jumps = lambda a: np.abs(np.diff(np.median(a, axis=1))).mean()  # noqa: E731
    if method in ("lines", "align", "auto"):  # line offsets removed
        assert line_jumps(flat.data) < 0.05 * line_jumps(raw.data)
    assert np.std(flat.data) < np.std(raw.data)


def test_flatten_bad_input_leaves_no_output(tmp_path):
    bad = tmp_path / "broken.sxm"
    bad.write_bytes(b":NANONIS_VERSION:\n2\n" + b"\x00" * 100)
    out = tmp_path / "flat.tif"
    res = invoke("flatten", bad, "-o", out, "--method", "lines")
    assert res.exit_code == 1
    assert "broken.sxm" in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_flatten_unknown_method(sxm, tmp_path):
    res = invoke("flatten", sxm, "-o", tmp_path / "f.tif", "--method", "magic")
    assert res.exit_code != 0 and not (tmp_path / "f.tif").exists()


# ------------------------------------------------------------------ preview
def test_preview_png(sxm, tmp_path):
    try:
        from scopenet.io.generic import save_preview  # noqa: F401
    except ImportError:
        if find_format(Path("x.png"), for_writing=True) is None:
            pytest.skip("no PNG preview writer registered yet")
    out = tmp_path / "p.png"
    res = invoke("preview", sxm, "-o", out, "--cmap", "viridis", "--channel", "Current")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = invoke("preview", sxm, "-o", out)
    assert res.exit_code == 1 and "p.png" in res.output
