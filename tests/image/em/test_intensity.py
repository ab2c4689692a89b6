"""EM intensity operations: replacing non-finite pixels and normalising."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.image import em


def test_replace_nonfinite():
    z = np.array([[1.0, np.nan], [np.inf, 3.0]])
    assert em.replace_nonfinite(z).tolist() == [[1, 2], [2, 3]]
    assert em.replace_nonfinite(z, value=-1).tolist() == [[1, -1], [-1, 3]]
    assert em.replace_nonfinite(z, value="mean")[0, 1] == 2.0
    with pytest.raises(InputError):
        em.replace_nonfinite(np.full((2, 2), np.nan))


@pytest.mark.parametrize("mode, lo, hi", [("minmax", 0, 1), ("symmetric", -1, 1)])
def test_normalise_range(rng, mode, lo, hi):
    z = rng.normal(5, 3, (20, 30))
    out = em.normalise(z, mode)
    assert out.min() == pytest.approx(lo) and out.max() == pytest.approx(hi)
    # affine invariance: normalising a*z + b gives the same result for a > 0
    assert np.allclose(em.normalise(7 * z - 4, mode), out)


def test_normalise_standard_and_constant(rng):
    z = rng.gamma(2, 3, (40, 40))
    out = em.normalise(z, "standard")
    assert out.mean() == pytest.approx(0, abs=1e-6) and out.std() == pytest.approx(1, abs=1e-5)
    for mode in ("minmax", "symmetric", "standard"):
        c = em.normalise(np.full((5, 5), 3.3), mode)
        assert np.all(c == 0) and np.isfinite(c).all()


def test_normalise_nan_and_errors():
    z = np.array([[0.0, 2.0], [np.nan, 4.0]])
    out = em.normalise(z)
    assert np.isnan(out[1, 0]) and np.nanmin(out) == 0 and np.nanmax(out) == 1
    with pytest.raises(InputError, match="no finite"):
        em.normalise(np.full((3, 3), np.nan))
    with pytest.raises(InputError):
        em.normalise(z, "bogus")
    p = em.normalise(np.arange(100.0).reshape(10, 10), percentiles=(10, 90))
    assert p.min() == 0 and p.max() == 1
