"""``scopenet exitwave`` and ``scopenet bench exitwave``: the real commands in a subprocess."""
from __future__ import annotations

import json

import numpy as np
import pytest

import scopenet as sn
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.exitwave import ExitWaveEstimator

from ...cli._run import scopenet


def _tiny_model(tmp_path, sets=None):
    est = ExitWaveEstimator(arch_config={"channels": 4, "blocks": 1})
    if sets is not None:
        est.update_card(training={"data": {"sets": sets}})
    est.save(tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.mark.slow
def test_exitwave_cli_writes_amplitude_phase_png_and_confidence(tmp_path):
    from PIL import Image

    model = _tiny_model(tmp_path)
    amp = (1.0 + 0.3 * np.random.default_rng(0).random((40, 36))).astype(np.float32)
    sn.write(Micrograph(amp, axes=[Axis("y", 40, 0.02, unit="nm"), Axis("x", 36, 0.02, unit="nm")]),
             tmp_path / "amp.tif")
    r = scopenet("exitwave", tmp_path / "amp.tif", "-o", tmp_path / "out" / "res.tif", "--model", model)
    assert r.returncode == 0, r.output
    files = {k: tmp_path / "out" / f"res-{k}" for k in ("amplitude.tif", "phase.tif", "phase.png", "confidence.tif")}
    assert all(f.is_file() for f in files.values()), r.output
    phase = sn.read(files["phase.tif"])
    assert phase.shape == (40, 36) and phase.data.min() >= -np.pi and phase.data.max() < np.pi
    assert phase.axes[-1].scale == pytest.approx(0.02) and phase.signal_unit == "rad"
    np.testing.assert_allclose(sn.read(files["amplitude.tif"]).data, amp / amp.mean(), rtol=1e-5)
    conf = sn.read(files["confidence.tif"]).data
    assert conf.min() >= 0 and conf.max() <= 1
    png = np.asarray(Image.open(files["phase.png"]))
    assert png.shape == (40, 36, 3) and png.dtype == np.uint8
    # the same phases from the API
    ref = ExitWaveEstimator.load(model).predict_phase(amp, warn=False)
    np.testing.assert_allclose(phase.data, ref, atol=1e-5)
    # nothing is overwritten without --overwrite, and a bad input is a one-line error
    again = scopenet("exitwave", tmp_path / "amp.tif", "-o", tmp_path / "out" / "res", "--model", model)
    assert again.returncode == 1 and "exists" in again.output and "Traceback" not in again.output
    np.save(tmp_path / "neg.npy", amp - 2.0)
    bad = scopenet("exitwave", tmp_path / "neg.npy", "-o", tmp_path / "neg", "--model", model)
    assert bad.returncode == 1 and "negative" in bad.output and not (tmp_path / "neg-phase.tif").exists()
    ok = scopenet("exitwave", tmp_path / "neg.npy", "-o", tmp_path / "neg", "--model", model, "--scale", "range")
    assert ok.returncode == 0, ok.output


@pytest.mark.slow
def test_bench_exitwave_json_on_cif_structures(tmp_path):
    pytest.importorskip("abtem")
    from ase.build import bulk
    from ase.io import write

    structures = tmp_path / "cifs"
    structures.mkdir()
    write(structures / "mgo.cif", bulk("MgO", "rocksalt", a=4.212, cubic=True))
    (structures / "junk.cif").write_text("not a crystal\n")
    sets = [{"materials": ["Si"], "n": 1, "prange": "restricted", "seed": 3, "gpts": 32, "crop": 24}]
    model = _tiny_model(tmp_path, sets)
    r = scopenet("bench", "exitwave", "--model", model, "--structures", structures, "--n", "1", "--crop", "16",
                 "--json", env={"SCOPENET_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.output
    obj = json.loads(r.stdout.strip())  # one JSON object and nothing else on stdout
    assert {"mae_mean", "mae_sd", "random_mae", "n"} <= set(obj) and obj["n"] == 1
    assert 0 <= obj["mae_mean"] <= 2 and 0.5 < obj["random_mae"] < 1.0
    assert obj["sets"]["+ unseen materials"]["materials"] == ["mgo.cif"]
    assert "junk.cif left out" in r.stderr
