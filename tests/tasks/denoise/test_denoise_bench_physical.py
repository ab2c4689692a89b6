"""``scopenet bench denoise --degradation physical``: per-modality table on physically degraded pairs."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.tasks.denoise.bench import build_modality_table, run_physical
from scopenet.tasks.denoise.pairs import physical_pair


def _crops():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48]
    lat = 0.5 + 0.5 * np.cos(2 * np.pi * x / 6) * np.cos(2 * np.pi * y / 6)
    return {"tem": [lat], "stem": [lat], "sem": [rng.random((48, 48))]}


def test_physical_pairs_are_unit_range_and_seeded():
    c = _crops()["tem"][0]
    a = physical_pair(c, np.random.default_rng(1), "stem")
    b = physical_pair(c, np.random.default_rng(1), "stem")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for im in a:
        assert im.dtype == np.float32 and im.min() >= 0 and im.max() <= 1


def test_run_physical_scores_every_modality_and_reports_the_ratio_to_the_best_filter():
    from scopenet.tasks.denoise.baselines import gaussian, median

    ident = lambda x: np.asarray(x, np.float32)  # noqa: E731  a 'model' that changes nothing
    res = run_physical(_crops(), {"gaussian": gaussian, "median": median, "model:id": ident}, n=2,
                       progress=False)
    assert list(res) == ["tem", "stem", "sem"]
    for mod in res:
        assert len(res[mod]["gaussian"]["mse"]) == 2
        assert np.allclose(res[mod]["model:id"]["mse"], res[mod]["unfiltered"]["mse"])
    md = build_modality_table(res, ["model:id"]).markdown()
    assert "TEM MSE" in md and "SEM SSIM" in md and md.count("ratio to the best classical filter") == 3


@pytest.mark.slow
def test_cli_degradation_physical(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("scopenet")
    out = tmp_path / "r.json"
    r = subprocess.run([str(exe), "bench", "denoise", "--degradation", "physical", "--quick", "--model", "none",
                        "--methods", "gaussian", "--size", "64", "--n", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "TEM MSE" in r.stdout and "SEM SSIM" in r.stdout
    data = json.loads(out.read_text())
    assert data["degradation"] == "physical" and set(data["results"]) == {"tem", "stem", "sem"}
    bad = subprocess.run([str(exe), "bench", "denoise", "--degradation", "gamma"], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0 and "degradation" in bad.stderr
