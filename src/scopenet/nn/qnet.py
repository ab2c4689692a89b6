"""Q-networks for value-based agents (the STM autopilot's conditioning agent).

``q-mlp``: observation vector ``(B, n_obs)`` -> one Q value per action ``(B, n_actions)``; ReLU between
the hidden layers. Its parameter names (``0.weight``, ``2.weight`` ...) are those of a plain
``nn.Sequential`` of ``Linear``/``ReLU`` layers, so stable-baselines3's ``q_net`` weights load unchanged.
"""
from __future__ import annotations

import torch.nn as nn

from . import register_architecture

__all__ = ["QMLP"]


@register_architecture("q-mlp")
class QMLP(nn.Sequential):
    """A multilayer perceptron of Q values.

    Parameters
    ----------
    n_obs : int
        Length of the observation vector.
    hidden : list of int
        Widths of the hidden layers.
    n_actions : int
        Number of discrete actions (outputs).
    """

    def __init__(self, n_obs: int, hidden: list[int] = (256, 128), n_actions: int = 12):
        layers, c = [], int(n_obs)
        for h in hidden:
            layers += [nn.Linear(c, int(h)), nn.ReLU()]
            c = int(h)
        layers.append(nn.Linear(c, int(n_actions)))
        super().__init__(*layers)
        self.config = {"n_obs": int(n_obs), "hidden": [int(h) for h in hidden], "n_actions": int(n_actions)}
