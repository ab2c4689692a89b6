"""Conditioning agents: what the agent observes, the baselines, and a double-DQN agent on stable-baselines3.

**Observation** (:func:`observation`, float32 vector): the judge's good-tip probability, whether the
image was in the judge's domain, whether the last action crashed the tip, the auxiliary model's
category scores (blur, asymmetry, tip change...), the judge's model-free image statistics when it has
them (:func:`~.judge.image_features`: noise, tip switching, resolution), the embedding of the last
image (the good/bad network's pooled last-conv features), one-hot codes of the last :data:`N_RECENT` actions, and the
fraction of the episode's action budget used.

**Agents** share one interface (``reset()``, ``act(obs) -> int``):

- :class:`RandomAgent` - a uniformly random action (DeepSPM's comparison);
- :class:`FixedSequenceAgent` - a fixed cyclic sequence of actions, whatever the images show;
- :class:`QAgent` - greedy on a Q-network (a plain torch MLP, loaded from shipped safetensors);
- :class:`OracleAgent` - a bound on what observation can buy: it reads the simulator's latent apex
  (:class:`~scopenet.simulate.spm.probe.ApexState`) and takes the action with the highest
  Monte-Carlo probability of a good apex afterwards (greedy one step, on the simulator's own dynamics).

**Training**: stable-baselines3's ``DQN`` computes its TD target with ``max_a Q_target(s', a)``
(plain DQN with a target network, not double DQN). :func:`double_dqn_class` subclasses it and
overrides ``train`` with the double-DQN target ``Q_target(s', argmax_a Q_online(s', a))`` that
DeepSPM used (van Hasselt et al. 2016). :mod:`~scopenet.autopilot.dqfd` trains the same Q-network
from the oracle's demonstrations (DQfD; the shipped agent v3) and saves it with :func:`save_q_agent`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .instrument import ACTIONS

__all__ = ["AgentTrainConfig", "FixedSequenceAgent", "N_RECENT", "OracleAgent", "QAgent", "RandomAgent", "double_dqn_class", "observation",
           "observation_size", "save_q_agent"]

class AgentRunConfig(BaseModel):
    """What every training run of the conditioning agent sets: the Q-network, its optimiser and the
    observation (the base of :class:`AgentTrainConfig` and of DQfD's configuration)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    threads: int = Field(1, ge=1)
    gamma: float = Field(0.95, gt=0, le=1)
    buffer_size: int = Field(15_000, ge=100)
    learning_rate: float = Field(5e-4, gt=0)
    batch_size: int = Field(64, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    max_actions: int = Field(100, ge=1, description="episode cap (DeepSPM: 100)")
    judge_aux: str | None = Field(None, description="auxiliary classifier whose scores the agent also observes")
    judge_features: bool = Field(False, description="the agent also observes the judge's image statistics")
    sim: dict = Field(default_factory=dict, description="SimConfig overrides")
    checkpoint_every: int = Field(2000, ge=1)


class AgentTrainConfig(AgentRunConfig):
    """A training run of the conditioning agent (``scripts/train_autopilot.py``; recipes in ``recipes/``).

    DeepSPM's settings where it gave them: gamma 0.95, replay 15,000, epsilon 1 -> 0.05.
    """

    name: str = "default"
    workdir: str = "runs/autopilot"
    total_steps: int = Field(200_000, ge=1)
    time_budget_s: float = Field(2400.0, gt=0, description="wall-clock budget; training stops when it is spent")
    learning_starts: int = Field(1000, ge=0)
    train_freq: int = Field(1, ge=1)
    gradient_steps: int = Field(1, ge=1)
    target_update_interval: int = Field(500, ge=1)
    exploration_fraction: float = Field(0.5, gt=0, le=1, description="fraction of total_steps for epsilon 1 -> final")
    exploration_final_eps: float = Field(0.05, ge=0, le=1)
    save_replay: bool = False


#: number of recent actions in the observation
N_RECENT = 4
N_ACTIONS = len(ACTIONS)


def observation_size(judge) -> int:
    """Length of the observation vector for a judge (see the module docstring)."""
    return (3 + len(judge.aux_categories) + len(getattr(judge, "feature_names", ())) + judge.embedding_dim
            + N_RECENT * N_ACTIONS + 1)


def observation(res, recent: list[int], n: int, max_actions: int, crashed: bool) -> np.ndarray:
    """The agent's observation from the judge's result of the last image and the recent actions.

    Parameters
    ----------
    res : JudgeResult
    recent : list of int
        Indices of the last actions, oldest first (at most :data:`N_RECENT` are used).
    n : int
        Actions taken so far this episode.
    max_actions : int
    crashed : bool
        Whether the last action crashed the tip.

    Returns
    -------
    ndarray float32 [observation_size]
    """
    onehot = np.zeros((N_RECENT, N_ACTIONS), np.float32)
    for i, a in enumerate(list(recent)[-N_RECENT:][::-1]):   # row 0 = the latest action
        onehot[i, int(a)] = 1.0
    head = [res.p_good, float(res.in_domain), float(crashed)]
    aux = list(res.scores.values()) + list(getattr(res, "features", {}).values())
    return np.concatenate([np.asarray(head + aux, np.float32), 4.0 * np.asarray(res.embedding, np.float32),
                           onehot.ravel(), np.asarray([n / max(1, max_actions)], np.float32)])


class RandomAgent:
    """Uniformly random actions (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs) -> int:
        return int(self.rng.integers(N_ACTIONS))


class FixedSequenceAgent:
    """A fixed sequence of action indices, repeated, restarting at each episode."""

    def __init__(self, sequence):
        self.sequence = [int(a) for a in sequence]
        if not self.sequence or any(not 0 <= a < N_ACTIONS for a in self.sequence):
            from ..errors import InputError

            raise InputError(f"a fixed sequence needs action indices in 0..{N_ACTIONS - 1}, got {sequence}")
        self.name = "fixed:" + ",".join(ACTIONS[a].name for a in self.sequence)
        self.i = 0

    def reset(self) -> None:
        self.i = 0

    def act(self, obs) -> int:
        a = self.sequence[self.i % len(self.sequence)]
        self.i += 1
        return a


class OracleAgent:
    """Reads the simulator's latent apex and takes the action most likely to leave a good apex.

    Not a usable policy on an instrument (the apex is hidden there): it bounds what an agent that
    observes images can gain over a fixed sequence. Before each episode :meth:`bind` it to the
    :class:`~scopenet.autopilot.sim.SimMicroscope`; each :meth:`act` draws ``samples`` outcomes of every
    action from the current apex with :func:`~scopenet.simulate.spm.probe.apply_pulse` /
    :func:`~scopenet.simulate.spm.probe.apply_dip` (its own generator: the microscope's randomness is
    untouched) and picks the action with the most good outcomes (ties: the first).
    """

    name = "oracle"

    def __init__(self, seed: int = 0, samples: int = 32):
        self.rng = np.random.default_rng(seed)
        self.samples = int(samples)
        self.mic = None

    def bind(self, mic) -> None:
        self.mic = mic

    def reset(self) -> None:
        pass

    def p_good_after(self, apex) -> np.ndarray:
        """Estimated probability of a good apex after each action from ``apex``, float [12]."""
        from ..simulate.spm.probe import apply_dip, apply_pulse

        out = np.zeros(N_ACTIONS)
        for i, a in enumerate(ACTIONS):
            ok = 0
            for _ in range(self.samples):
                st = apply_pulse(apex, a.value, self.rng) if a.kind == "pulse" else apply_dip(apex, a.value, self.rng)[0]
                ok += st.good()
            out[i] = ok / self.samples
        return out

    def act(self, obs) -> int:
        if self.mic is None or not hasattr(self.mic, "apex"):
            from ..errors import InputError

            raise InputError("the oracle agent needs a simulated microscope: call bind(mic) first")
        return int(np.argmax(self.p_good_after(self.mic.apex)))


class QAgent:
    """Greedy actions from a Q-network ``obs -> Q [12]`` (an MLP of ``hidden`` widths).

    Load shipped weights with :meth:`pretrained` (``src/scopenet/weights/autopilot-NAME``).
    """

    def __init__(self, n_obs: int, hidden: list[int], state_dict: dict | None = None, card: dict | None = None):
        import torch

        from ..nn.qnet import QMLP

        self.net = QMLP(int(n_obs), list(hidden), N_ACTIONS)
        if state_dict is not None:
            self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()})
        self.net.eval()
        self.card = card or {}
        self.name = "dqn:" + str(self.card.get("name", "custom"))

    def reset(self) -> None:
        pass

    def q_values(self, obs) -> np.ndarray:
        import torch

        obs = np.asarray(obs, np.float32)
        n_obs = self.net.config["n_obs"]
        if obs.shape[-1] != n_obs:
            from ..errors import InputError

            raise InputError(f"agent {self.name} expects observations of length {n_obs}, got {obs.shape[-1]}: "
                             "judge with the model, auxiliary scores and features of its card (predict.judge)")
        with torch.inference_mode():
            return self.net(torch.as_tensor(np.asarray(obs, np.float32)[None])).numpy()[0]

    def act(self, obs) -> int:
        return int(np.argmax(self.q_values(obs)))

    @classmethod
    def load(cls, stem: str | Path) -> "QAgent":
        """Load ``<stem>.safetensors`` + ``<stem>.json`` written by :func:`save_q_agent`."""
        from safetensors.numpy import load_file

        from ..errors import ReadError

        stem = Path(str(stem).removesuffix(".safetensors").removesuffix(".json"))
        try:
            card = json.loads(stem.with_suffix(".json").read_text())
            sd = load_file(str(stem.with_suffix(".safetensors")))
        except (OSError, ValueError) as e:
            raise ReadError(stem, f"not a saved autopilot agent ({e})") from e
        arch = card["architecture"]["config"]
        return cls(arch["n_obs"], arch["hidden"], sd, card)

    @classmethod
    def pretrained(cls, name: str = "default") -> "QAgent":
        """A shipped agent: ``autopilot-<name>`` in ``scopenet/weights``."""
        from ..errors import InputError

        stem = Path(__file__).resolve().parent.parent / "weights" / f"autopilot-{name}"
        if not stem.with_suffix(".json").exists():
            raise InputError(f"no shipped autopilot agent {name!r} ({stem}.json is missing)")
        return cls.load(stem)


def save_q_agent(q_net, n_obs: int, hidden: list[int], stem: str | Path, card: dict, overwrite: bool = False):
    """Save an SB3 ``QNetwork`` (or any module whose ``q_net`` is the MLP) as safetensors + card JSON.

    The SB3 keys ``q_net.<i>.weight`` become the plain ``<i>.weight`` of :class:`QAgent`'s MLP.
    """
    from safetensors.numpy import save_file

    from ..errors import WriteError

    stem = Path(stem)
    st, js = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not overwrite and (st.exists() or js.exists()):
        raise WriteError(st, "exists; pass overwrite=True")
    sd = {k.split("q_net.", 1)[-1]: v.detach().cpu().numpy().copy() for k, v in q_net.state_dict().items()
          if "q_net." in k or k[0].isdigit()}
    card = {**card, "architecture": {"name": "q-mlp", "config": {"n_obs": int(n_obs), "hidden": list(hidden),
                                                                 "n_actions": N_ACTIONS}},
            "predict": {**card.get("predict", {}), "actions": [a.name for a in ACTIONS]},
            "preprocessing": {**card.get("preprocessing", {}), "input_shape": [1, int(n_obs)]}}
    tmp_st, tmp_js = st.with_name(st.name + ".tmp"), js.with_name(js.name + ".tmp")
    save_file(sd, str(tmp_st))
    tmp_js.write_text(json.dumps(card, indent=2))
    tmp_st.replace(st)
    tmp_js.replace(js)
    return st, js


def double_dqn_class():
    """stable-baselines3 ``DQN`` with the double-DQN target (see the module docstring)."""
    import torch as th
    import torch.nn.functional as F
    from stable_baselines3 import DQN

    class DoubleDQN(DQN):
        def train(self, gradient_steps: int, batch_size: int = 100) -> None:
            self.policy.set_training_mode(True)
            self._update_learning_rate(self.policy.optimizer)
            losses = []
            for _ in range(gradient_steps):
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
                gamma = data.discounts if getattr(data, "discounts", None) is not None else self.gamma
                with th.no_grad():
                    best = self.q_net(data.next_observations).argmax(dim=1, keepdim=True)   # chosen online
                    next_q = th.gather(self.q_net_target(data.next_observations), 1, best)  # valued by target
                    target = data.rewards + (1 - data.dones) * gamma * next_q
                q = th.gather(self.q_net(data.observations), 1, data.actions.long())
                loss = F.smooth_l1_loss(q, target)
                losses.append(loss.item())
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += gradient_steps
            self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
            self.logger.record("train/loss", float(np.mean(losses)))

    return DoubleDQN
