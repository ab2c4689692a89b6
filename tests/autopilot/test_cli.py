"""``scopenet autopilot`` in a subprocess: the simulated and replay backends, resume and refusals."""
import json

import numpy as np
import pytest

from tests.cli._run import scopenet


@pytest.mark.slow
def test_sim_run_writes_log_report_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = scopenet("autopilot", "--sim", "--hours", "0.4", "--seed", "2", "--agent", "random", "-o", out, "-q")
    assert r.returncode == 0, r.output
    assert "time with a good tip" in r.stdout and "simulator truth" in r.stdout
    ev = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert ev[0]["event"] == "start" and ev[-1]["event"] == "end"
    html = (out / "report.html").read_text()
    assert "Timeline" in html and "data:image/png;base64" in html
    # an existing run is not overwritten by accident
    r2 = scopenet("autopilot", "--sim", "--hours", "0.4", "-o", out, "-q")
    assert r2.returncode != 0 and "--resume" in r2.output
    # resuming a finished run adds nothing
    r3 = scopenet("autopilot", "--sim", "--hours", "0.4", "--seed", "2", "--agent", "random", "-o", out, "-q",
                  "--resume")
    assert r3.returncode == 0, r3.output
    assert [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()][-1] == ev[-1]


@pytest.mark.slow
def test_replay_backend_and_bad_options(tmp_path):
    np.savez(tmp_path / "images.npz", images=(np.random.default_rng(0).random((4, 64, 64)) * 255).astype(np.uint8))
    r = scopenet("autopilot", "--replay", tmp_path, "--hours", "0.2", "--agent", "fixed:pulse+8V,dip1nm",
                 "-o", tmp_path / "run", "-q", "--no-report", "--judge", "hsi-six-sim", "--threshold", "0.5")
    assert r.returncode == 0, r.output
    assert "simulator truth" not in r.stdout
    start = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    ck = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert ck["config"]["good_threshold"] == 0.5, start
    bad = scopenet("autopilot", "--sim", "--threshold", "1.5", "-o", tmp_path / "z")
    assert bad.returncode != 0 and "--threshold" in bad.output
    bad = scopenet("autopilot", "--sim", "--replay", tmp_path, "-o", tmp_path / "x")
    assert bad.returncode != 0 and "exactly one backend" in bad.output
    bad = scopenet("autopilot", "--sim", "--agent", "fixed:zap", "-o", tmp_path / "y")
    assert bad.returncode != 0 and "fixed sequence" in bad.output


@pytest.mark.slow
def test_random_agent_takes_the_tip_feature_judge_by_name(tmp_path):
    out = tmp_path / "run"
    r = scopenet("autopilot", "--sim", "--hours", "0.1", "--seed", "1", "--agent", "random", "--judge",
                 "autopilot-judge", "-o", out, "-q", "--no-report")
    assert r.returncode == 0, r.output
    ev = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    judged = [e["judge"] for e in ev if e["event"] == "image"]
    assert judged and all("ghost" in j["features"] for j in judged)  # the tip-feature judge's own features
    ck = json.loads((out / "checkpoint.json").read_text())
    assert ck["config"]["good_threshold"] == 0.5  # the tip judge's default, not the classifier's 0.9


@pytest.mark.slow
def test_bench_json_prints_one_object():
    r = scopenet("bench", "autopilot", "--episodes", "2", "--select-episodes", "2", "--json")
    assert r.returncode == 0, r.output
    d = json.loads(r.stdout)
    for k in ("agent_median_actions", "random_median_actions", "best_fixed_median_actions", "episodes",
              "oracle_median_actions", "agent_mean_actions", "agent_p90_actions"):
        assert k in d
    assert len(d["distributions"]["oracle"]["actions"]) == 2
    assert d["episodes"] == 2 and len(d["distributions"]["agent"]["actions"]) == 2
    assert all(1 <= n <= 100 for n in d["distributions"]["random"]["actions"])
