"""Issue #18 (CLI): batches go on after a bad file, output errors are one line, ``--signal``, progress,
``.npz`` shards, ``dir(scopenet)``. Every test runs the real ``scopenet`` command in a subprocess."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scopenet as sn

from ..conftest import TEST_DATA, shared_path
from ._run import scopenet, scopenet_tty

_spec = importlib.util.spec_from_file_location("make_spm_testdata", TEST_DATA / "make_spm_testdata.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

NY, NX = 24, 32
VELOX = ("em", "emd", "Test SI 16x16 ReducedData 215 kx.emd")


def _sxm(path: Path, seed: int = 0) -> Path:
    """A generated Nanonis file: Z forward/backward (tilted, line offsets) and Current forward."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:NY, 0:NX].astype(float)
    z = 2e-11 * xx + 1e-11 * yy + rng.normal(0, 3e-10, NY)[:, None] + 1e-12 * np.sin(xx / 2.0)
    cur = np.full((NY, NX), 1e-10) + 1e-12 * np.arange(NX)
    path.write_bytes(gen.sxm_bytes([("Z", "m", "both", {"forward": z, "backward": z[:, ::-1] + 1e-11}),
                                    ("Current", "A", "forward", {"forward": cur})],
                                   nx=NX, ny=NY, width=NX * 1e-10, height=NY * 1e-10))
    return path


@pytest.fixture
def files(tmp_path):
    """Two good scans and, between them, a file that cannot be read."""
    a, c = _sxm(tmp_path / "a.sxm", 0), _sxm(tmp_path / "c.sxm", 1)
    bad = tmp_path / "b.ser"
    bad.write_bytes(b"garbage" * 50)
    return a, bad, c


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file: any output path under it cannot be created (even by root, unlike chmod)."""
    p = tmp_path / "not-a-folder"
    p.write_text("x")
    return p


def _one_line_error(r, *names):
    assert r.returncode == 1, r.output
    assert "Traceback" not in r.output, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for n in names:
        assert str(n) in lines[0], r.stderr


# ------------------------------------------------------------------ 1. a batch goes on after a bad file
@pytest.mark.parametrize("cmd", ["flatten", "preview"])
def test_batch_goes_on_after_a_bad_file(files, tmp_path, cmd):
    a, bad, c = files
    out = tmp_path / "out"
    r = scopenet(cmd, a, bad, c, "-o", out, "-q")
    assert r.returncode == 1, r.output
    assert "Traceback" not in r.output
    assert "2 of 3 files done; failed: " in r.stderr and "b.ser" in r.stderr
    want = ["a-flat.tif", "c-flat.tif"] if cmd == "flatten" else ["a.png", "c.png"]
    assert sorted(p.name for p in out.iterdir()) == want
    if cmd == "flatten":
        assert sn.read(out / want[1]).shape == (NY, NX)
    # a second identical run: every output exists -> each is named, nothing is replaced
    before = (out / want[0]).read_bytes()
    r = scopenet(cmd, a, c, "-o", out, "-q")
    assert r.returncode == 1 and "0 of 2 files done" in r.stderr and "--overwrite" in r.stderr
    assert (out / want[0]).read_bytes() == before


def test_batch_all_good_exits_0_and_several_failures_are_listed(files, tmp_path):
    a, bad, c = files
    r = scopenet("flatten", a, c, "-o", tmp_path / "ok", "-q")
    assert r.returncode == 0, r.output
    assert r.stdout.count("wrote ") == 2
    r = scopenet("flatten", bad, tmp_path / "missing.sxm", a, "-o", tmp_path / "two-bad", "-q")
    assert r.returncode == 1
    assert "1 of 3 files done; failed:" in r.stderr
    assert "b.ser" in r.stderr and "missing.sxm" in r.stderr and "no such file" in r.stderr
    assert [p.name for p in (tmp_path / "two-bad").iterdir()] == ["a-flat.tif"]


# ------------------------------------------------------------------ 2. unwritable outputs: one line
@pytest.mark.parametrize("cmd", ["convert", "preview", "flatten"])
def test_unwritable_output_is_one_line_naming_the_path(files, blocker, cmd):
    a = files[0]
    target = blocker / "sub" / "out.tif"
    args = [a, target] if cmd == "convert" else [a, "-o", target]
    r = scopenet(cmd, *args)
    _one_line_error(r, blocker)
    r = scopenet(cmd, *([a, "/proc/scopenet-out.tif"] if cmd == "convert" else [a, "-o", "/proc/scopenet-out.tif"]))
    _one_line_error(r, "/proc")


@pytest.mark.parametrize("cmd", ["segment", "denoise"])
def test_an_output_format_without_a_writer_is_refused_before_any_work(tmp_path, cmd):
    img = tmp_path / "in.tif"
    sn.write(sn.Micrograph(np.random.default_rng(0).random((32, 32)).astype(np.float32)), img)
    r = scopenet(cmd, img, "-o", tmp_path / "out.csv")
    _one_line_error(r, "out.csv")
    assert "no writer for extension '.csv'" in r.stderr and "in.tif" not in r.stderr  # refused, not read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_unwritable_output_folder_for_a_batch(files, blocker):
    a, _, c = files
    r = scopenet("flatten", a, c, "-o", blocker / "flat")
    _one_line_error(r, blocker)


def test_simulate_spm_unwritable_output(blocker):
    pytest.importorskip("scopenet.simulate.spm.core", reason="simulate.spm not available yet")
    r = scopenet("simulate", "spm", "--n", 1, "--size", 32, "-o", blocker / "spm", "-q")
    _one_line_error(r, blocker)
    r = scopenet("simulate", "spm", "--n", 1, "--size", 32, "-o", "/proc/scopenet-spm", "-q")
    _one_line_error(r, "/proc")


# ------------------------------------------------------------------ 4. --signal / --channel
def test_signal_by_index_title_and_channel_alias(files, tmp_path):
    a = files[0]
    imgs = sn.read_all(a)
    for sel, k in (("2", 2), ("Current", 2), ("1", 1)):
        out = tmp_path / f"s{sel}.tif"
        r = scopenet("convert", a, out, "--signal", sel)
        assert r.returncode == 0, r.output
        np.testing.assert_allclose(sn.read(out).data, imgs[k].data, rtol=1e-6)
        assert "--signal" in r.stderr and f"#{k} {imgs[k].signal}" in r.stderr
    r = scopenet("convert", a, tmp_path / "c.tif", "--channel", "Current", "-q")
    assert r.returncode == 0 and r.stderr == ""
    np.testing.assert_allclose(sn.read(tmp_path / "c.tif").data, imgs[2].data, rtol=1e-6)
    r = scopenet("convert", a, tmp_path / "x.tif", "--signal", "7")
    _one_line_error(r, "a.sxm", "out of range")
    r = scopenet("flatten", a, "-o", tmp_path / "f.tif", "--signal", "Frequency")
    _one_line_error(r, "a.sxm", "available")


def test_default_signal_prefers_the_image_over_element_maps(tmp_path):
    emd = shared_path("fixtures", *VELOX)
    imgs = sn.read_all(emd)
    assert [m.signal for m in imgs] == ["C", "Ca", "O", "Cu", "HAADF"]
    r = scopenet("convert", emd, tmp_path / "d.tif")
    assert r.returncode == 0, r.output
    assert "HAADF" in r.stdout and "#4 HAADF" in r.stderr
    np.testing.assert_allclose(sn.read(tmp_path / "d.tif").data, imgs[4].data)
    r = scopenet("flatten", emd, "-o", tmp_path / "o.tif", "--signal", "O", "-q")
    assert r.returncode == 0, r.output
    r = scopenet("preview", emd, "-o", tmp_path / "p.png", "--signal", "3", "-q")
    assert r.returncode == 0, r.output


# ------------------------------------------------------------------ 5. progress on a terminal only
def test_progress_bar_on_a_terminal_only(files, tmp_path):
    a, _, c = files
    r = scopenet_tty("flatten", a, c, "-o", tmp_path / "tty")
    assert r.returncode == 0, r.output
    assert "flatten" in r.stderr and "2/2" in r.stderr  # the bar (then cleared)
    r = scopenet_tty("flatten", a, c, "-o", tmp_path / "quiet", "--quiet")
    assert r.returncode == 0 and "2/2" not in r.stderr and r.stderr.strip() == ""
    r = scopenet("flatten", a, c, "-o", tmp_path / "piped")
    assert r.returncode == 0 and "2/2" not in r.output and "\x1b[" not in r.output


# ------------------------------------------------------------------ 8. CLI words only
def test_overwrite_message_names_only_the_switch(files, tmp_path):
    out = tmp_path / "z.tif"
    out.write_bytes(b"keep")
    r = scopenet("convert", files[0], out)
    _one_line_error(r, "z.tif", "--overwrite")
    assert "overwrite=True" not in r.output and out.read_bytes() == b"keep"


# ------------------------------------------------------------------ 9. simulate spm shards are readable
def test_info_reads_simulated_spm_shards(tmp_path):
    pytest.importorskip("scopenet.simulate.spm.core", reason="simulate.spm not available yet")
    out = tmp_path / "spm"
    r = scopenet("simulate", "spm", "--n", 3, "--size", 32, "-o", out, "-q")
    assert r.returncode == 0, r.output
    shard = next(out.glob("*.npz"))
    r = scopenet("info", shard, "--json")
    assert r.returncode == 0, r.output
    doc = json.loads(r.stdout)
    assert [m["signal"] for m in doc["images"]] == ["images"] and doc["images"][0]["shape"] == [3, 32, 32]
    with np.load(shard) as z:
        assert doc["images"][0]["mean"] == pytest.approx(float(z["images"].mean()), rel=1e-5)
    r = scopenet("convert", shard, tmp_path / "s.tif", "-q")
    assert r.returncode == 0, r.output


def test_bad_npz_is_one_line(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, labels=np.zeros(3))
    _one_line_error(scopenet("info", p), "x.npz", "no 2-D image")


# ------------------------------------------------------------------ 7. dir(scopenet)
def test_dir_lists_the_lazy_api():
    code = "import scopenet as s; d = dir(s); print(' '.join(n for n in s.__all__ if n not in d)); print(len(d))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    missing, n = p.stdout.splitlines()
    assert p.returncode == 0 and missing == "" and int(n) > len(sn.__all__)
    assert {"denoise", "flatten", "classify", "inpaint", "read", "__version__"} <= set(dir(sn))
