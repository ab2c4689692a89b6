"""Recurrent deterministic policy gradients (RDPG, Heess et al. 2015) as Ede's adaptive scans use it.

J. M. Ede, thesis ch. 5 ("cooperative RDPG", arXiv:2004.02786): a recurrent actor ``mu`` and critic ``Q``
learn from a replay of *whole* histories by backpropagation through time; the only non-trivial loss
arrives at the last step, a generator's completion error ``L_G`` divided by its running mean
(``beta_L = 0.997``) and clipped at three standard deviations above it; off-image probing costs a
small penalty at each step. Targets use soft-updated (``0.9997``) target networks started, at each step,
from the live networks' recurrent states:

``y_t = L_t + gamma Q'(H^Q_t, x_{t+1}, mu'(H^mu_t, x_{t+1}))``, ``gamma = 0.97`` (``y = L`` at the last step),
``L_Q = 1/(2T) sum_t (y_t - Q(h_t, a_t))^2``, ``L_mu = 1/T sum_t Q(h_t, mu(h_t))``.

Exploration rotates the actor's direction by an Ornstein-Uhlenbeck angle (``theta = 0.1``,
``sigma = 0.2``) whose scale decays linearly to zero.

This module holds the algorithm only (:class:`RDPG`, :class:`Replay`, :class:`OUNoise`,
:class:`LossNormaliser`); the environment and generator are the task's
(:mod:`scopenet.tasks.adaptive_scan.train`). Losses, not rewards: lower is better.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..nn.recurrent import soft_update, stack_states
from ..simulate.scan_env import rotate

__all__ = ["RDPGConfig", "RDPG", "Replay", "OUNoise", "LossNormaliser", "rotate"]


@dataclass
class RDPGConfig:
    """Settings of :class:`RDPG` (Ede's values by default).

    Attributes
    ----------
    gamma : float
        Discount of future losses.
    target_beta : float
        Soft target update ``theta' <- beta theta' + (1 - beta) theta``.
    actor_lr, critic_lr : float
        Adam learning rates.
    actor_start : int
        Updates in which only the critic learns (0 in the chapter; useful when the actor starts from a
        cloned policy that an untrained critic would spoil).
    grad_clip : float or None
        Gradient-norm clip of both networks.
    """

    gamma: float = 0.97
    target_beta: float = 0.9997
    actor_lr: float = 5e-4
    critic_lr: float = 1e-3
    actor_start: int = 0
    grad_clip: float | None = 10.0

    def as_dict(self) -> dict:
        return asdict(self)


class OUNoise:
    """Ornstein-Uhlenbeck angles, one process per episode: ``e_t = e_{t-1} + theta (0 - e_{t-1}) + sigma W``,
    ``e_0 = 0``; ``scale`` multiplies ``sigma`` (decayed to zero over training)."""

    def __init__(self, n: int, theta: float = 0.1, sigma: float = 0.2, rng: np.random.Generator | None = None):
        if n < 1:
            raise InputError(f"OUNoise needs n >= 1, got {n}")
        self.theta, self.sigma = float(theta), float(sigma)
        self.rng = rng or np.random.default_rng()
        self.e = np.zeros(int(n))

    def reset(self) -> None:
        self.e[:] = 0.0

    def __call__(self, scale: float = 1.0) -> np.ndarray:
        self.e = self.e - self.theta * self.e + scale * self.sigma * self.rng.standard_normal(self.e.shape)
        return self.e.copy()


class LossNormaliser:
    """Running mean and variance (``beta``) of final losses; ``clip(L) / L_avg`` with ``clip`` at
    ``n_sd`` standard deviations above the mean (Ede's eq. 14). The statistics are updated after use."""

    def __init__(self, beta: float = 0.997, n_sd: float = 3.0):
        self.beta, self.n_sd = float(beta), float(n_sd)
        self.mean: float | None = None
        self.sq: float | None = None

    def __call__(self, losses: np.ndarray) -> np.ndarray:
        x = np.asarray(losses, np.float64)
        if self.mean is None:
            self.mean, self.sq = float(x.mean()), float((x ** 2).mean())
        sd = max(self.sq - self.mean ** 2, 0.0) ** 0.5
        out = np.minimum(x, self.mean + self.n_sd * sd) / max(self.mean, 1e-12)
        self.mean = self.beta * self.mean + (1 - self.beta) * float(x.mean())
        self.sq = self.beta * self.sq + (1 - self.beta) * float((x ** 2).mean())
        return out

    def state_dict(self) -> dict:
        return {"mean": self.mean, "sq": self.sq}

    def load_state_dict(self, d: dict) -> None:
        self.mean, self.sq = d.get("mean"), d.get("sq")


class Replay:
    """A ring buffer of whole episodes: each item a dict of arrays with a leading episode axis."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise InputError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.data: dict[str, np.ndarray] = {}
        self.n = 0
        self.next = 0

    def __len__(self) -> int:
        return self.n

    def add(self, batch: dict[str, np.ndarray]) -> None:
        k0 = next(iter(batch))
        m = len(batch[k0])
        if not self.data:
            self.data = {k: np.zeros((self.capacity,) + np.asarray(v).shape[1:], np.asarray(v).dtype)
                         for k, v in batch.items()}
        idx = (self.next + np.arange(m)) % self.capacity
        for k, v in batch.items():
            self.data[k][idx] = v
        self.next = int((self.next + m) % self.capacity)
        self.n = int(min(self.capacity, self.n + m))

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.n == 0:
            raise InputError("the replay is empty")
        idx = rng.integers(0, self.n, size=int(n))
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "n": self.n, "next": self.next,
                "data": {k: v[:self.n] for k, v in self.data.items()}}

    def load_state_dict(self, d: dict) -> None:
        self.__init__(d["capacity"])
        if d["data"]:
            n = d["n"]
            self.data = {k: np.zeros((self.capacity,) + v.shape[1:], v.dtype) for k, v in d["data"].items()}
            for k, v in d["data"].items():
                self.data[k][:n] = v
            self.n, self.next = n, d["next"]


class RDPG:
    """Live and target actor and critic with their optimisers, and one update from a batch of histories.

    Parameters
    ----------
    actor : nn.Module
        ``actor(x, state=None, return_states=False)`` over ``(B, T, D)`` -> actions ``(B, T, A)``; with
        ``return_states`` also the state after every step; ``actor.step(x_t, state)`` one step.
    critic : nn.Module
        ``critic(x, a, ...)`` -> ``(B, T)``; ``critic.step(x_t, a_t, state)``.
    config : RDPGConfig
    """

    def __init__(self, actor: torch.nn.Module, critic: torch.nn.Module, config: RDPGConfig | None = None):
        self.config = config or RDPGConfig()
        self.actor, self.critic = actor, critic
        self.actor_t = copy.deepcopy(actor).requires_grad_(False)
        self.critic_t = copy.deepcopy(critic).requires_grad_(False)
        self.opt_actor = torch.optim.Adam(actor.parameters(), lr=self.config.actor_lr)
        self.opt_critic = torch.optim.Adam(critic.parameters(), lr=self.config.critic_lr)
        self.updates = 0

    def update(self, x: torch.Tensor, a: torch.Tensor, loss: torch.Tensor,
               actor_regulariser: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """One RDPG update from ``B`` whole histories.

        Parameters
        ----------
        x : Tensor (B, T, D)
            The actor's input at each decision.
        a : Tensor (B, T, A)
            The actions taken (exploration included).
        loss : Tensor (B, T)
            Step losses ``L_t`` of each action (the final loss already in ``loss[:, -1]``).
        actor_regulariser : callable, optional
            ``reg(mu) -> scalar`` added to the actor's loss (e.g. a behaviour-cloning term that keeps the
            actor near a reference policy, as TD3+BC does).

        Returns
        -------
        dict
            ``critic_loss``, ``actor_loss`` (nan while the actor waits), ``q`` (mean prediction), ``target``.
        """
        c = self.config
        if x.ndim != 3 or a.shape[:2] != x.shape[:2] or loss.shape != x.shape[:2]:
            raise InputError(f"RDPG.update: shapes x {tuple(x.shape)}, a {tuple(a.shape)}, loss {tuple(loss.shape)}")
        B, T = x.shape[:2]
        # ---- targets from the target networks, each step started from the live networks' states
        with torch.no_grad():
            _, a_states = self.actor(x, return_states=True)
            _, q_states = self.critic(x, a, return_states=True)
            y = loss.clone()
            if T > 1:
                xn = x[:, 1:].transpose(0, 1).reshape((T - 1) * B, -1)  # time-major
                mu_n, _ = self.actor_t.step(xn, stack_states(a_states[:-1]))
                q_n, _ = self.critic_t.step(xn, mu_n, stack_states(q_states[:-1]))
                y[:, :-1] += c.gamma * q_n.view(T - 1, B).transpose(0, 1)
        # ---- critic
        q = self.critic(x, a)
        critic_loss = 0.5 * ((y - q) ** 2).mean()
        self.opt_critic.zero_grad(set_to_none=True)
        critic_loss.backward()
        if c.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        self.opt_critic.step()
        # ---- actor (BPTT through the actor and the critic's recurrence)
        actor_loss = float("nan")
        if self.updates >= c.actor_start:
            mu = self.actor(x)
            lq = self.critic(x, mu).mean()
            total = lq + actor_regulariser(mu) if actor_regulariser is not None else lq
            self.opt_actor.zero_grad(set_to_none=True)
            total.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
            self.opt_actor.step()
            self.critic.zero_grad(set_to_none=True)
            actor_loss = float(lq.detach())
        soft_update(self.actor_t, self.actor, c.target_beta)
        soft_update(self.critic_t, self.critic, c.target_beta)
        self.updates += 1
        return {"critic_loss": float(critic_loss.detach()), "actor_loss": actor_loss,
                "q": float(q.detach().mean()), "target": float(y.mean())}

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_t": self.actor_t.state_dict(), "critic_t": self.critic_t.state_dict(),
                "opt_actor": self.opt_actor.state_dict(), "opt_critic": self.opt_critic.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        for k in ("actor", "critic", "actor_t", "critic_t", "opt_actor", "opt_critic"):
            getattr(self, k).load_state_dict(d[k])
        self.updates = int(d["updates"])
