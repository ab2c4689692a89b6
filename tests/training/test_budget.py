"""scopenet.training.budget: the schedule and the seeded batch streams."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from scopenet.training.budget import SeededStream, cosine


def test_cosine_endpoints_and_clamping():
    assert cosine(0.0) == pytest.approx(1.0)
    assert cosine(0.5) == pytest.approx(0.5)
    assert cosine(1.0, 0.1) == pytest.approx(0.1)
    assert cosine(-1.0, 0.1) == pytest.approx(1.0) and cosine(3.0, 0.1) == pytest.approx(0.1)
    assert cosine(0.5, 0.2) == pytest.approx(0.6)


def _take(stream, n=3):
    return [float(v) for v in itertools.islice(iter(stream), n)]


def test_streams_repeat_per_seed_and_differ_by_rank_and_start_step():
    s = SeededStream(lambda rng: rng.random(), seed=4)
    first = _take(s)
    assert _take(s) == first  # same seed, rank and start step: the same batches
    s.rank = 1
    other_rank = _take(s)
    s.rank, s.start_step = 0, 100
    resumed = _take(s)
    assert len({tuple(first), tuple(other_rank), tuple(resumed)}) == 3
    assert _take(SeededStream(lambda rng: rng.random(), seed=5)) != first
    assert np.isfinite(first).all()
