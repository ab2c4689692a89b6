"""Training data of the super-resolution task: random (coarse, fine) patch pairs, and the image pools the
shipped models were trained on (shared by :mod:`.train` and the estimator's public API)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError
from ...image.scaling import unit_scale
from .baselines import DEFAULT_SAMPLING, check_factor, check_sampling, coarsen
from .config import SuperResTrainConfig

__all__ = ["make_pairs", "spm_pool", "stem_pool", "real_em_tiles"]

TRAIN_SIM_SEED = 1
STEM_TRAIN_SIM_SEED = 11  # the STEM bench's simulated images use other seeds
STEM_TILE = 256
HSI_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "gordon-hsi"
HOLDOUT_FOLD = 0  # the session fold the benchmark holds out (superres.bench.HOLDOUT_FOLD)


def make_pairs(images: np.ndarray, factor: int, patch: int, n: int,
               rng: np.random.Generator, sampling: str = DEFAULT_SAMPLING) -> tuple[np.ndarray, np.ndarray]:
    """Random training pairs: ``(coarse, fine)`` patches, each scaled so the fine patch spans [0, 1].

    Parameters
    ----------
    images : ndarray (N, H, W)
        Fine images, ``H, W >= patch``.
    factor : int
    patch : int
        Fine patch size in pixels (a multiple of ``factor``).
    n : int
        Number of pairs.
    rng : numpy Generator
        Draws the image, the position, one of four rotations and a mirror flip per pair.
    sampling : {"block_mean", "decimate"}
        How the coarse patch is made from the fine one (:func:`coarsen`).

    Returns
    -------
    coarse : float32 (n, 1, patch // factor, patch // factor)
    fine : float32 (n, 1, patch, patch)
    """
    f = check_factor(factor)
    check_sampling(sampling)
    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape[1:]) < patch or patch % f:
        raise InputError(f"make_pairs needs (N, H, W) images of at least patch={patch} px and a patch that is "
                         f"a multiple of factor {f}, got shape {images.shape}")
    N, H, W = images.shape
    fine = np.empty((n, 1, patch, patch), np.float32)
    for i in range(n):
        k = rng.integers(N)
        y, x = rng.integers(0, H - patch + 1), rng.integers(0, W - patch + 1)
        p = images[k, y:y + patch, x:x + patch]
        p = np.rot90(p, rng.integers(4))
        if rng.random() < 0.5:
            p = p[:, ::-1]
        lo, hi = float(p.min()), float(p.max())
        fine[i, 0] = (p - lo) / (hi - lo if hi > lo else 1.0)
    return coarsen(fine, f, sampling), fine


def _unit_stack(images) -> np.ndarray:
    return np.stack([unit_scale(a)[0] for a in np.asarray(images, np.float32)])


def spm_pool(c: SuperResTrainConfig) -> tuple[np.ndarray, str]:
    """Simulated SPM images plus gordon-hsi images outside the held-out fold, and a description."""
    from ...simulate.spm import simulate_batch

    n_sim = 1200 if c.n_sim is None else c.n_sim
    sims = _unit_stack(simulate_batch(n_sim, size=128, seed=TRAIN_SIM_SEED)["images"])
    parts, desc = [sims], (f"{len(sims)} simulated SPM images (scopenet.simulate.spm.simulate_batch seed "
                           f"{TRAIN_SIM_SEED}, 128 px, min-max [0,1])")
    if c.n_real:
        from ..classify.data import load_gordon_hsi, session_folds

        ds = load_gordon_hsi(HSI_DIR)
        tr = session_folds(ds.sessions, k=5, seed=0)[HOLDOUT_FOLD][0]
        pick = np.sort(np.random.default_rng(0).permutation(tr)[:c.n_real])
        parts.append(_unit_stack(ds.images[pick]))
        desc += (f" + {len(pick)} gordon-hsi STM images from sessions outside session_folds(k=5, seed=0) "
                 f"fold {HOLDOUT_FOLD}")
    return np.concatenate(parts), desc


def real_em_tiles(tile: int = STEM_TILE) -> tuple[np.ndarray, list[str]]:
    """Non-overlapping ``tile x tile`` tiles of the em-real TRAIN split (each image in [0, 1], 0.01/99.99
    percentile stretch, as :func:`load_em_real`), with the ids used. Never reads the held-out split."""
    from ...training.em_real import HELD_OUT, load_em_real

    tiles, ids = [], []
    for r in load_em_real(split="train"):
        if r.id in HELD_OUT:
            raise InputError(f"em-real held-out image {r.id} in the train split")
        a = r.image
        for y in range(0, a.shape[0] - tile + 1, tile):
            for x in range(0, a.shape[1] - tile + 1, tile):
                tiles.append(a[y:y + tile, x:x + tile])
        ids.append(r.id)
    return np.stack(tiles).astype(np.float32), ids


def stem_pool(c: SuperResTrainConfig) -> tuple[np.ndarray, str]:
    """Training images for the STEM model and a description for the card."""
    from ...simulate.em.api import simulate_batch

    n_sim = 600 if c.n_sim is None else c.n_sim
    sims = _unit_stack(simulate_batch(n_sim, STEM_TILE, seed=STEM_TRAIN_SIM_SEED, kind="mixed")["images"])
    desc = (f"{len(sims)} simulated EM micrographs (scopenet.simulate.em.api.simulate_batch kind='mixed', seed "
            f"{STEM_TRAIN_SIM_SEED}, {STEM_TILE} px, min-max [0,1])")
    if not c.n_real:
        return sims, desc
    real, ids = real_em_tiles()
    desc += (f" + {len(real)} non-overlapping {STEM_TILE} px tiles of the {len(ids)} em-real train-split images "
             "(scopenet.training.em_real.load_em_real(split='train'), 0.01/99.99 percentile stretch); "
             "no held-out image")
    return np.concatenate([sims, real]), desc
