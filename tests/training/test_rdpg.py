"""RDPG pieces: loss normalisation and clipping, OU exploration, replay of whole histories, and learning."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.nn.recurrent import RecurrentActor, RecurrentCritic
from scopenet.training.rdpg import RDPG, LossNormaliser, OUNoise, RDPGConfig, Replay, rotate


def test_losses_are_divided_by_their_running_mean_and_clipped_at_three_sd():
    n = LossNormaliser(beta=0.5, n_sd=3.0)
    out = n(np.array([1.0, 3.0]))  # mean 2, sd 1: nothing clipped
    np.testing.assert_allclose(out, [0.5, 1.5])
    assert n.mean == pytest.approx(2.0) and n.sq == pytest.approx(5.0)
    out = n(np.array([100.0]))  # clipped at 2 + 3 * 1 = 5, over the mean 2
    np.testing.assert_allclose(out, [2.5])
    assert n.mean == pytest.approx(51.0)


def test_ou_angles_decay_to_zero_without_noise_and_scale_with_sigma():
    ou = OUNoise(3, theta=0.1, sigma=0.2, rng=np.random.default_rng(0))
    e = ou(1.0)
    assert e.shape == (3,) and np.abs(e).max() > 0
    before = ou.e.copy()
    np.testing.assert_allclose(ou(0.0), 0.9 * before)  # scale 0: only the pull to 0
    ou.reset()
    assert not ou.e.any()
    big = OUNoise(20000, 0.1, 0.2, np.random.default_rng(1))
    assert big(1.0).std() == pytest.approx(0.2, rel=0.05)


def test_rotation_by_a_quarter_turn():
    np.testing.assert_allclose(rotate(np.array([[1.0, 0.0]]), np.array([math.pi / 2])), [[0.0, -1.0]], atol=1e-12)


def test_replay_holds_whole_histories_in_a_ring():
    r = Replay(4)
    with pytest.raises(InputError):
        r.sample(1, np.random.default_rng(0))
    for k in range(3):
        r.add({"x": np.full((2, 5, 3), k, np.float32), "id": np.array([2 * k, 2 * k + 1])})
    assert len(r) == 4 and r.next == 2
    assert sorted(r.data["id"].tolist()) == [2, 3, 4, 5]  # the oldest two were replaced
    b = r.sample(6, np.random.default_rng(0))
    assert b["x"].shape == (6, 5, 3)
    for x, i in zip(b["x"], b["id"]):
        assert (x == i // 2).all()  # a history stays whole
    back = Replay(1)
    back.load_state_dict(r.state_dict())
    assert len(back) == 4 and sorted(back.data["id"].tolist()) == [2, 3, 4, 5]


@pytest.mark.slow
def test_rdpg_learns_a_one_step_bandit():
    """Loss ``|a - a*|^2`` after one decision: the critic learns it, the actor moves to ``a*``."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    target = torch.tensor([0.6, -0.8])
    actor, critic = RecurrentActor(in_features=3, hidden=16, layers=1), RecurrentCritic(in_features=3, hidden=16, layers=1)
    algo = RDPG(actor, critic, RDPGConfig(actor_lr=1e-2, critic_lr=1e-2, target_beta=0.9))
    for _ in range(100):
        x = torch.zeros(16, 1, 3)
        ang = rng.uniform(0, 2 * math.pi, 16)
        a = torch.tensor(np.stack([np.cos(ang), np.sin(ang)], 1), dtype=torch.float32)[:, None]
        loss = ((a - target) ** 2).sum(-1)
        stats = algo.update(x, a, loss)
    assert stats["critic_loss"] < 0.02
    with torch.no_grad():
        d = actor(torch.zeros(1, 1, 3))[0, 0]
    assert float(torch.dot(d, target)) > 0.95


def test_targets_bootstrap_from_the_next_step():
    """With a critic that always says 1 and gamma 0.5, targets are ``L_t + 0.5`` except at the last step."""
    actor, critic = RecurrentActor(in_features=2, hidden=4, layers=1), RecurrentCritic(in_features=2, hidden=4, layers=1)
    for net in (critic,):
        for p in net.parameters():
            torch.nn.init.zeros_(p)
        net.core.head.bias.data.fill_(1.0)
    algo = RDPG(actor, critic, RDPGConfig(gamma=0.5, actor_start=10))
    stats = algo.update(torch.zeros(2, 3, 2), torch.ones(2, 3, 2) / math.sqrt(2), torch.zeros(2, 3))
    assert stats["target"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert math.isnan(stats["actor_loss"])  # the actor waits for actor_start updates
    with pytest.raises(InputError):
        algo.update(torch.zeros(2, 3, 2), torch.zeros(2, 2, 2), torch.zeros(2, 3))


def test_an_actor_regulariser_pulls_the_actor_to_a_reference():
    torch.manual_seed(0)
    ref = torch.tensor([0.0, 1.0])
    actor, critic = RecurrentActor(in_features=2, hidden=8, layers=1), RecurrentCritic(in_features=2, hidden=8, layers=1)
    algo = RDPG(actor, critic, RDPGConfig(actor_lr=2e-2))
    seen = []

    def reg(mu):
        seen.append(tuple(mu.shape))
        return 100.0 * ((mu - ref) ** 2).sum(-1).mean()

    x, a = torch.zeros(4, 2, 2), torch.ones(4, 2, 2) / math.sqrt(2)
    for _ in range(40):
        algo.update(x, a, torch.zeros(4, 2), actor_regulariser=reg)
    assert seen[0] == (4, 2, 2)
    with torch.no_grad():
        assert float(actor(x)[0, 0] @ ref) > 0.95
