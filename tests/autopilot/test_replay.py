"""The replay backend: recorded images served at random, labels carried, the loop runs on them."""
import json

import numpy as np
import pytest

from scopenet.autopilot.agent import FixedSequenceAgent
from scopenet.autopilot.replay import ReplayMicroscope, load_recorded
from scopenet.autopilot.supervisor import Supervisor, SupervisorConfig
from scopenet.errors import ReadError

from .conftest import TruthJudge


@pytest.fixture
def recorded(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=(rng.random((6, 32, 32)) * 255).astype(np.uint8))
    rows = ["name,mean_individual_atoms,mean_dimers,mean_tip_change,mean_bad_blurry"]
    rows += [f"img{i}.png,{0.8 if i % 2 else 0.0},0.0,0.0,{0.1 if i % 2 else 0.9}" for i in range(6)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_serves_recorded_images_with_labels(recorded):
    m = ReplayMicroscope(recorded, seed=1)
    seen = set()
    for _ in range(20):
        img = m.scan((0.0, 0.0), 8.0)
        i = img.metadata["index"]
        seen.add(i)
        assert np.array_equal(img.data, m.images[i])
        assert img.metadata["recorded"]["recorded_good"] == bool(i % 2)
    assert len(seen) >= 4 and m.now() == pytest.approx(20 * (32 + 5.0))
    a = [ReplayMicroscope(recorded, seed=3).scan((0, 0), 8).metadata["index"] for _ in range(2)]
    assert a[0] == a[1]
    m.move(10.0, 0.0)
    m.dip(1.0)
    assert m.log[-1].duration_s == pytest.approx(3.2)


def test_loop_runs_and_resumes_on_replay(recorded, tmp_path):
    cfg = SupervisorConfig(hours=0.3)
    out = tmp_path / "run"
    Supervisor(ReplayMicroscope(recorded, seed=0), TruthJudge(), FixedSequenceAgent([7]), out, cfg).run(
        stop_after_cycles=5)
    tot = Supervisor(ReplayMicroscope(recorded, seed=0), TruthJudge(), FixedSequenceAgent([7]), out, cfg).resume().run()
    ref = Supervisor(ReplayMicroscope(recorded, seed=0), TruthJudge(), FixedSequenceAgent([7]), tmp_path / "ref",
                     cfg).run()
    assert tot.to_dict() == ref.to_dict() and tot.actions > 0 and tot.truth_known is False
    ev = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert ev[-1]["event"] == "end" and ev[-1]["totals"]["true_good_time_fraction"] is None


def test_bad_sources(tmp_path):
    with pytest.raises(ReadError):
        load_recorded(tmp_path)
    np.savez(tmp_path / "images.npz", other=np.zeros(3))
    with pytest.raises(ReadError, match="images"):
        load_recorded(tmp_path)


@pytest.mark.slow
def test_gordon_hsi_replays(shared_data_dir):
    src = shared_data_dir / "gordon-hsi"
    if not (src / "images.npz").exists():
        pytest.skip("gordon-hsi data absent")
    m = ReplayMicroscope(src, limit=40)
    img = m.scan((0.0, 0.0), 8.0)
    assert img.shape == (128, 128) and "mean_bad_blurry" in img.metadata["recorded"]
