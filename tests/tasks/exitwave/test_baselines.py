"""The phase-component metric and the baselines (Ede's chapter 7, eq. 25), by Monte Carlo."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.tasks.exitwave.baselines import (RANDOM_MAE, RANDOM_PHASE_MAE, RANDOM_SD, components, per_pixel_error,
                                               phase_mae, random_components, random_phase, zero_phase)

N = 400_000


def test_uniform_random_baseline_is_075_with_sd_0520_by_monte_carlo():
    # chapter eq. 25: x ~ U(-1, 1) against cos/sin of theta ~ U(-pi, pi)
    rng = np.random.default_rng(0)
    truth = components(rng.uniform(-np.pi, np.pi, N))
    err = np.abs(random_components((N,), rng) - truth)  # per pixel and component
    assert err.mean() == pytest.approx(0.75, abs=0.002)
    assert err.std() == pytest.approx(0.520, abs=0.002)
    # the closed forms the module states: E|x - g| = (1 + E g^2)/2 = 3/4 and E(x - g)^2 = 1/3 + 1/2
    assert RANDOM_MAE == 0.75 and RANDOM_SD == pytest.approx(0.5204, abs=1e-4)


def test_random_components_give_075_for_any_phase_distribution():
    rng = np.random.default_rng(1)
    for theta in (np.full(N, 0.3), rng.normal(1.0, 0.2, N), rng.choice([0.0, np.pi / 2], N)):
        err = per_pixel_error(random_components((N,), rng), components(theta))
        assert err.mean() == pytest.approx(0.75, abs=0.002)


def test_random_unit_phasors_give_8_over_pi_squared_not_075():
    rng = np.random.default_rng(2)
    truth = components(rng.uniform(-np.pi, np.pi, N))
    assert phase_mae(random_phase((N,), rng), truth) == pytest.approx(8 / np.pi ** 2, abs=0.002)
    assert RANDOM_PHASE_MAE == pytest.approx(0.8106, abs=1e-4)


def test_zero_phase_baseline_and_metric_reference_values():
    rng = np.random.default_rng(3)
    theta = rng.uniform(-np.pi, np.pi, N)
    # E|1 - cos| = 1 and E|sin| = 2/pi for uniform phases
    assert phase_mae(zero_phase((N,)), components(theta)) == pytest.approx((1 + 2 / np.pi) / 2, abs=0.002)
    t = components(np.array([0.0, np.pi / 2]))
    assert phase_mae(t, t) == 0.0
    opposite = components(np.array([0.0, np.pi / 2]) + np.pi)
    assert phase_mae(opposite, t) == pytest.approx(1.0)  # |2 cos| + |2 sin| over 2 channels = 1 per pixel
    assert components(np.exp(1j * np.array([0.7])))[:, 0] == pytest.approx([np.cos(0.7), np.sin(0.7)])


def test_metric_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="phase components"):
        per_pixel_error(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(InputError):
        per_pixel_error(np.zeros((3, 3)), np.zeros((3, 3)))
