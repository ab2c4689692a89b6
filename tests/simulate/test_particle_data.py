"""Simulated particle micrographs: masks, labels and ellipses agree; the held-out setting differs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.simulate.em.particle_data import PARTICLE_SETTINGS, particle_batch, particle_sample


def test_mask_labels_and_particles_agree():
    s = particle_sample(np.random.default_rng(0), size=128)
    assert s.image.shape == s.mask.shape == s.labels.shape == (128, 128)
    assert np.array_equal(s.mask, s.labels > 0)
    assert s.labels.max() == len(s.particles) == s.params["n_particles"]
    for k, p in enumerate(s.particles, start=1):
        assert p["major"] >= p["minor"] > 0
        area = (s.labels == k).sum()
        assert 0 < area <= math.pi * p["major"] * p["minor"] * 1.8  # at most the ellipse, roughened
    # particles differ in intensity from the support film (either polarity)
    assert abs(s.image[s.mask].mean() - s.image[~s.mask].mean()) > 0.05


def test_dose_sets_the_noise_and_settings_are_reproducible():
    a, ma = particle_batch(2, 64, seed=5)
    b, mb = particle_batch(2, 64, seed=5)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    lo = particle_sample(np.random.default_rng(1), 64, dose=5.0).image
    assert np.allclose(lo * 5.0, np.round(lo * 5.0), atol=1e-4)  # counts / dose
    r_tr, r_ho = PARTICLE_SETTINGS["train"], PARTICLE_SETTINGS["heldout"]
    assert r_ho["aspect"][0] >= r_tr["aspect"][1] and r_ho["blur"][0] >= r_tr["blur"][1]
    with pytest.raises(InputError, match="unknown particle setting"):
        particle_sample(np.random.default_rng(0), 64, setting="nope")
