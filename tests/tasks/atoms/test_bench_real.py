"""``scopenet bench atoms-real``: scoring against marked columns (inner region, faint sites) and the skip."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scopenet.tasks.atoms.bench_real import default_references, read_references, reference_spacing, score_crop


def _ref():
    g = np.stack(np.meshgrid(np.arange(0, 200, 20.0), np.arange(0, 200, 20.0), indexing="ij"), -1).reshape(-1, 2)
    faint = g[:-1] + 10.0  # cell centres
    return {"crop": (0, 0, 200), "columns": np.concatenate([g, faint]),
            "kind": np.array(["column"] * len(g) + ["faint"] * len(faint))}


def test_score_counts_inner_columns_and_ignores_faint_sites():
    ref = _ref()
    assert reference_spacing(ref) == pytest.approx(20.0)  # the faint sites do not set the spacing
    cols = ref["columns"][ref["kind"] == "column"]
    inner = ((cols >= 10) & (cols <= 189)).all(1)
    r = score_crop(cols + 1.0, ref)
    assert r["tp"] == r["n_true"] == inner.sum() and r["f1"] == 1.0
    assert r["sq_err"] == pytest.approx(2.0 * inner.sum())
    # detections on the faint sites are neither right nor wrong; between columns and sites they are false
    r = score_crop(np.concatenate([cols, ref["columns"][ref["kind"] == "faint"]]), ref)
    assert r["precision"] == 1.0
    extra = cols[inner][:10] + [0.0, 7.0]  # 7 px beside a column: outside its 6 px tolerance, not on a site
    r = score_crop(np.concatenate([cols, extra]), ref)
    assert r["n_pred"] == inner.sum() + 10 and r["recall"] == 1.0
    # a missed column counts; an unmatched detection outside the inner region does not
    miss = int(np.flatnonzero(inner)[0])
    r = score_crop(np.concatenate([np.delete(cols, miss, 0), [[2.0, 100.0]]]), ref)
    assert r["n_pred"] == r["tp"] == inner.sum() - 1 and r["recall"] == pytest.approx(1 - 1 / inner.sum())


def test_references_file_reads_when_present():
    path = default_references()
    if path is None:
        pytest.skip("benchmarks/atoms-real-columns.csv is not in this checkout")
    refs = read_references(path)
    assert len(refs) >= 9
    for image_id, ref in refs.items():
        y0, x0, n = ref["crop"]
        cols = ref["columns"]
        assert ((cols >= [y0 - 20, x0 - 20]) & (cols <= [y0 + n + 20, x0 + n + 20])).all(), image_id
        assert 8 < reference_spacing(ref) < 40, image_id


def test_bench_skips_with_a_reason_without_the_real_images(tmp_path):
    env = {**os.environ, "SCOPENET_EM_REAL": str(tmp_path / "absent"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(Path(sys.executable).with_name("scopenet")), "bench", "atoms-real", "--json",
                        str(tmp_path / "out.json")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stdout and json.loads((tmp_path / "out.json").read_text())["skipped"] is True


def test_image_statistics_measure_pedestal_and_contrast():
    from scipy.ndimage import gaussian_filter1d

    from scopenet.simulate.em.lattice import render_gaussians
    from scopenet.tasks.atoms.bench_real import image_statistics

    ref = _ref()
    cols = ref["columns"][ref["kind"] == "column"]
    clean = 100.0 * render_gaussians((200, 200), cols, np.ones(len(cols)), 3.0) + 300.0  # pedestal 3
    rng = np.random.default_rng(0)
    st = image_statistics(clean + rng.normal(0, 10.0, clean.shape), ref)
    assert st["pedestal"] == pytest.approx(3.0, rel=0.1) and st["contrast"] == pytest.approx(100.0, rel=0.1)
    assert st["noise"] == pytest.approx(10.0, rel=0.1) and st["cnr_per_px"] == pytest.approx(10.0, rel=0.15)
    smeared = image_statistics(clean + gaussian_filter1d(rng.normal(0, 10.0, clean.shape), 2.0, axis=1), ref)
    assert smeared["noise"] < 0.5 * st["noise"]  # a noise smeared along the scan reads low
