"""Atom matching: hand-computed cases, optimality, units."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.metrics import match_atoms


def test_perfect_and_shifted_matches():
    t = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    m = match_atoms(t, t + [0.3, 0.4], tolerance=1.0, pixel_size=2e-11)
    assert (m.tp, m.fp, m.fn) == (3, 0, 0)
    assert m.precision == m.recall == m.f1 == 1.0
    assert m.rms_px == pytest.approx(0.5)
    assert m.rms_m == pytest.approx(1e-11)


def test_false_positives_negatives_and_tolerance():
    t = [[0, 0], [10, 10], [20, 20]]
    p = [[0.5, 0], [10, 12.5], [40, 40], [41, 41]]
    m = match_atoms(t, p, tolerance=2.0)
    assert (m.tp, m.fp, m.fn) == (1, 3, 2)
    assert m.precision == pytest.approx(0.25) and m.recall == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(2 * 0.25 / 3 / (0.25 + 1 / 3))
    assert m.rms_m is None
    np.testing.assert_array_equal(m.pairs, [[0, 0]])


def test_hungarian_maximises_matches_not_greedy():
    # Greedy nearest matching pairs true 0 with pred 0 (d=0.9) and leaves true 1 unmatched;
    # the optimal assignment matches both (true0-pred1 d=1.0, true1-pred0 d=0.95).
    t = np.array([[0.0, 0.0], [1.85, 0.0]])
    p = np.array([[0.9, 0.0], [-1.0, 0.0]])
    m = match_atoms(t, p, tolerance=1.0)
    assert m.tp == 2
    assert sorted(map(tuple, m.pairs)) == [(0, 1), (1, 0)]
    assert m.rms_px == pytest.approx(np.sqrt((1.0 ** 2 + 0.95 ** 2) / 2))


def test_prefers_smaller_total_distance_among_maximal_matchings():
    t = np.array([[0.0, 0.0], [1.0, 0.0]])
    p = np.array([[0.1, 0.0], [1.1, 0.0]])
    m = match_atoms(t, p, tolerance=2.0)
    assert sorted(map(tuple, m.pairs)) == [(0, 0), (1, 1)]


def test_empty_inputs_and_errors():
    m = match_atoms(np.zeros((0, 2)), [[1, 1]], tolerance=1.0)
    assert (m.tp, m.fp, m.fn, m.precision, m.recall) == (0, 1, 0, 0.0, 1.0)
    assert np.isnan(m.rms_px) and m.f1 == 0.0
    n = match_atoms([[1, 1]], np.zeros((0, 2)), tolerance=1.0)
    assert (n.precision, n.recall, n.f1) == (1.0, 0.0, 0.0)
    e = match_atoms([], [], tolerance=1.0)
    assert e.f1 == 1.0
    with pytest.raises(InputError):
        match_atoms([[0, 0]], [[0, 0]], tolerance=0)
    with pytest.raises(InputError, match="shape"):
        match_atoms([[0, 0, 0, 0]], [[0, 0]], tolerance=1)
    assert set(match_atoms([[0, 0]], [[0, 0]], 1.0).as_dict()) >= {"precision", "recall", "f1", "rms_px", "rms_m"}
