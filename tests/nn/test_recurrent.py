"""Recurrent actor and critic (skip connections, trainable initial states, forget bias 1) and the scanner net."""
from __future__ import annotations

import pytest
import torch

from scopenet.errors import InputError
from scopenet.nn import architecture_of, build_architecture
from scopenet.nn.recurrent import (AdaptiveScanNet, RecurrentActor, RecurrentCritic, SkipLSTM, soft_update,
                                   stack_states)


def test_forget_gate_bias_is_one_and_layers_see_the_input():
    m = SkipLSTM(5, hidden=8, layers=2, out_features=3)
    for cell in m.cells:
        b = cell.bias_ih + cell.bias_hh
        torch.testing.assert_close(b[8:16], torch.ones(8))
    assert m.cells[0].input_size == 5 and m.cells[1].input_size == 5 + 8  # skip connection
    assert m.head.in_features == 16  # the head sees every layer


def test_unrolled_sequence_equals_step_by_step_and_states_are_exposed():
    torch.manual_seed(0)
    m = SkipLSTM(4, hidden=6, layers=2, out_features=2)
    x = torch.randn(3, 5, 4)
    y, states = m(x, return_states=True)
    st = m.initial_state(3)
    for t in range(5):
        yt, st = m.step(x[:, t], st)
        torch.testing.assert_close(yt, y[:, t])
        torch.testing.assert_close(st[1][0], states[t][1][0])
    both = stack_states(states[:2])
    assert both[0][0].shape == (6, 6)  # (T * B, hidden), time-major
    torch.testing.assert_close(both[0][0][3:], states[1][0][0])


def test_initial_states_are_trained():
    m = SkipLSTM(2, hidden=4, layers=2, out_features=1)
    m(torch.randn(2, 3, 2)).sum().backward()
    assert m.h0.grad is not None and m.h0.grad.abs().sum() > 0 and m.c0.grad.abs().sum() > 0


def test_actor_gives_unit_directions_and_critic_one_value_per_step():
    a, c = RecurrentActor(hidden=8), RecurrentCritic(hidden=8)
    x = torch.randn(2, 19, 24)
    d = a(x)
    assert d.shape == (2, 19, 2)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2, 19))
    assert c(x, d).shape == (2, 19)
    with pytest.raises(InputError):
        a(torch.randn(2, 24))


def test_scanner_net_is_registered_and_rebuilds_from_its_config():
    net = AdaptiveScanNet(actor={"hidden": 8, "layers": 1}, generator={"depth": 1, "base_channels": 4, "unshuffle": 1})
    arch = architecture_of(net)
    assert arch["name"] == "adaptive-scan-net"
    back = build_architecture(arch["name"], arch["config"])
    back.load_state_dict(net.state_dict())
    x = torch.rand(1, 2, 32, 32)
    torch.testing.assert_close(back(x), net(x))
    assert net(x).shape == (1, 1, 32, 32)


def test_soft_update_moves_targets_by_one_minus_beta():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    w0 = a.weight.detach().clone()
    soft_update(a, b, 0.75)
    torch.testing.assert_close(a.weight, 0.75 * w0 + 0.25 * b.weight)
