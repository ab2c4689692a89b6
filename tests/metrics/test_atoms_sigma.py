"""fraction_within_sigma: per-axis calibration of predicted position uncertainties."""
import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.metrics.atoms import fraction_within_sigma, match_atoms


def test_gaussian_errors_with_their_true_sigma_give_68_percent():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1000, (4000, 2))
    sig = rng.uniform(0.05, 0.3, 4000)
    p = t + rng.normal(0, 1, t.shape) * sig[:, None]
    m = match_atoms(t, p, tolerance=2.0)
    assert m.tp == 4000
    assert fraction_within_sigma(m, t, p, sig) == pytest.approx(0.6827, abs=0.015)
    assert fraction_within_sigma(m, t, p, 2 * sig) == pytest.approx(0.9545, abs=0.01)
    # per-axis sigmas are compared axis by axis
    assert fraction_within_sigma(m, t, p, np.stack([sig, 1e-9 * sig], 1)) == pytest.approx(0.6827 / 2, abs=0.015)


def test_uses_the_matched_pairs_only_and_checks_shapes():
    t = [[0, 0], [10, 10]]
    p = [[50, 50], [10, 10.1], [0.05, 0]]  # the first prediction matches nothing
    m = match_atoms(t, p, tolerance=1.0)
    assert fraction_within_sigma(m, t, p, [0.0, 0.2, 0.01]) == 0.75  # (0,0)->(0.05,0): 0.05 > 0.01 once
    empty = match_atoms(t, [[99, 99]], tolerance=1.0)
    assert np.isnan(fraction_within_sigma(empty, t, [[99, 99]], [1.0]))
    with pytest.raises(InputError, match="sigma"):
        fraction_within_sigma(m, t, p, [0.1, 0.1])


def test_large_sets_are_matched_per_component_with_the_same_optimum():
    from scopenet.metrics.atoms import _match_sparse

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 300, (3000, 2))
    p = np.concatenate([t + rng.normal(0, 0.5, t.shape), rng.uniform(0, 300, (300, 2))])[rng.permutation(3300)]
    dense = match_atoms(t, p, 1.5)
    sparse = _match_sparse(t, p, 1.5, None, None)
    assert sparse.tp == dense.tp and sparse.distances_px.sum() == pytest.approx(dense.distances_px.sum())
    big = match_atoms(np.tile(t, (1, 1)) * 10, p * 10, 15.0)  # 3000 x 3300 > 4e6 pairs: the sparse path
    assert big.tp == dense.tp
