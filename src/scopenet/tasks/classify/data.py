"""Data for SPM tip-state classification: the Gordon & Landon crowd-labelled H:Si(100) set.

The set (``../shared/data/gordon-hsi``) holds 128x128 X-flattened STM images with per-category
mean scores from Zooniverse volunteers. Images of one acquisition *session* are strongly correlated
(repeated scans of one area), so every split here is grouped by session.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ReadError

#: the six categories of the Nottingham study, in the order used everywhere in scopenet
CATEGORIES = ("asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry")
CATEGORY_TITLES = ("Asymmetries", "Individual Atoms", "Dimers", "Rows", "Tip Change", "Bad/Blurry")

_NAME_RE = re.compile(r"default_(?P<session>\d{4}\w{3}\d{2}-\d{6})_.*--(?P<file>\d+)_(?P<scan>\d+)\.png$")


@dataclass
class LabelledSet:
    """Images with soft multi-label targets.

    Attributes
    ----------
    images : ndarray, float32 [N, H, W] in [0, 1]
    soft : ndarray, float32 [N, 6]      mean volunteer score per category
    n_votes : ndarray, int [N]
    sessions : ndarray, str [N]         acquisition session (split key)
    series : ndarray, str [N]           session + file index (one series of repeated scans)
    names : ndarray, str [N]
    complete : ndarray, bool [N]        False for scans stopped early (stretched to 128x128)
    """

    images: np.ndarray
    soft: np.ndarray
    n_votes: np.ndarray
    sessions: np.ndarray
    series: np.ndarray
    names: np.ndarray
    complete: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> "LabelledSet":
        return LabelledSet(*(getattr(self, f)[idx] for f in
                             ("images", "soft", "n_votes", "sessions", "series", "names", "complete")))

    @property
    def hard(self) -> np.ndarray:
        """Binary labels: mean score >= 0.5 (the README's convention)."""
        return (self.soft >= 0.5).astype(np.int64)


def parse_name(name: str) -> tuple[str, str]:
    """(session, series) from a Gordon-set PNG name; falls back to the name itself."""
    m = _NAME_RE.search(name)
    if not m:
        return name, name
    return m["session"], f"{m['session']}--{m['file']}"


def load_gordon_hsi(folder: str | Path) -> LabelledSet:
    """Load ``images.npz`` + ``labels.csv`` from a gordon-hsi folder.

    Raises
    ------
    ReadError
        If the files are missing or their rows disagree.
    """
    import pandas as pd

    folder = Path(folder)
    npz, csv = folder / "images.npz", folder / "labels.csv"
    for p in (npz, csv):
        if not p.exists():
            raise ReadError(p, "missing (expected images.npz and labels.csv of the gordon-hsi set)")
    z = np.load(npz, allow_pickle=False)
    lab = pd.read_csv(csv)
    names = z["names"].astype(str)
    if len(lab) != len(names) or not (lab["name"].values == names).all():
        raise ReadError(csv, "rows do not match the names in images.npz")
    soft = lab[[f"mean_{c}" for c in CATEGORIES]].to_numpy(np.float32)
    sess, ser = zip(*(parse_name(n) for n in names))
    complete = (lab["orig_width"].to_numpy() == lab["orig_height"].to_numpy())
    return LabelledSet(
        images=z["images"].astype(np.float32) / 255.0,
        soft=soft,
        n_votes=lab["n_classifications"].to_numpy(np.int64),
        sessions=np.asarray(sess),
        series=np.asarray(ser),
        names=names,
        complete=complete,
    )


def session_folds(sessions: np.ndarray, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds of (train_idx, test_idx) with whole sessions on one side, balanced by image count."""
    rng = np.random.default_rng(seed)
    uniq, counts = np.unique(sessions, return_counts=True)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]  # largest first, random tie-break
    load = np.zeros(k)
    fold_of = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[uniq[i]] = f
        load[f] += counts[i]
    fid = np.array([fold_of[s] for s in sessions])
    return [(np.flatnonzero(fid != f), np.flatnonzero(fid == f)) for f in range(k)]
