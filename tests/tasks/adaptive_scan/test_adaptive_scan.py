"""AdaptiveScanner: the probe API, tiling, fixed-path baselines, fitting, saving, the CLI and the bench."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from scopenet.errors import InputError
from scopenet.simulate import scan_env as env
from scopenet.tasks.adaptive_scan import AdaptiveScanner, AdaptiveScanTrainConfig
from scopenet.tasks.adaptive_scan.bench import main as bench_main
from scopenet.tasks.adaptive_scan.scanning import fixed_path_pixels, mse_scores, scan_batch
from scopenet.tasks.adaptive_scan.train import main

pytest.importorskip("gymnasium")

TINY = {"actor": {"hidden": 8, "layers": 1}, "generator": {"depth": 1, "base_channels": 4, "unshuffle": 1}}
RNG = np.random.default_rng(0)
IMG = RNG.random((96, 96)).astype(np.float32)


def _probe(img, calls):
    def probe(rows, cols):
        assert rows.dtype == np.int64 and cols.dtype == np.int64
        assert rows.min() >= 0 and cols.min() >= 0 and rows.max() < img.shape[0] and cols.max() < img.shape[1]
        calls.append((rows.copy(), cols.copy()))
        return img[rows, cols]
    return probe


def test_scan_calls_the_probe_once_per_segment_with_straight_segments():
    est = AdaptiveScanner(arch_config=TINY)
    calls = []
    image, mask = est.scan(_probe(IMG, calls), shape=(96, 96))
    assert len(calls) == 20 and all(len(r) == 20 for r, _ in calls)
    assert image.shape == (96, 96) and image.dtype == np.float32 and mask.dtype == bool
    seen = np.zeros((96, 96), bool)
    for r, c in calls:
        seen[r, c] = True
    np.testing.assert_array_equal(mask, seen)
    # the first segment: from the centre towards the bottom-right corner, nearest pixels
    r, c = calls[0]
    np.testing.assert_array_equal(r, np.floor(47.5 + np.arange(20) + 0.5).astype(int))
    np.testing.assert_array_equal(c, r)
    assert est.last_scan_["scan_time"][0].n_positions == 400


def test_scan_matches_the_batched_simulation():
    est = AdaptiveScanner(arch_config=TINY)
    image, mask = est.scan(lambda r, c: IMG[r, c], (96, 96))
    res = scan_batch(est.net_, "adaptive", IMG[None])
    np.testing.assert_array_equal(mask, res["mask"][0])
    np.testing.assert_allclose(image, res["completion"][0], atol=1e-5)


def test_larger_fields_are_scanned_tile_by_tile():
    big = RNG.random((150, 200)).astype(np.float32)
    calls = []
    image, mask = AdaptiveScanner(arch_config=TINY).scan(_probe(big, calls), shape=big.shape)
    assert image.shape == (150, 200) and len(calls) == 20 * 2 * 3  # 2 x 3 overlapping 96 px tiles


def test_fixed_spiral_scanner_probes_the_calibrated_spiral():
    est = AdaptiveScanner(path="spiral", arch_config=TINY)
    calls = []
    _, mask = est.scan(_probe(IMG, calls), (96, 96))
    assert len(calls) == 20
    ij = fixed_path_pixels("spiral")
    assert mask.sum() == len(ij) and mask.mean() == pytest.approx(env.COVERAGE, rel=0.01)
    assert fixed_path_pixels("grid").shape == (400, 2)
    with pytest.raises(InputError, match="fixed path"):
        fixed_path_pixels("zigzag")


def test_a_bad_probe_is_an_input_error():
    est = AdaptiveScanner(arch_config=TINY)
    with pytest.raises(InputError, match="values"):
        est.scan(lambda r, c: np.zeros(3), (96, 96))
    with pytest.raises(InputError, match="non-finite"):
        est.scan(lambda r, c: np.full(len(r), np.nan), (96, 96))
    with pytest.raises(InputError, match="callable"):
        est.scan("probe", (96, 96))


def test_a_perfect_generator_makes_the_error_zero():
    crops = RNG.random((3, 96, 96)).astype(np.float32)
    from scopenet.tasks.adaptive_scan.data import blur

    assert np.allclose(mse_scores(crops, blur(crops)), 0.0, atol=1e-10)
    assert mse_scores(crops, blur(crops) + 0.1).min() > 0


@pytest.mark.slow
def test_fit_trains_actor_and_generator_and_the_model_round_trips(tmp_path):
    est = AdaptiveScanner(arch_config=TINY)
    before = [p.detach().clone() for p in est.net_.parameters()]
    est.fit([RNG.random((120, 110)).astype(np.float32)], max_steps=3, batch_size=2, episodes_per_step=2)
    assert len(est.history_) == 3 and np.isfinite(est.history_).all()
    changed = [not np.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(before, est.net_.parameters())]
    assert any(changed[:len(list(est.net_.generator.parameters()))] or changed)
    est.save(tmp_path / "m")
    back = AdaptiveScanner.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(IMG), est.predict(IMG))
    with pytest.raises(InputError):
        est.fit([np.zeros((50, 50))])


@pytest.mark.slow
def test_train_command_and_bench(tmp_path):
    """``scopenet train adaptive-scan --config`` (spiral then adaptive from it) and ``scopenet bench``."""
    base = {"task": "adaptive-scan", "max_steps": 2, "batch_size": 2, "episodes_per_step": 2, "n_simulated": 2,
            "simulated_size": 96, "use_em_real": False, "actor_hidden": 8, "actor_layers": 1,
            "arch_generator": {"depth": 1, "base_channels": 4, "unshuffle": 1}, "log_every": 1}
    runs = {}
    for name, extra in (("spiral", {"path": "spiral"}),
                        ("adaptive", {"path": "adaptive", "actor_init": "spiral", "bc_steps": 2, "bc_weight": 1.0,
                                      "freeze_generator_steps": 1, "turn_penalty": 0.02,
                                      "init_from": str(tmp_path / "spiral" / "model")})):
        cfg = {**base, **extra, "workdir": str(tmp_path / name)}
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(cfg))
        if name == "spiral":  # the real command once; the second run in-process
            r = subprocess.run([sys.executable, "-m", "scopenet.cli.main", "train", "adaptive-scan", "--config",
                                str(p)], capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr[-2000:]
        else:
            main(p, progress=False)
        runs[name] = tmp_path / name / "model"
        assert (tmp_path / name / "log.csv").read_text().count("\n") == 3
    card = json.loads((tmp_path / "adaptive" / "model.json").read_text())
    assert card["task"] == "adaptive-scan" and card["training"]["steps"] == 2
    assert len(card["notes"]["learning_curve"]["gen_mse"]) == 2
    assert AdaptiveScanTrainConfig.from_yaml(tmp_path / "adaptive" / "run.yaml").init_from.endswith("model")
    out = tmp_path / "bench.json"
    rc = bench_main(["--quick", "--n", "6", "--models", f"adaptive={runs['adaptive']}", f"spiral={runs['spiral']}",
                     "--json", str(out), "--figures", str(tmp_path / "fig")])
    assert rc == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"adaptive", "spiral"} and res["adaptive"]["ratio_to"] == "spiral"
    assert res["spiral"]["coverage"] == pytest.approx(env.COVERAGE, rel=0.01)
    assert res["adaptive"]["scan_time_us"] >= 400 and res["spiral"]["mse_sd"] >= 0
    assert (tmp_path / "fig" / "learning-curves.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "example-paths.png").stat().st_size > 1000
