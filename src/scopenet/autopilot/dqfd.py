"""Deep Q-learning from Demonstrations (DQfD; Hester et al., AAAI 2018) for the conditioning agent.

A demonstrator that sees more than the agent - :class:`~.agent.OracleAgent`, which reads the
simulator's latent apex - conditions simulated tips while the **agent's own observation** (what the
judge makes of each image, :func:`~.agent.observation`) is recorded with the action, reward, next
observation and whether the episode ended (:func:`collect_demonstrations`). The Q-network (``q-mlp``,
:class:`~scopenet.nn.qnet.QMLP`) is then trained on these transitions with DQfD's loss
(:func:`dqfd_loss`)::

    J = J_TD + lambda_E * J_E + lambda_L2 * ||w||^2
    J_TD = Huber(Q(s, a) - [r + gamma * (1 - done) * Q_target(s', argmax_a' Q(s', a'))])   (double DQN)
    J_E  = max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E),   l = margin for a != a_E, 0 for a = a_E

The large-margin term makes the demonstrator's action the greedy one by at least ``margin``; the TD
term keeps the values those of the task's returns (reward -1 per action, +10 for a good tip), so it is
a Q-function, not a classifier. The target network is copied every ``target_update`` steps.
:func:`pretrain` runs the pretraining phase; :func:`finetune` then (optionally) acts on the simulator
with the network, epsilon-greedy, keeping the demonstrations in the replay (J_E only on them).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import Field

from .agent import AgentRunConfig

__all__ = ["DQfDConfig", "collect_demonstrations", "dqfd_loss", "evaluate", "finetune", "pretrain"]


class DQfDConfig(AgentRunConfig):
    """A DQfD run (``scripts/train_autopilot.py recipes/autopilot-dqfd.yaml``); the network, optimiser and
    observation settings are :class:`~scopenet.autopilot.agent.AgentRunConfig`'s."""

    algorithm: str = "dqfd"
    name: str = "dqfd"
    workdir: str = "runs/autopilot-dqfd"
    # demonstrations
    demo_seed_base: int = Field(5_000_000, description="simulator seeds of the demonstration episodes: base + i")
    demo_episodes: int = Field(800, ge=1)
    demo_time_budget_s: float = Field(900.0, gt=0, description="collection stops when this is spent")
    demo_samples: int = Field(32, ge=1, description="oracle's Monte-Carlo samples per action")
    judge_model: str = "good-bad"
    judge_aux: str | None = Field("hsi-six-sim-fast", description="auxiliary classifier whose scores the agent "
                                                                   "also observes")
    judge_features: bool = Field(True, description="the agent also observes the judge's image statistics")
    # network and loss
    init: str | None = Field(None, description="saved agent stem to start from (e.g. the shipped v2)")
    margin: float = Field(0.8, ge=0, description="large-margin loss l(a_E, a) for a != a_E")
    lambda_e: float = Field(1.0, ge=0, description="weight of the large-margin loss")
    l2: float = Field(1e-5, ge=0, description="weight of the L2 penalty on the weights")
    pretrain_steps: int = Field(10_000, ge=0)
    target_update: int = Field(500, ge=1)
    # optional fine-tune on the simulator (demonstrations kept in the replay of buffer_size)
    finetune_steps: int = Field(0, ge=0)
    finetune_time_budget_s: float = Field(900.0, gt=0)
    finetune_eps: float = Field(0.05, ge=0, le=1)
    finetune_seed_base: int = Field(6_000_000)
    demo_fraction: float = Field(0.25, ge=0, le=1, description="fraction of each fine-tune batch from demonstrations")
    # selection
    select_seed_base: int = Field(3_000_000, description="selection episodes: base + i (disjoint from the bench)")
    select_episodes: int = Field(200, ge=0)


def _arrays(rows: list[tuple]) -> dict[str, np.ndarray]:
    o, a, r, o2, d = zip(*rows)
    return {"obs": np.stack(o).astype(np.float32), "action": np.asarray(a, np.int64),
            "reward": np.asarray(r, np.float32), "next_obs": np.stack(o2).astype(np.float32),
            "done": np.asarray(d, np.float32)}


def collect_demonstrations(env, demonstrator, seeds, time_budget_s: float = float("inf"), log=print) -> dict:
    """Transitions of ``demonstrator`` acting in ``env``, recorded as the agent observes them.

    Parameters
    ----------
    env : ConditioningEnv
        The gymnasium environment (its judge builds the observation).
    demonstrator
        An agent with ``act(obs)``; one with ``bind`` (the oracle) is bound to the episode's microscope.
    seeds : iterable of int
        One episode per simulator seed.
    time_budget_s : float
        Stop after the episode during which this much wall time was spent.

    Returns
    -------
    dict of ndarray
        ``obs`` [N, n_obs], ``action`` [N], ``reward`` [N], ``next_obs`` [N, n_obs], ``done`` [N]
        (1 when the episode ended with a good tip; truncation at the cap is not an end), ``episode`` [N].
    """
    rows, ep_of, lens = [], [], []
    t0 = time.time()
    for k, s in enumerate(seeds):
        obs, _ = env.reset(seed=int(s))
        if hasattr(demonstrator, "bind"):
            demonstrator.bind(env.mic)
        demonstrator.reset()
        n = 0
        while True:
            a = int(demonstrator.act(obs))
            obs2, r, term, trunc, _ = env.step(a)
            rows.append((obs, a, r, obs2, float(term)))
            ep_of.append(k)
            n += 1
            obs = obs2
            if term or trunc:
                break
        lens.append(n)
        if (k + 1) % 50 == 0:
            log(f"  demonstrations: {k + 1} episodes, {len(rows)} transitions, median length "
                f"{np.median(lens):.1f}, {time.time() - t0:.0f} s")
        if time.time() - t0 > time_budget_s:
            break
    out = _arrays(rows)
    out["episode"] = np.asarray(ep_of, np.int64)
    return out


def dqfd_loss(net, target, obs, action, reward, next_obs, done, gamma: float = 0.95, margin: float = 0.8,
              lambda_e: float = 1.0, l2: float = 1e-5, is_demo=None):
    """DQfD's loss on a batch (see the module docstring).

    Parameters
    ----------
    net, target : torch.nn.Module
        Online and target Q-networks, ``(B, n_obs) -> (B, n_actions)``.
    obs, next_obs : Tensor float [B, n_obs]
    action : Tensor long [B]
    reward, done : Tensor float [B]
    is_demo : Tensor bool [B], optional
        Which transitions are demonstrations (the margin loss applies only to them); default all.

    Returns
    -------
    (Tensor, dict)
        The total loss and its terms as floats (``td``, ``margin``, ``l2``).
    """
    import torch
    import torch.nn.functional as F

    q = net(obs)
    q_a = q.gather(1, action[:, None]).squeeze(1)
    with torch.no_grad():
        best = net(next_obs).argmax(1, keepdim=True)                       # chosen online
        q_next = target(next_obs).gather(1, best).squeeze(1)             # valued by the target
        y = reward + gamma * (1.0 - done) * q_next
    td = F.smooth_l1_loss(q_a, y)
    lmat = torch.full_like(q, float(margin))
    lmat.scatter_(1, action[:, None], 0.0)
    je = (q + lmat).max(1).values - q_a
    if is_demo is not None:
        je = je[is_demo] if bool(is_demo.any()) else je[:0]
    je = je.mean() if je.numel() else q.sum() * 0.0
    reg = sum((p ** 2).sum() for n, p in net.named_parameters() if n.endswith("weight"))
    loss = td + lambda_e * je + l2 * reg
    return loss, {"td": float(td.detach()), "margin": float(je.detach()), "l2": float(reg.detach())}


def _tensors(d: dict, idx):
    import torch

    return (torch.as_tensor(d["obs"][idx]), torch.as_tensor(d["action"][idx]), torch.as_tensor(d["reward"][idx]),
            torch.as_tensor(d["next_obs"][idx]), torch.as_tensor(d["done"][idx]))


def pretrain(net, demos: dict, cfg: DQfDConfig, workdir: Path | None = None, log=print) -> list[dict]:
    """DQfD's pretraining phase: ``cfg.pretrain_steps`` updates on the demonstrations only.

    Checkpoints (``pretrain_<step>.pt``: the state dict) go to ``workdir`` every ``cfg.checkpoint_every``
    steps. Returns the logged records (step, loss terms, agreement with the demonstrator).
    """
    import copy

    import torch

    target = copy.deepcopy(net).eval()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    n = len(demos["action"])
    recs, acc = [], []
    t0 = time.time()
    for step in range(1, cfg.pretrain_steps + 1):
        idx = rng.integers(0, n, min(cfg.batch_size, n))
        loss, terms = dqfd_loss(net, target, *_tensors(demos, idx), gamma=cfg.gamma, margin=cfg.margin,
                                lambda_e=cfg.lambda_e, l2=cfg.l2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        acc.append(terms)
        if step % cfg.target_update == 0:
            target.load_state_dict(net.state_dict())
        if step % cfg.checkpoint_every == 0 or step == cfg.pretrain_steps:
            with torch.no_grad():
                agree = float((net(torch.as_tensor(demos["obs"])).argmax(1).numpy() == demos["action"]).mean())
            rec = {"step": step, "wall_s": round(time.time() - t0, 1), "agree_with_demonstrator": round(agree, 4),
                   **{k: round(float(np.mean([a[k] for a in acc])), 4) for k in ("td", "margin", "l2")}}
            acc = []
            recs.append(rec)
            log(rec)
            if workdir is not None:
                torch.save(net.state_dict(), Path(workdir) / f"pretrain_{step}.pt")
    return recs


def finetune(net, env, demos: dict, cfg: DQfDConfig, workdir: Path | None = None, log=print) -> list[dict]:
    """DQfD's second phase: act epsilon-greedy on the simulator, learn from self-generated and demonstration data.

    Each update draws ``demo_fraction`` of the batch from the demonstrations (TD + margin loss) and the
    rest from the agent's own replay (TD loss only; at most ``buffer_size`` transitions). Checkpoints
    ``finetune_<step>.pt`` every ``checkpoint_every`` environment steps; stops at ``finetune_steps`` or
    after ``finetune_time_budget_s``.
    """
    import copy

    import torch

    from .agent import N_ACTIONS

    target = copy.deepcopy(net).eval()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed + 1)
    own: list[tuple] = []
    nd = len(demos["action"])
    n_demo = int(round(cfg.batch_size * cfg.demo_fraction))
    recs, lens, ep, n_ep = [], [], 0, 0
    t0 = time.time()
    obs, _ = env.reset(seed=cfg.finetune_seed_base)
    for step in range(1, cfg.finetune_steps + 1):
        if rng.random() < cfg.finetune_eps:
            a = int(rng.integers(N_ACTIONS))
        else:
            with torch.no_grad():
                a = int(net(torch.as_tensor(obs[None])).argmax(1)[0])
        obs2, r, term, trunc, _ = env.step(a)
        own.append((obs, a, r, obs2, float(term)))
        own = own[-cfg.buffer_size:]
        ep += 1
        obs = obs2
        if term or trunc:
            lens.append(ep)
            ep = 0
            n_ep += 1
            obs, _ = env.reset(seed=cfg.finetune_seed_base + n_ep)
        di = rng.integers(0, nd, n_demo)
        oi = rng.integers(0, len(own), cfg.batch_size - n_demo)
        own_d = _arrays([own[i] for i in oi])
        batch = [torch.cat([x, y]) for x, y in zip(_tensors(demos, di), _tensors(own_d, slice(None)))]
        is_demo = torch.cat([torch.ones(n_demo, dtype=torch.bool), torch.zeros(len(oi), dtype=torch.bool)])
        loss, terms = dqfd_loss(net, target, *batch, gamma=cfg.gamma, margin=cfg.margin, lambda_e=cfg.lambda_e,
                                l2=cfg.l2, is_demo=is_demo)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        if step % cfg.target_update == 0:
            target.load_state_dict(net.state_dict())
        if step % cfg.checkpoint_every == 0 or step == cfg.finetune_steps or time.time() - t0 > cfg.finetune_time_budget_s:
            rec = {"finetune_step": step, "wall_s": round(time.time() - t0, 1), "episodes": n_ep,
                   "median_len_last100": float(np.median(lens[-100:])) if lens else None, **terms}
            recs.append(rec)
            log(rec)
            if workdir is not None:
                torch.save(net.state_dict(), Path(workdir) / f"finetune_{step}.pt")
            if time.time() - t0 > cfg.finetune_time_budget_s:
                break
    return recs


def evaluate(agent, judge, seeds, max_actions: int = 100) -> dict:
    """Median and mean actions of ``agent`` on one simulated episode per seed (as the bench runs them)."""
    from .bench import _episodes

    n = np.array([e["actions"] for e in _episodes(agent, seeds, judge, max_actions)], float)
    return {"episodes": len(n), "median": float(np.median(n)), "mean": float(n.mean()),
            "p90": float(np.percentile(n, 90)), "within_3": int((n <= 3).sum())}
