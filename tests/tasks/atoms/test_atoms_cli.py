"""``scopenet atoms``: CSV table, overlays, no silent overwrite, failures reported."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scopenet as sn
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.simulate.em.atoms import atom_image

SCOPENET = str(Path(sys.executable).with_name("scopenet"))


def _run(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([SCOPENET, "atoms", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_cli_writes_positions_and_overlays(tmp_path):
    a = atom_image(np.random.default_rng(3), 96, split="held_out", dose=400.0, spacing_px=10.0, region="full")
    mg = Micrograph(a.image, axes=[Axis("y", 96, 0.025, unit="nm"), Axis("x", 96, 0.025, unit="nm")])
    sn.write(mg, tmp_path / "cu.tif")
    (tmp_path / "junk.tif").write_bytes(b"not an image")
    r = _run("cu.tif", "-o", "pos.csv", "--overlay", "ov", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "pos.csv")
    assert list(df.columns[:9]) == ["file", "frame", "x", "y", "x_m", "y_m", "sigma_px", "class", "confidence"]
    assert abs(len(df) - len(a.atoms)) <= 0.1 * len(a.atoms)
    np.testing.assert_allclose(df["x_m"], df["x"] * 2.5e-11, rtol=1e-6)
    assert (tmp_path / "ov" / "cu-atoms.png").stat().st_size > 1000
    before = (tmp_path / "pos.csv").read_bytes()
    r = _run("cu.tif", "-o", "pos.csv", cwd=tmp_path)  # exists: refused, kept
    assert r.returncode != 0 and "exists" in (r.stderr + r.stdout)
    assert (tmp_path / "pos.csv").read_bytes() == before
    r = _run("cu.tif", "junk.tif", "-o", "both.csv", cwd=tmp_path)  # one bad file: reported, the rest written
    assert r.returncode == 1 and "junk.tif" in r.stderr
    assert set(pd.read_csv(tmp_path / "both.csv")["file"]) == {"cu.tif"}
    r = _run("cu.tif", "-o", "prior.csv", "--lattice-prior", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prior = pd.read_csv(tmp_path / "prior.csv")
    assert len(prior) == len(df) and (df["prior_weight"] == 1.0).all()
    w = prior["prior_weight"]  # the neighbours' prediction takes part: weights below 1, positions moved a little
    assert (w < 1).mean() > 0.5 and w.between(0, 1).all()
    assert 0 < np.abs(prior["x"] - df["x"]).max() < 0.5
    sn.write(Micrograph(a.image.max() + 40.0 - a.image, axes=mg.axes), tmp_path / "bf.tif")  # dark columns
    r = _run("bf.tif", "-o", "bf.csv", "--dark-columns", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    bf = pd.read_csv(tmp_path / "bf.csv")
    assert len(bf) == len(df) and np.abs(np.sort(bf["x"]) - np.sort(df["x"])).max() < 0.2
    r = _run("cu.tif", "-o", "pos.txt", cwd=tmp_path)
    assert r.returncode != 0 and ".csv" in r.stderr


@pytest.mark.slow
def test_cli_levels_a_real_stm_topograph(tmp_path, fixtures_dir):
    # Nanonis Si(111) 7x7, 20 nm: the raw Z channel's tilt hides the adatoms (2 "atoms" without levelling)
    sxm = fixtures_dir / "sxm" / "Si_7x7_051.sxm"
    r = _run(sxm, "-o", "si.csv", "--overlay", "ov", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "si.csv")
    assert len(df) > 100
    # the 7x7 adatoms nearest each other are about 7.7 A apart (px 0.78 A): none closer than 6 A
    assert df["nn_px"].median() * 0.78125 > 6.0
    assert (tmp_path / "ov" / "Si_7x7_051-atoms.png").stat().st_size > 1000


@pytest.mark.slow
def test_cli_second_look_finds_a_faint_partner_sublattice_and_can_be_turned_off(tmp_path):
    from scopenet.simulate.em.lattice import render_gaussians

    # bright columns 11 px apart, each with a faint partner 4.5 px away on the shoulder of its heatmap blob
    rng = np.random.default_rng(2)
    g = np.stack(np.meshgrid(np.arange(1, 10), np.arange(1, 10), indexing="ij"), -1).reshape(-1, 2) * 11.0
    img = rng.poisson(20 + render_gaussians((110, 110), np.concatenate([g, g + [0.0, 4.5]]),
                                            np.r_[np.full(81, 300.0), np.full(81, 90.0)], 1.2))
    sn.write(Micrograph(img.astype(np.float32), axes=[Axis("y", 110, 0.02, unit="nm"), Axis("x", 110, 0.02, unit="nm")]),
             tmp_path / "pairs.tif")
    assert _run("pairs.tif", "-o", "v7.csv", "--quiet", cwd=tmp_path).returncode == 0
    r = _run("pairs.tif", "-o", "v6.csv", "--no-second-look", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with_look, without = pd.read_csv(tmp_path / "v7.csv"), pd.read_csv(tmp_path / "v6.csv")
    assert len(without) < 130 and len(with_look) >= 160  # 162 columns: the faint ones found only by the second look
