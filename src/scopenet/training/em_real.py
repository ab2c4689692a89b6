"""The real electron micrographs beside the repo (``../shared/data/em-real``), with one fixed split.

Denoising and sparse-scan completion both train on these images together with simulated data and
report their benchmarks on the same held-out images, which no shipped model ever sees in training.
The held-out list spans every modality and keeps correlated images together (the two frames of the
low-dose ``val`` pair are both held out; the neighbouring ssTEM slices 24 and 29 are both held out).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReadError

#: images never used for training any shipped model; benchmarks report on these
HELD_OUT = (
    "stem_02_ncempy_sto_80kv",
    "stem_07_atomsegnet_si110",
    "stem_13_osiris_srtio3",
    "hrtem_02_graphene_flower",
    "tem_09_isbi2012_sstem_slice24",
    "tem_10_isbi2012_sstem_slice29",
    "tem_13_lowdose_val0001",
    "tem_14_lowdose_val0002",
    "sem_06_fibsem_old_start_eb",
    "sem_09_duvernay_shale_tile0087",
)


@dataclass
class RealImage:
    id: str
    modality: str
    image: np.ndarray  # float32 [H, W], rescaled to [0, 1]
    pixel_size: float | None
    pixel_unit: str | None


def default_folder() -> Path | None:
    """``$SCOPENET_EM_REAL`` or ``<repo>/../shared/data/em-real`` if present, else None."""
    env = os.environ.get("SCOPENET_EM_REAL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data" / "em-real"
        if (parent / "pyproject.toml").exists() and cand.exists():
            return cand
    return None


def _to_unit(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float32))
    lo, hi = np.percentile(a, [0.01, 99.99])
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)


def load_em_real(folder: str | Path | None = None, split: str = "train") -> list[RealImage]:
    """Load the real micrographs of one split.

    Parameters
    ----------
    folder : path, optional
        The em-real folder; default :func:`default_folder`.
    split : {"train", "heldout", "all"}

    Returns
    -------
    list of RealImage with images in [0, 1] (0.01/99.99 percentile stretch).
    """
    import tifffile

    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    folder = Path(folder) if folder is not None else default_folder()
    if folder is None or not (folder / "index.csv").exists():
        raise ReadError(folder, "the em-real folder (with index.csv) was not found; set SCOPENET_EM_REAL")
    out = []
    with open(folder / "index.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            held = row["id"] in HELD_OUT
            if (split == "train" and held) or (split == "heldout" and not held):
                continue
            p = folder / row["file"]
            a = np.load(p) if p.suffix == ".npy" else tifffile.imread(p)
            ps = float(row["pixel_size"]) if row.get("pixel_size") else None
            out.append(RealImage(row["id"], row["modality"], _to_unit(np.asarray(a)), ps, row.get("pixel_unit") or None))
    return out
