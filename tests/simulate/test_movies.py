"""Simulated movies: truth shapes, drift convention and scanned rows."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.simulate.em.movies import shift_image, simulate_movie


def test_truth_shapes_and_drift_convention():
    m = simulate_movie(n_frames=5, size=64, n_particles=3, step=0.0, drift=(1.0, -2.0), drift_jitter=0.0,
                       texture=0.0, dose=1e6, seed=0)
    assert m.frames.shape == (5, 64, 64) and m.positions.shape == (5, 3, 2)
    np.testing.assert_allclose(m.drift[:, 0], np.arange(5) * 1.0)
    np.testing.assert_allclose(m.drift[:, 1], np.arange(5) * -2.0)
    np.testing.assert_allclose(m.positions, np.broadcast_to(m.positions[0], m.positions.shape))  # no motion
    for t in (0, 4):  # each spot's brightest pixel is where the truth says it appears
        y, x = np.round(m.observed()[t][0]).astype(int)
        assert m.frames[t][y, x] > 1.5
    assert m.line_time == 0


def test_scanned_rows_and_errors():
    m = simulate_movie(n_frames=2, size=32, n_particles=1, scan_fraction=0.5, seed=1)
    assert m.line_time == pytest.approx(0.5 / 32)
    np.testing.assert_allclose(m.observed_at(0, 0), m.observed()[0])
    np.testing.assert_allclose(m.observed_at(0, 32), 0.5 * (m.observed()[0] + m.observed()[1]))
    a = np.random.default_rng(0).random((16, 16))
    np.testing.assert_allclose(shift_image(a, 16, 0), a, atol=1e-6)  # periodic
    with pytest.raises(InputError):
        simulate_movie(n_frames=0)
    with pytest.raises(InputError, match="scan_fraction"):
        simulate_movie(scan_fraction=2)
