"""The supervisor loop: the consecutive-bad rule, crashes, area selection, log and resume."""
import json

import numpy as np
import pytest

from scopenet.autopilot.agent import FixedSequenceAgent, RandomAgent
from scopenet.autopilot.areas import AreaPlan, area_clean
from scopenet.autopilot.sim import SimMicroscope
from scopenet.autopilot.supervisor import Supervisor, SupervisorConfig, run_episode
from scopenet.simulate.spm.probe import ApexState, render_scan

from .conftest import TruthJudge


def _events(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_killed_and_resumed_gives_the_same_totals(tmp_path):
    cfg = SupervisorConfig(hours=0.8)
    full = Supervisor(SimMicroscope(seed=3), TruthJudge(), RandomAgent(1), tmp_path / "a", cfg)
    t_full = full.run()
    part = Supervisor(SimMicroscope(seed=3), TruthJudge(), RandomAgent(1), tmp_path / "b", cfg)
    part.run(stop_after_cycles=17)
    with open(tmp_path / "b" / "log.jsonl", "a") as fh:      # a half-written event after the checkpoint
        fh.write('{"event": "image", "t_s": 99')
    again = Supervisor(SimMicroscope(seed=3), TruthJudge(), RandomAgent(1), tmp_path / "b", cfg).resume()
    t_again = again.run()
    assert t_full.to_dict() == t_again.to_dict()
    assert (tmp_path / "a" / "log.jsonl").read_text() == (tmp_path / "b" / "log.jsonl").read_text()
    assert t_full.images > 20 and t_full.actions > 0
    ev = _events(tmp_path / "a" / "log.jsonl")
    assert ev[0]["event"] == "start" and ev[-1]["event"] == "end"


@pytest.mark.parametrize("max_bad", [4, 2])
def test_consecutive_bad_rule(tmp_path, max_bad):
    cfg = SupervisorConfig(hours=0.3, max_bad=max_bad)
    sim = SimMicroscope(seed=0, p_contaminated=0.0, p_stepped=0.0)
    Supervisor(sim, TruthJudge(p=0.1), FixedSequenceAgent([0]), tmp_path, cfg).run()
    ev = [e for e in _events(tmp_path / "log.jsonl") if e["event"] in ("image", "action")]
    first_action = next(i for i, e in enumerate(ev) if e["event"] == "action")
    assert first_action == max_bad
    assert all(e["judge"]["verdict"] == "bad" for e in ev[:max_bad])
    assert "conditioning" in ev[max_bad - 1]["decision"]


@pytest.mark.slow
def test_crashes_are_survived_and_logged(tmp_path):
    cfg = SupervisorConfig(hours=1.0, max_bad=1)
    sup = Supervisor(SimMicroscope(seed=2), TruthJudge(p=0.1), FixedSequenceAgent([11]), tmp_path, cfg)
    tot = sup.run()
    assert tot.crashes >= 1 and tot.time_s >= 3600
    ev = _events(tmp_path / "log.jsonl")
    assert any(e.get("crashed") for e in ev if e["event"] == "action")
    assert ev[-1]["event"] == "end"


def test_dirty_areas_are_abandoned(tmp_path):
    cfg = SupervisorConfig(hours=0.3)
    sim = SimMicroscope(seed=0, p_contaminated=1.0, start_good=True)
    sup = Supervisor(sim, TruthJudge(), RandomAgent(0), tmp_path, cfg)
    tot = sup.run()
    assert tot.dirty_images >= 3 and len(sup.plan.bad_cells) >= 3
    # each abandoned cell is left after one image
    cells = [sup.plan.cell_of(tuple(e["centre_nm"])) for e in _events(tmp_path / "log.jsonl")
             if e["event"] == "image" and e["decision"] == "abandon cell"]
    assert len(cells) == len(set(cells))


def test_area_clean_separates_clean_and_contaminated():
    rng = np.random.default_rng(0)
    tip = ApexState(radius_nm=0.8, instability=0.0)
    clean = [area_clean(render_scan(tip, rng, surface_seed=s, adsorbate_density=0.001)) for s in range(12)]
    dirty = [area_clean(render_scan(tip, rng, surface_seed=s, adsorbate_density=0.08)) for s in range(12)]
    stepped = [area_clean(render_scan(tip, rng, surface_seed=s, p_steps=1.0, adsorbate_density=0.001))
               for s in range(12)]
    assert np.mean(clean) >= 0.8 and np.mean(dirty) <= 0.3 and np.mean(stepped) <= 0.5


def test_run_episode_counts_and_truth():
    sim = SimMicroscope(seed=4)
    r = run_episode(sim, TruthJudge(), FixedSequenceAgent([4, 7]), max_actions=30)
    assert 1 <= r["actions"] <= 30 and len(r["sequence"]) == r["actions"]
    assert r["success"] == r["tip_good"] or not r["success"]
    assert r["sequence"][:2] == [4, 7][:len(r["sequence"][:2])]


def test_area_plan_round_trip_and_fresh_spots():
    plan = AreaPlan()
    spots = [plan.next_spot()[0] for _ in range(50)]
    d = np.hypot(*(np.asarray(spots)[:, None] - np.asarray(spots)[None]).transpose(2, 0, 1))
    assert np.min(d[np.triu_indices(50, 1)]) >= plan.layout.spot_pitch_nm - 1e-9
    plan.abandon_cell(3)
    assert AreaPlan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()


class _RichJudge(TruthJudge):
    """TruthJudge with auxiliary scores and image statistics, as the shipped agent's judge has."""

    aux_categories = ["blur", "tip_change"]
    feature_names = ["hf_noise", "line_switch"]

    def __call__(self, img):
        res = super().__call__(img)
        res.scores = {"blur": 1 - res.p_good, "tip_change": 0.0}
        res.features = {"hf_noise": 0.5, "line_switch": 0.1}
        return res


def test_a_q_agent_whose_judge_has_scores_and_statistics_runs_and_resumes(tmp_path):
    """The supervisor rebuilds the agent's observation from its (checkpointed) last judge result."""
    import torch

    from scopenet.autopilot.agent import QAgent, observation_size, save_q_agent
    from scopenet.nn.qnet import QMLP

    judge = _RichJudge()
    n = observation_size(judge)
    net = torch.nn.Module()
    net.q_net = QMLP(n, [8], 12)
    save_q_agent(net, n, [8], tmp_path / "q", {"name": "t"})
    cfg = SupervisorConfig(hours=0.3)
    sim = SimMicroscope(seed=1)
    sup = Supervisor(sim, judge, QAgent.load(tmp_path / "q"), tmp_path / "run", cfg)
    sup.run(stop_after_cycles=6)
    again = Supervisor(SimMicroscope(seed=1), judge, QAgent.load(tmp_path / "q"), tmp_path / "run", cfg).resume()
    assert again._obs().shape == (n,)
    tot = again.run()
    assert tot.actions > 0


def test_resuming_a_finished_run_leaves_one_end_record(tmp_path):
    cfg = SupervisorConfig(hours=0.05)
    sup = Supervisor(SimMicroscope(seed=4), TruthJudge(), RandomAgent(2), tmp_path, cfg)
    t1 = sup.run()
    before = (tmp_path / "log.jsonl").read_text()
    t2 = Supervisor(SimMicroscope(seed=4), TruthJudge(), RandomAgent(2), tmp_path, cfg).resume().run()
    assert t2.to_dict() == t1.to_dict()
    assert (tmp_path / "log.jsonl").read_text() == before
    assert [e["event"] for e in _events(tmp_path / "log.jsonl")].count("end") == 1
