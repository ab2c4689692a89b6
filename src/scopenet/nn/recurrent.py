"""Recurrent actor and critic for adaptive scans (J. M. Ede, thesis ch. 5), and the scanner network.

* :class:`SkipLSTM`: a stack of LSTM cells unrolled step by step, with skip connections (every layer
  sees the input beside the layer below; the head sees every layer's output), trainable initial
  states and forget-gate biases of 1. Unrolling by hand exposes every layer's state at every step,
  which RDPG needs to start the target networks from the live networks' states.
* :class:`RecurrentActor` (two outputs: the direction of the next scan segment, normalised) and
  :class:`RecurrentCritic` (one output: the predicted discounted loss of an action), the chapter's
  2-layer LSTMs of 256 units (sizes configurable).
* :class:`AdaptiveScanNet` (``"adaptive-scan-net"``): the two networks needed to scan, an actor and a
  generator (:class:`~scopenet.nn.partial_stem.InpaintUNet`) completing the partial scan.

Shapes: sequences are ``(batch, time, features)``; a state is a list over layers of ``(h, c)``, each
``(batch, hidden)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from . import build_architecture, register_architecture
from .partial_stem import InpaintUNet

__all__ = ["SkipLSTM", "RecurrentActor", "RecurrentCritic", "AdaptiveScanNet", "OBS_FEATURES"]

#: per-step input of the actor: the segment's 20 values, the next start position (2), the last direction (2)
OBS_FEATURES = 20 + 2 + 2

State = list[tuple[torch.Tensor, torch.Tensor]]


class SkipLSTM(nn.Module):
    """LSTM cells stacked with skip connections and trainable initial states.

    Parameters
    ----------
    in_features : int
        Features of the per-step input.
    hidden : int
        Units per layer.
    layers : int
        Depth.
    out_features : int
        Outputs of the linear head (on the concatenated outputs of every layer).

    Notes
    -----
    Layer ``l > 0`` takes ``[x_t, h^{l-1}_t]``; the head takes ``[h^0_t, ..., h^{L-1}_t]``. Forget-gate
    biases start at 1 (``bias_ih``'s forget quarter; ``bias_hh``'s is 0).
    """

    def __init__(self, in_features: int, hidden: int = 256, layers: int = 2, out_features: int = 1):
        super().__init__()
        if min(in_features, hidden, layers, out_features) < 1:
            raise InputError("SkipLSTM needs positive in_features, hidden, layers and out_features")
        self.hidden, self.n_layers = int(hidden), int(layers)
        self.cells = nn.ModuleList(
            nn.LSTMCell(in_features + (hidden if i else 0), hidden) for i in range(layers))
        for cell in self.cells:
            with torch.no_grad():
                cell.bias_ih[hidden:2 * hidden].fill_(1.0)
                cell.bias_hh[hidden:2 * hidden].zero_()
        self.h0 = nn.Parameter(torch.zeros(layers, hidden))
        self.c0 = nn.Parameter(torch.zeros(layers, hidden))
        self.head = nn.Linear(hidden * layers, out_features)

    def initial_state(self, batch: int) -> State:
        """The trainable initial state, expanded to ``batch``."""
        return [(self.h0[i].expand(batch, -1), self.c0[i].expand(batch, -1)) for i in range(self.n_layers)]

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One step: ``x`` (B, in) and a state -> the head's output (B, out) and the new state."""
        new, inp, outs = [], x, []
        for i, cell in enumerate(self.cells):
            h, c = cell(inp if i == 0 else torch.cat([x, inp], -1), state[i])
            new.append((h, c))
            outs.append(h)
            inp = h
        return self.head(torch.cat(outs, -1)), new

    def forward(self, x: torch.Tensor, state: State | None = None,
                return_states: bool = False):
        """Unroll over ``x`` (B, T, in) -> outputs (B, T, out) [and the state after every step: a list over
        time of states]."""
        if x.ndim != 3:
            raise InputError(f"SkipLSTM expects (batch, time, features), got {tuple(x.shape)}")
        st = self.initial_state(x.shape[0]) if state is None else state
        ys, states = [], []
        for t in range(x.shape[1]):
            y, st = self.step(x[:, t], st)
            ys.append(y)
            if return_states:
                states.append(st)
        out = torch.stack(ys, 1)
        return (out, states) if return_states else out


def stack_states(states: list[State]) -> State:
    """A list over time of states (each layer ``(B, H)``) -> one state with ``(T * B, H)`` tensors
    (time-major), to run one step from every step's state at once."""
    n_layers = len(states[0])
    return [(torch.cat([s[i][0] for s in states], 0), torch.cat([s[i][1] for s in states], 0))
            for i in range(n_layers)]


class RecurrentActor(nn.Module):
    """Chooses the direction of the next scan segment from the history of observations.

    Input per step: ``[segment values (n), next start position / size (2), last direction (2)]``.
    Output per step: a unit vector ``(d_row, d_col)``.
    """

    def __init__(self, in_features: int = OBS_FEATURES, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.config = dict(in_features=in_features, hidden=hidden, layers=layers)
        self.core = SkipLSTM(in_features, hidden, layers, 2)

    @staticmethod
    def normalise(raw: torch.Tensor) -> torch.Tensor:
        return raw / raw.norm(dim=-1, keepdim=True).clamp_min(1e-6)

    def forward(self, x: torch.Tensor, state: State | None = None, return_states: bool = False):
        out = self.core(x, state, return_states)
        if return_states:
            return self.normalise(out[0]), out[1]
        return self.normalise(out)

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        st = self.core.initial_state(x.shape[0]) if state is None else state
        y, st = self.core.step(x, st)
        return self.normalise(y), st


class RecurrentCritic(nn.Module):
    """Predicts the discounted future loss ``Q(h_t, a_t)`` of taking direction ``a_t`` after history ``h_t``.

    Input per step: the actor's input and the action, ``in_features + 2``.
    """

    def __init__(self, in_features: int = OBS_FEATURES, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.config = dict(in_features=in_features, hidden=hidden, layers=layers)
        self.core = SkipLSTM(in_features + 2, hidden, layers, 1)

    def forward(self, x: torch.Tensor, action: torch.Tensor, state: State | None = None,
                return_states: bool = False):
        out = self.core(torch.cat([x, action], -1), state, return_states)
        if return_states:
            return out[0][..., 0], out[1]
        return out[..., 0]

    def step(self, x: torch.Tensor, action: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        y, st = self.core.step(torch.cat([x, action], -1), state)
        return y[..., 0], st


@register_architecture("adaptive-scan-net")
class AdaptiveScanNet(nn.Module):
    """The networks an adaptive scan needs: an actor that steers the probe and a generator that completes
    the partial scan (``[nn_infill, mask] -> image``, :class:`~scopenet.nn.partial_stem.InpaintUNet`).

    Parameters
    ----------
    actor : dict
        :class:`RecurrentActor` arguments (``hidden``, ``layers``, ``in_features``).
    generator : dict
        ``{"name": architecture, "config": {...}}`` of the completion network, or InpaintUNet arguments.
    """

    arch_name = "adaptive-scan-net"

    def __init__(self, actor: dict | None = None, generator: dict | None = None):
        super().__init__()
        a = {"in_features": OBS_FEATURES, "hidden": 256, "layers": 2, **(actor or {})}
        g = dict(generator or {})
        if "name" in g:
            self.generator = build_architecture(g["name"], g.get("config", {}))
        else:
            self.generator = InpaintUNet(**g)
            g = {"name": "inpaint-unet", "config": dict(self.generator.config)}
        self.actor = RecurrentActor(**a)
        self.config = {"actor": dict(self.actor.config), "generator": g}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's completion of ``(B, 2, H, W)`` [NN infill, mask] (the actor runs step by step)."""
        return self.generator(x)


def soft_update(target: nn.Module, live: nn.Module, beta: float) -> None:
    """``target <- beta * target + (1 - beta) * live`` for every parameter (and buffer)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), live.parameters()):
            t.mul_(beta).add_(s, alpha=1.0 - beta)
        for t, s in zip(target.buffers(), live.buffers()):
            t.copy_(s)


def mse_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each sample, ``(B, ...) -> (B,)``."""
    return F.mse_loss(a, b, reduction="none").flatten(1).mean(1)
