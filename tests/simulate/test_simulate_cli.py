"""``scopenet simulate spm|em|scan`` through typer's CliRunner."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scopenet.cli.main import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["simulate", *map(str, args)])


def test_simulate_em_writes_shards_and_refuses_non_empty(tmp_path):
    out = tmp_path / "em"
    r = _run("em", "--n", 3, "-o", out, "--seed", 4, "--size", 32, "--kind", "stem", "--shard-size", 2, "-q")
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["n"] == 3 and man["kind"] == "stem" and man["seed"] == 4
    z = np.load(out / "shard_00000.npz")
    from scopenet.simulate import em

    assert np.array_equal(z["images"], em.simulate_batch(2, 32, seed=4, kind="stem")["images"])
    r = _run("em", "--n", 1, "-o", out, "--size", 32, "-q")
    assert r.exit_code == 1 and "not empty" in r.output
    r = _run("em", "--n", 1, "-o", out, "--size", 32, "-q", "--overwrite", "--gallery")
    assert r.exit_code == 0, r.output
    assert (out / "gallery.png").read_bytes()[:4] == b"\x89PNG"


def test_simulate_scan(tmp_path):
    out = tmp_path / "scan"
    r = _run("scan", "--n", 2, "-o", out, "--kind", "random", "--coverage", 0.1, "--size", 64, "-q")
    assert r.exit_code == 0, r.output
    z = np.load(out / "shard_00000.npz")
    assert z["masks"].shape == (2, 64, 64) and z["masks"].dtype == bool
    np.testing.assert_allclose(z["coverage"], 0.1, rtol=1e-3)


def test_simulate_bad_input(tmp_path):
    r = _run("em", "--n", 0, "-o", tmp_path / "x", "-q")
    assert r.exit_code == 1 and "--n" in r.output
    r = _run("scan", "--n", 1, "-o", tmp_path / "y", "--coverage", 2.0, "-q", "--size", 32)
    assert r.exit_code == 1 and "coverage" in r.output
    r = _run("em", "--n", 1, "-o", tmp_path / "z", "--kind", "sem")
    assert r.exit_code != 0


def test_simulate_spm(tmp_path):
    pytest.importorskip("scopenet.simulate.spm.core", reason="simulate.spm not available yet")
    out = tmp_path / "spm"
    r = _run("spm", "--n", 2, "-o", out, "--size", 32, "-q")
    assert r.exit_code == 0, r.output
    assert (out / "manifest.json").exists()
    r = _run("spm", "--n", 2, "-o", out, "--size", 32, "-q")
    assert r.exit_code == 1 and "not empty" in r.output
