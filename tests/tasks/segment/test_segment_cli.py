"""``scopenet segment`` and ``scopenet train segment``: the real command in a subprocess."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopenet as sn
from scopenet.image.micrograph import Axis, Micrograph

from ...cli._run import scopenet


def _particles_image(tmp_path):
    yy, xx = np.mgrid[:64, :80]
    a = np.full((64, 80), 0.2, np.float32)
    for cy, cx, r in ((20, 20, 6), (40, 55, 8), (50, 15, 4)):
        a[np.hypot(yy - cy, xx - cx) < r] = 1.0
    a += 0.02 * np.random.default_rng(0).random(a.shape).astype(np.float32)
    p = tmp_path / "p.tif"
    sn.write(Micrograph(a, axes=[Axis("y", 64, 2e-9, unit="m"), Axis("x", 80, 2e-9, unit="m")]), p)
    return p


@pytest.mark.slow
def test_segment_cli_writes_labels_and_a_particle_table_and_refuses_to_overwrite(tmp_path):
    p = _particles_image(tmp_path)
    out = tmp_path / "out"
    r = scopenet("segment", p, tmp_path / "missing.tif", "-o", out, "--method", "otsu", "--particles")
    assert r.returncode == 1 and "missing.tif" in r.output and "Traceback" not in r.output
    lab = sn.read(out / "p-labels.tif")
    assert lab.shape == (64, 80) and int(np.asarray(lab.data).max()) == 3
    t = pd.read_csv(out / "p-particles.csv")
    assert len(t) == 3
    big = t.sort_values("area_px").iloc[-1]
    assert big.x == pytest.approx(55, abs=0.5) and big.y == pytest.approx(40, abs=0.5)
    assert big.equivalent_diameter_m == pytest.approx(big.equivalent_diameter_px * 2e-9, rel=1e-4)
    assert (out / "p-sizes.png").stat().st_size > 0 and (out / "p-overlay.png").stat().st_size > 0
    r = scopenet("segment", p, "-o", out, "--method", "otsu", "--particles")
    assert r.returncode != 0 and "exists" in r.output
    # the shipped model, class probabilities
    r = scopenet("segment", p, "-o", tmp_path / "probs.tif", "--probabilities")
    assert r.returncode == 0, r.output
    probs = np.asarray(sn.read(tmp_path / "probs.tif").data)
    assert probs.shape == (2, 64, 80) and np.allclose(probs.sum(0), 1, atol=1e-4)


def test_segment_cli_rejects_a_bad_method(tmp_path):
    r = scopenet("segment", tmp_path / "x.tif", "-o", tmp_path / "o.tif", "--method", "magic")
    assert r.returncode != 0 and "--method" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_train_segment_from_a_config_on_folders(tmp_path):
    from PIL import Image

    imgs, masks = tmp_path / "i", tmp_path / "m"
    imgs.mkdir()
    masks.mkdir()
    from scopenet.simulate.em.particle_data import particle_batch

    x, m = particle_batch(3, size=48, seed=1)
    for k in range(3):
        sn.write(Micrograph(x[k]), imgs / f"{k}.tif")
        Image.fromarray(m[k].astype(np.uint8) * 255).save(masks / f"{k}.png")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"task: segment\nworkdir: {tmp_path / 'run'}\nimages: {imgs}\nmasks: {masks}\ndepth: 1\n"
                   f"base_channels: 4\ndilation: [1]\npatch: 32\nbatch_size: 2\nmax_steps: 3\ntime_budget_s: 120\n")
    r = scopenet("train", "segment", "--config", cfg)
    assert r.returncode == 0, r.output[-2000:]
    seg = sn.Segmenter.load(tmp_path / "run" / "model")
    assert seg.card_.training.steps == 3 and seg.predict(x[0]).shape == (2, 48, 48)
