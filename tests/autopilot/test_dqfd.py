"""DQfD's loss: the large-margin term makes the demonstrator's action greedy, the TD term fits the returns."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scopenet.autopilot.dqfd import DQfDConfig, dqfd_loss, pretrain  # noqa: E402
from scopenet.nn.qnet import QMLP  # noqa: E402


def _demos(reward: float, n: int = 64):
    """Two one-hot states; the demonstrator takes action 2 in state 0 and 0 in state 1; episodes end."""
    s = np.arange(n) % 2
    obs = np.eye(2, dtype=np.float32)[s]
    return {"obs": obs, "action": np.where(s == 0, 2, 0).astype(np.int64), "reward": np.full(n, reward, np.float32),
            "next_obs": obs.copy(), "done": np.ones(n, np.float32)}


def _train(demos, lambda_e=1.0):
    torch.manual_seed(0)
    net = QMLP(2, [16], 4)
    cfg = DQfDConfig(pretrain_steps=150, batch_size=32, learning_rate=3e-2, margin=0.8, lambda_e=lambda_e,
                     l2=0.0, checkpoint_every=150, target_update=25)
    recs = pretrain(net, demos, cfg, None, log=lambda *a: None)
    with torch.no_grad():
        return net(torch.eye(2)).numpy(), recs


def test_loss_terms_by_hand():
    torch.manual_seed(1)
    net, target = QMLP(3, [5], 4), QMLP(3, [5], 4)
    obs, nxt = torch.randn(6, 3), torch.randn(6, 3)
    a = torch.tensor([0, 1, 2, 3, 0, 1])
    r = torch.tensor([-1.0, -1, 9, -1, -1, 9])
    d = torch.tensor([0.0, 0, 1, 0, 0, 1])
    demo = torch.tensor([True, False, True, True, False, False])
    loss, terms = dqfd_loss(net, target, obs, a, r, nxt, d, gamma=0.9, margin=0.8, lambda_e=2.0, l2=0.1, is_demo=demo)
    with torch.no_grad():
        q, qn, qt = net(obs).numpy(), net(nxt).numpy(), target(nxt).numpy()
    i = np.arange(6)
    y = r.numpy() + 0.9 * (1 - d.numpy()) * qt[i, qn.argmax(1)]       # double DQN: online argmax, target value
    e = q[i, a] - y
    td = np.mean(np.where(np.abs(e) < 1, 0.5 * e ** 2, np.abs(e) - 0.5))
    lm = np.full_like(q, 0.8)
    lm[i, a] = 0
    je = ((q + lm).max(1) - q[i, a])[demo.numpy()].mean()
    reg = sum(float((p.detach() ** 2).sum()) for n, p in net.named_parameters() if n.endswith("weight"))
    assert terms["td"] == pytest.approx(td, rel=1e-5) and terms["margin"] == pytest.approx(je, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(td + 2.0 * je + 0.1 * reg, rel=1e-5)


@pytest.mark.slow       # ~3 s unloaded (three 150-step trainings), more on a shared machine
def test_margin_makes_the_demonstrated_action_greedy_and_td_fits_rewards():
    q0, recs = _train(_demos(0.0))
    assert q0[0].argmax() == 2 and q0[1].argmax() == 0
    gap = min(q0[0, 2] - np.delete(q0[0], 2).max(), q0[1, 0] - np.delete(q0[1], 0).max())
    assert gap > 0.6                                          # about the margin (0.8)
    assert recs[-1]["agree_with_demonstrator"] == 1.0
    q5, _ = _train(_demos(5.0))                               # same data, other rewards: other values
    assert q5[0, 2] == pytest.approx(5.0, abs=0.3) and q0[0, 2] == pytest.approx(0.0, abs=0.3)
    assert q5[0].argmax() == 2
    qn, _ = _train(_demos(0.0), lambda_e=0.0)                 # TD alone says nothing about other actions
    assert not (qn[0].argmax() == 2 and qn[1].argmax() == 0 and
                min(qn[0, 2] - np.delete(qn[0], 2).max(), qn[1, 0] - np.delete(qn[1], 0).max()) > 0.6)


@pytest.mark.slow
def test_collect_and_finetune_on_the_simulator(tmp_path):
    pytest.importorskip("gymnasium")
    from scopenet.autopilot.agent import FixedSequenceAgent
    from scopenet.autopilot.dqfd import collect_demonstrations, finetune
    from scopenet.autopilot.sim import make_env

    from .conftest import TruthJudge

    env = make_env(judge=TruthJudge(), max_actions=3)
    d = collect_demonstrations(env, FixedSequenceAgent([8]), [11, 12], log=lambda *a: None)
    n = len(d["action"])
    assert 2 <= n <= 6 and set(d["action"].tolist()) == {8} and d["obs"].shape == d["next_obs"].shape
    assert np.all(d["reward"] == np.where(d["done"] == 1, 9.0, -1.0))     # -1 per action, +10 for a good tip
    torch.manual_seed(0)
    net = QMLP(d["obs"].shape[1], [8], 12)
    before = [p.detach().clone() for p in net.parameters()]
    cfg = DQfDConfig(finetune_steps=4, checkpoint_every=2, batch_size=8, finetune_seed_base=13)
    recs = finetune(net, env, d, cfg, tmp_path, log=lambda *a: None)
    assert [r["finetune_step"] for r in recs] == [2, 4] and (tmp_path / "finetune_4.pt").exists()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
