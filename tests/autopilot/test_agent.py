"""Agents: the observation, baselines, the double-DQN target, and the shipped agent's files."""
import numpy as np
import pytest

from scopenet.autopilot.agent import (N_RECENT, FixedSequenceAgent, QAgent, RandomAgent, observation,
                                      observation_size, save_q_agent)
from scopenet.autopilot.instrument import ACTIONS
from scopenet.autopilot.judge import JudgeResult
from scopenet.errors import InputError, WriteError

from .conftest import TruthJudge


def test_observation_layout():
    j = TruthJudge()
    res = JudgeResult(0.3, "bad", 1.0, True, {}, np.arange(4, dtype=np.float32))
    obs = observation(res, [1, 5, 11], 7, 100, True)
    assert obs.shape == (observation_size(j),) and obs.dtype == np.float32
    assert obs[:3].tolist() == pytest.approx([0.3, 1.0, 1.0])
    assert obs[3:7].tolist() == [0, 4, 8, 12]                  # embedding x 4
    onehot = obs[7:7 + 12 * N_RECENT].reshape(N_RECENT, 12)
    assert onehot[0, 11] == 1 and onehot[1, 5] == 1 and onehot[2, 1] == 1 and onehot[3].sum() == 0
    assert obs[-1] == pytest.approx(0.07)


def test_baselines():
    f = FixedSequenceAgent([4, 7])
    assert [f.act(None) for _ in range(5)] == [4, 7, 4, 7, 4]
    f.reset()
    assert f.act(None) == 4 and f.name == "fixed:pulse+8V,dip1nm"
    with pytest.raises(InputError):
        FixedSequenceAgent([12])
    r1, r2 = RandomAgent(3), RandomAgent(3)
    a = [r1.act(None) for _ in range(50)]
    assert a == [r2.act(None) for _ in range(50)] and len(set(a)) > 6


@pytest.mark.slow
def test_double_dqn_target_and_export_round_trip(tmp_path):
    pytest.importorskip("stable_baselines3")
    import torch

    from scopenet.autopilot.agent import double_dqn_class
    from scopenet.autopilot.sim import make_env

    env = make_env(judge=TruthJudge(), max_actions=5)
    model = double_dqn_class()("MlpPolicy", env, learning_starts=10, batch_size=4, buffer_size=100,
                               policy_kwargs={"net_arch": [16]}, seed=0, device="cpu", learning_rate=0.0)
    model.learn(20)
    data = model.replay_buffer.sample(4)
    with torch.no_grad():
        q_next_online = model.q_net(data.next_observations)
        q_next_target = model.q_net_target(data.next_observations)
        best = q_next_online.argmax(1, keepdim=True)
        target = data.rewards + (1 - data.dones) * model.gamma * q_next_target.gather(1, best)
        q = model.q_net(data.observations).gather(1, data.actions.long())
        expected = torch.nn.functional.smooth_l1_loss(q, target).item()
    # replay the same sample inside train(): lr 0 leaves the nets unchanged
    model.replay_buffer.sample = lambda *a, **k: data
    model.train(gradient_steps=1, batch_size=4)
    assert model.logger.name_to_value["train/loss"] == pytest.approx(expected, rel=1e-5)
    # plain DQN (max over the target net) would differ whenever the two nets disagree
    # export -> QAgent gives the same Q values without stable-baselines3
    n_obs = env.observation_space.shape[0]
    save_q_agent(model.q_net, n_obs, [16], tmp_path / "a", {"name": "t"})
    agent = QAgent.load(tmp_path / "a")
    obs = data.observations[:1].numpy()[0]
    with torch.no_grad():
        ref = model.q_net(torch.as_tensor(obs[None]))[0].numpy()
    assert np.allclose(agent.q_values(obs), ref, atol=1e-6) and agent.act(obs) == int(ref.argmax())
    with pytest.raises(WriteError):
        save_q_agent(model.q_net, n_obs, [16], tmp_path / "a", {"name": "t"})


def test_observation_includes_judge_features():
    j = TruthJudge()
    j.feature_names = ["a", "b"]
    res = JudgeResult(0.3, "bad", 1.0, True, {"x": 0.5}, np.zeros(4, np.float32), {"a": 2.0, "b": 3.0})
    obs = observation(res, [], 0, 100, False)
    assert obs.shape == (observation_size(j) + 1,)            # TruthJudge has no aux category; res has one
    assert obs[3:6].tolist() == [0.5, 2.0, 3.0]


def test_q_agent_rejects_observations_of_the_wrong_length(tmp_path):
    import torch

    from scopenet.nn.qnet import QMLP

    net = torch.nn.Module()
    net.q_net = QMLP(10, [8], 12)
    save_q_agent(net, 10, [8], tmp_path / "q", {"name": "t"})
    agent = QAgent.load(tmp_path / "q")
    assert 0 <= agent.act(np.zeros(10, np.float32)) < 12
    with pytest.raises(InputError, match="length 10"):
        agent.act(np.zeros(11, np.float32))


@pytest.mark.slow
def test_oracle_reads_the_latent_tip_and_beats_random_actions():
    from scopenet.autopilot.agent import OracleAgent
    from scopenet.autopilot.sim import SimMicroscope
    from scopenet.autopilot.supervisor import run_episode
    from scopenet.simulate.spm.probe import ApexState

    oracle = OracleAgent(seed=0, samples=48)
    with pytest.raises(InputError):
        oracle.act(None)
    # a clean blunt apex: a dip (reshape) is the only cure; an adsorbate alone: a positive pulse
    assert ACTIONS[int(np.argmax(oracle.p_good_after(ApexState(radius_nm=5.0))))].kind == "dip"
    p = oracle.p_good_after(ApexState(adsorbate=True))
    assert ACTIONS[int(np.argmax(p))].kind == "pulse" and ACTIONS[int(np.argmax(p))].value > 0
    n = {"oracle": [], "random": []}
    for name, agent in (("oracle", oracle), ("random", RandomAgent(0))):
        for s in range(12):
            n[name].append(run_episode(SimMicroscope(seed=100 + s), TruthJudge(), agent, max_actions=40)["actions"])
    assert np.mean(n["oracle"]) < 0.7 * np.mean(n["random"]), n


def test_shipped_agent_loads():
    agent = QAgent.pretrained("default")
    n = agent.card["architecture"]["config"]["n_obs"]
    assert agent.card["training"]["steps"] > 1000
    a = agent.act(np.zeros(n, np.float32))
    assert 0 <= a < 12 and agent.q_values(np.zeros(n, np.float32)).shape == (12,)
    with pytest.raises(InputError):
        QAgent.pretrained("nope")
