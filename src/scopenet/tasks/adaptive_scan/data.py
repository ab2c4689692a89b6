"""Images for adaptive scans: the training pool, augmented 96x96 crops, and the held-out test crops.

Training: simulated EM micrographs (:mod:`scopenet.simulate.em`, kind ``mixed``) plus the em-real
*train* split (:func:`scopenet.training.em_real.load_em_real`). Test: 96x96 crops of the em-real
*held-out* split (other instruments' images no model saw; the maintainers re-run the benchmark on their
own STEM crops); when em-real is absent, simulated images of another seed, and the benchmark says so.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...errors import InputError

__all__ = ["train_pool", "test_crops", "CropSampler", "blur"]

TEST_SIM_SEED = 977


def blur(images: np.ndarray, sigma: float = 2.5, size: int = 5) -> np.ndarray:
    """Gaussian blur of the last two axes by a ``size x size`` kernel of ``sigma`` px (Ede's targets)."""
    if sigma <= 0:
        return np.asarray(images, np.float32)
    a = np.asarray(images, np.float32)
    sig = (0,) * (a.ndim - 2) + (sigma, sigma)
    return ndimage.gaussian_filter(a, sig, truncate=(size // 2) / sigma + 1e-6, mode="reflect").astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def train_pool(n_simulated: int = 120, size: int = 192, seed: int = 21, use_em_real: bool = True
               ) -> tuple[list[np.ndarray], str]:
    """The training images (each 2-D, at least 96 px, in [0, 1]) and a description for the model card."""
    from ...simulate.em.api import simulate_batch

    pool, parts = [], []
    if n_simulated:
        sims = simulate_batch(int(n_simulated), int(size), seed=int(seed), kind="mixed")["images"]
        pool += [_unit(s) for s in sims]
        parts.append(f"{n_simulated} simulated EM micrographs (scopenet.simulate.em, kind mixed, seed {seed}, "
                     f"{size} px)")
    if use_em_real:
        from ...training.em_real import load_em_real

        try:
            real = load_em_real(split="train")
        except Exception:  # noqa: BLE001 - absent data: train on the simulated images only
            real = []
        pool += [r.image for r in real if min(r.image.shape) >= 96]
        if real:
            parts.append(f"{len(real)} em-real train-split micrographs (held-out split never used)")
    if not pool:
        raise InputError("no training images: set n_simulated > 0 or provide em-real")
    return pool, " + ".join(parts)


class CropSampler:
    """Random ``size x size`` crops of a pool with a random flip and 90-degree rotation; a crop is
    re-made exactly from its parameters ``(image, row, col, rot, flip)`` (so the replay stores those)."""

    def __init__(self, pool: list[np.ndarray], size: int = 96):
        self.pool = [np.asarray(p, np.float32) for p in pool if min(np.shape(p)) >= size]
        if not self.pool:
            raise InputError(f"no image of at least {size}x{size} px to crop")
        self.size = int(size)

    def params(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.zeros((n, 5), np.int64)
        for i in range(n):
            k = int(rng.integers(len(self.pool)))
            h, w = self.pool[k].shape
            out[i] = (k, rng.integers(0, h - self.size + 1), rng.integers(0, w - self.size + 1),
                      rng.integers(4), rng.integers(2))
        return out

    def crops(self, params: np.ndarray) -> np.ndarray:
        s = self.size
        out = np.zeros((len(params), s, s), np.float32)
        for i, (k, r, c, rot, flip) in enumerate(np.asarray(params)):
            a = np.rot90(self.pool[k][r:r + s, c:c + s], int(rot))
            out[i] = a[:, ::-1] if flip else a
        return out


def test_crops(n: int = 1000, seed: int = 0, size: int = 96) -> tuple[np.ndarray, str]:
    """``n`` crops ``(n, size, size)`` of the em-real held-out images (as many from each image), min-max
    scaled to [0, 1], and their description; simulated images of another seed when em-real is absent."""
    from ...training.em_real import load_em_real

    rng = np.random.default_rng(seed)
    try:
        imgs = [r.image for r in load_em_real(split="heldout") if min(r.image.shape) >= size]
        desc = f"{n} {size}x{size} crops of the {len(imgs)} em-real held-out micrographs (seed {seed})"
    except Exception:  # noqa: BLE001
        imgs = []
    if not imgs:
        from ...simulate.em.api import simulate_batch

        imgs = list(simulate_batch(max(4, n // 16), 192, seed=TEST_SIM_SEED, kind="mixed")["images"])
        desc = (f"{n} {size}x{size} crops of simulated EM micrographs (seed {TEST_SIM_SEED}; em-real absent, "
                "NOT the real held-out set)")
    sampler = CropSampler(imgs, size)
    params = np.zeros((n, 5), np.int64)
    for i in range(n):  # the same number of crops from every image
        k = i % len(sampler.pool)
        h, w = sampler.pool[k].shape
        params[i] = (k, rng.integers(0, h - size + 1), rng.integers(0, w - size + 1), 0, 0)
    return np.stack([_unit(c) for c in sampler.crops(params)]), desc
