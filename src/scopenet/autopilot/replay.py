"""A replay microscope: recorded images served back, as DeepSPM's dummy server does.

Every scan returns a recorded image drawn at random (seeded); moves and conditioning actions only take
their nominal instrument time and change nothing (recorded images have no tip to change). It lets the
whole loop - judge, agent, supervisor, log and report - run on real images.

Sources (``path``):

- a folder with ``images.npz`` (array ``images`` ``[N, H, W]``, e.g. ``shared/data/gordon-hsi``), with
  ``labels.csv`` beside it when there is one: the crowd labels of each image go into the scan's
  metadata (``recorded``), with DeepSPM's verdict from them (``recorded_good``: no blur, no tip change,
  atoms or dimers seen by at least half the volunteers);
- a folder of instrument files (any format :func:`scopenet.read` knows), read once at start;
- a single ``.npz`` file as above.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .instrument import LostContactError, Microscope, scan_micrograph

__all__ = ["ReplayMicroscope", "load_recorded"]


def load_recorded(path: str | Path, limit: int | None = None) -> tuple[list[np.ndarray], list[dict]]:
    """The images (2-D float32) and their recorded labels (dicts, empty when none) of a replay source."""
    from ..errors import ReadError

    p = Path(path)
    npz = p if p.suffix == ".npz" else p / "images.npz"
    if npz.exists():
        with np.load(npz, allow_pickle=False) as z:
            if "images" not in z:
                raise ReadError(npz, "no 'images' array in it")
            arr = z["images"][:limit] if limit else z["images"]
        imgs = [np.asarray(a, np.float32) for a in arr]
        labels: list[dict] = [{} for _ in imgs]
        csv = npz.parent / "labels.csv"
        if csv.exists():
            import pandas as pd

            df = pd.read_csv(csv).iloc[:len(imgs)]
            for i, row in enumerate(df.to_dict("records")):
                rec = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else str(v))
                       for k, v in row.items() if k.startswith("mean_") or k == "name"}
                if "mean_bad_blurry" in rec:
                    rec["recorded_good"] = bool(rec["mean_bad_blurry"] < 0.5 and rec.get("mean_tip_change", 0) < 0.5
                                                and max(rec.get("mean_individual_atoms", 0), rec.get("mean_dimers", 0)) >= 0.5)
                labels[i] = rec
        return imgs, labels
    if not p.is_dir():
        raise ReadError(p, "not a folder of recorded images or an images.npz")
    from ..io import read
    from ..io.registry import supported_extensions

    exts = {e.lower() for e in supported_extensions()}
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in exts)[:limit]
    imgs, labels = [], []
    for f in files:
        try:
            m = read(f)
        except Exception:  # noqa: BLE001 - unreadable files are skipped, the others replayed
            continue
        d = np.asarray(m.data, np.float32)
        if d.ndim == 3:
            d = d[0]
        if d.ndim == 2 and min(d.shape) >= 16 and np.isfinite(d).any():
            imgs.append(d)
            labels.append({"name": f.name})
    if not imgs:
        raise ReadError(p, "no readable 2-D image in this folder")
    return imgs, labels


class ReplayMicroscope(Microscope):
    """Serve recorded images at random (see the module docstring).

    Parameters
    ----------
    path : str or Path
    seed : int
        Order of the images.
    line_time_s, action_s, move_speed_nm_s : float
        Nominal instrument time of a scan line, of an action (with settling) and move speed.
    limit : int, optional
        Use only the first ``limit`` images.
    """

    backend = "replay"

    def __init__(self, path: str | Path, seed: int = 0, line_time_s: float = 1.0, action_s: float = 3.2,
                 move_speed_nm_s: float = 100.0, limit: int | None = None):
        super().__init__()
        self.images, self.labels = load_recorded(path, limit)
        self.source = str(path)
        self.rng = np.random.default_rng(seed)
        self.clock = 0.0
        self.xy = (0.0, 0.0)
        self.approached = True
        self.line_time_s, self.action_s, self.move_speed = line_time_s, action_s, move_speed_nm_s
        self.served = 0

    def now(self) -> float:
        return self.clock

    def state(self) -> dict[str, Any]:
        return {"x_nm": self.xy[0], "y_nm": self.xy[1], "approached": self.approached, "time_s": self.clock,
                "served": self.served, "source": self.source}

    def _travel(self, xy) -> None:
        self.clock += float(np.hypot(xy[0] - self.xy[0], xy[1] - self.xy[1])) / self.move_speed
        self.xy = (float(xy[0]), float(xy[1]))

    def _scan(self, centre_nm, size_nm, pixels, bias_v, setpoint_a):
        if not self.approached:
            raise LostContactError("cannot scan: the tip is withdrawn")
        self._travel(centre_nm)
        i = int(self.rng.integers(len(self.images)))
        z = self.images[i]
        self.clock += z.shape[0] * self.line_time_s + 5.0
        self.served += 1
        img = scan_micrograph(z, centre_nm, size_nm, bias_v, setpoint_a, self.backend, index=i,
                              recorded=self.labels[i])
        img.signal_unit = ""            # recorded grey levels, not metres
        return img

    def _move(self, x_nm, y_nm):
        self._travel((x_nm, y_nm))

    def _pulse(self, bias_v, duration_s):
        self.clock += self.action_s

    def _dip(self, depth_nm, bias_v, duration_s):
        self.clock += self.action_s

    def _approach(self):
        self.clock += 0.0 if self.approached else 120.0
        self.approached = True

    def _withdraw(self):
        self.approached = False

    def snapshot(self) -> dict:
        return {"clock": self.clock, "xy": list(self.xy), "approached": self.approached, "served": self.served,
                "rng": self.rng.bit_generator.state}

    def restore(self, snap: dict) -> "ReplayMicroscope":
        self.clock, self.xy = float(snap["clock"]), tuple(snap["xy"])
        self.approached, self.served = bool(snap["approached"]), int(snap["served"])
        self.rng.bit_generator.state = snap["rng"]
        return self
