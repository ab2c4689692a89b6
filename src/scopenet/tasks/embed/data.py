"""Training data of the embedding VAE: the image pool of the shipped model and random 96 px samples.

The pool mixes scopenet's simulators and real micrographs whose licences allow it (GPL-3.0 / MIT /
BSD, see the READMEs of ``../shared/data``):

- ``scopenet.simulate.em`` STEM, HRTEM and mesoscale micrographs (192 px, seed :data:`TRAIN_SIM_SEED`),
  70 % of them with realistic acquisition noise (``realistic_noise``);
- ``scopenet.simulate.spm`` STM images (128 px, the five surfaces equally likely, seed
  :data:`TRAIN_SIM_SEED` + 1);
- gordon-hsi STM images from sessions outside ``session_folds(k=5, seed=0)`` fold 0 (the fold every
  benchmark holds out);
- the em-real train split (never :data:`scopenet.training.em_real.HELD_OUT`).

A sample is a random square crop (side log-uniform between the input size and the image's short
side) area-resized to the input size, a random one of the 8 flips/rotations, min-max scaled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .preprocess import _area_resize, minmax

__all__ = ["EM_KINDS", "SPM_SURFACES", "TRAIN_SIM_SEED", "HSI_DIR", "HOLDOUT_FOLD", "sample_batch",
           "sim_em", "sim_spm", "training_pool"]

TRAIN_SIM_SEED = 21          # the benchmark's simulated images use BENCH_SIM_SEED (bench.py)
EM_KINDS = ("stem", "hrtem", "meso")
SPM_SURFACES = ("hsi100", "au111", "cu111", "hopg", "lattice")
HSI_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "gordon-hsi"
HOLDOUT_FOLD = 0


def sim_em(n_per_kind: int, seed: int, size: int = 192, p_noise: float = 0.7
           ) -> tuple[list[np.ndarray], list[str], list[float]]:
    """``n_per_kind`` simulated micrographs of each EM kind: images in [0, 1], labels ("em-stem"...),
    pixel sizes in metres (NaN for meso)."""
    from ...simulate.em.api import simulate_batch
    from ...simulate.em.noise import realistic_noise

    imgs, labels, px = [], [], []
    for j, kind in enumerate(EM_KINDS):
        b = simulate_batch(n_per_kind, size=size, seed=seed + 100 * j, kind=kind)
        rng = np.random.default_rng([seed, j])
        for im, p in zip(b["images"], b["pixel_size_m"]):
            if rng.random() < p_noise:
                im = realistic_noise(im, rng, kind="stem" if kind == "stem" else "tem")[0]
            imgs.append(minmax(im))
            labels.append("em-" + kind)
            px.append(float(p))
    return imgs, labels, px


def sim_spm(n: int, seed: int, size: int = 128) -> tuple[list[np.ndarray], list[str], list[float]]:
    """``n`` simulated STM images (the five surfaces equally likely): images, labels ("spm-au111"...),
    pixel sizes in metres."""
    from ...simulate.spm import simulate_batch

    b = simulate_batch(n, size=size, seed=seed, surfaces={s: 1.0 for s in SPM_SURFACES})
    return ([minmax(a) for a in b["images"]], ["spm-" + p["surface"] for p in b["params"]],
            [float(p["pixel_size_m"]) for p in b["params"]])


def training_pool(c) -> tuple[list[np.ndarray], np.ndarray, list[str], str]:
    """The shipped model's pool for an :class:`~.config.EmbedTrainConfig`: images, sampling weights
    (each source's share), labels and a description."""
    parts: list[tuple[list[np.ndarray], list[str], float]] = []
    desc = []
    if c.n_sim_em:
        im, lab, _ = sim_em(c.n_sim_em, TRAIN_SIM_SEED)
        parts.append((im, lab, 0.40))
        desc.append(f"{len(im)} simulated EM micrographs (simulate.em stem/hrtem/meso, 192 px, seed "
                    f"{TRAIN_SIM_SEED}, 70 % with realistic_noise)")
    if c.n_sim_spm:
        im, lab, _ = sim_spm(c.n_sim_spm, TRAIN_SIM_SEED + 1)
        parts.append((im, lab, 0.30))
        desc.append(f"{len(im)} simulated STM images (simulate.spm, 128 px, 5 surfaces, seed {TRAIN_SIM_SEED + 1})")
    if c.n_real_spm and (HSI_DIR / "images.npz").exists():
        from ..classify.data import load_gordon_hsi, session_folds

        ds = load_gordon_hsi(HSI_DIR)
        tr = session_folds(ds.sessions, k=5, seed=0)[HOLDOUT_FOLD][0]
        pick = np.sort(np.random.default_rng(0).permutation(tr)[:c.n_real_spm])
        im = [minmax(a) for a in np.asarray(ds.images[pick], np.float32)]
        parts.append((im, ["real-stm"] * len(im), 0.15))
        desc.append(f"{len(im)} gordon-hsi STM images (sessions outside session_folds(k=5, seed=0) fold "
                    f"{HOLDOUT_FOLD})")
    if c.use_real_em:
        from ...training.em_real import HELD_OUT, default_folder, load_em_real

        if default_folder() is not None:
            real = [r for r in load_em_real(split="train") if r.id not in HELD_OUT]
            parts.append(([r.image for r in real], ["real-" + r.modality.lower() for r in real], 0.15))
            desc.append(f"{len(real)} em-real train-split micrographs (random crops)")
    if not parts:
        raise ValueError("the training pool is empty")
    total = sum(w for _, _, w in parts)
    images, weights, labels = [], [], []
    for im, lab, w in parts:
        images += im
        labels += lab
        weights += [w / total / len(im)] * len(im)
    wts = np.asarray(weights, np.float64)
    return images, wts / wts.sum(), labels, "; ".join(desc)


def sample_batch(images: list[np.ndarray], weights: np.ndarray | None, n: int, size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``(n, 1, size, size)`` float32 training inputs: random square crops (side log-uniform between
    ``size`` and the short side; smaller images whole) resized to ``size``, a random flip/rotation,
    min-max scaled to [0, 1]."""
    out = np.empty((n, 1, size, size), np.float32)
    idx = rng.choice(len(images), size=n, p=weights)
    for i, k in enumerate(idx):
        a = images[k]
        h, w = a.shape
        short = min(h, w)
        s = short if short <= size else int(round(np.exp(rng.uniform(np.log(size), np.log(short)))))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        p = _area_resize(a[y:y + s, x:x + s], size)
        p = np.rot90(p, rng.integers(4))
        if rng.random() < 0.5:
            p = p[:, ::-1]
        out[i, 0] = minmax(p)
    return out
