"""Particle tracking in movies: drift correction, detection, linking (trackpy), velocities and MSD.

``track(frames)`` runs the whole chain and returns a ``pandas.DataFrame`` with one row per particle per
frame:

- ``frame``, ``particle`` (track id), ``x``, ``y``: drift-corrected position (px; x the column, y the
  row, pixel centres at integers), in the coordinates of the first frame;
- ``x_raw``, ``y_raw``: where it was seen in its frame; ``t``: when (s when the frame interval is
  known, else in frame intervals), the row's own time in a scanned frame (``line_time``);
- ``vx``, ``vy``: velocity (px per unit of ``t``; central differences along the track);
- ``x_m``, ``y_m``, ``vx_m``, ``vy_m``: the same in metres (and m per unit of ``t``) for a calibrated
  Micrograph stack, else NaN;
- ``mass``: the feature's integrated brightness.

Scanned frames record each row at its own time. With ``line_time`` (from the file's metadata, or given)
each detection's time is ``frame * frame_interval + row * line_time``; the drift applied to it is
interpolated to that time between frames, and velocities use those times.

Linking is trackpy's (Crocker-Grier; ``pip install 'scopenet[track]'``), imported lazily.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ...image.micrograph import Micrograph
from .config import TrackConfig
from .drift import estimate_drift

__all__ = ["track", "locate", "link", "add_velocities", "msd", "scan_timing", "trackpy"]


def trackpy():
    """The trackpy module, or an ``InputError`` naming the extra to install."""
    try:
        import trackpy as tp
    except ImportError as exc:  # pragma: no cover - installed in dev
        raise InputError("tracking needs trackpy: pip install 'scopenet[track]'") from exc
    tp.quiet()
    return tp


def _frames(frames: Any) -> tuple[np.ndarray, Micrograph | None]:
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputError("no frames")
        mg = frames[0] if isinstance(frames[0], Micrograph) else None
        arrs = [np.asarray(getattr(f, "data", f), np.float32) for f in frames]
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1:
            raise InputError(f"frames differ in shape: {sorted(shapes)}")
        f = np.stack(arrs)
    else:
        mg = frames if isinstance(frames, Micrograph) else None
        f = np.asarray(getattr(frames, "data", frames), np.float32)
    if f.ndim != 3 or f.shape[0] < 2 or min(f.shape[1:]) < 8:
        raise InputError(f"a movie is a (T, H, W) stack of at least 2 frames of 8x8 px, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise InputError("the movie has non-finite pixels")
    return f, mg


def _search(meta: Any, names: tuple[str, ...]) -> Any:
    """The first value under one of ``names`` (case-insensitive, any depth) in nested metadata."""
    if isinstance(meta, dict):
        for k, v in meta.items():
            if str(k).lower().replace(" ", "_").split(">")[-1] in names:
                return v
        for v in meta.values():
            got = _search(v, names)
            if got is not None:
                return got
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, (list, tuple)) and v:
        v = v[0]
    if isinstance(v, str):
        v = v.strip().split()[0] if v.strip() else None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) and x > 0 else None


def scan_timing(mg: Micrograph | None) -> tuple[float | None, float | None]:
    """``(frame_interval_s, line_time_s)`` from a Micrograph's axes and metadata, None where unknown.

    The frame interval is the ``frame``/``time`` axis step when it is in seconds; the line time is read from
    ``line_time`` (s), Nanonis ``scan_time`` (s per line; forward and backward), Bruker ``scan_rate``
    (lines per s) or MATRIX ``raster_time`` (s per pixel, times the columns).
    """
    if mg is None:
        return None, None
    frame_dt = None
    if mg.ndim == 3 and mg.axes[0].unit == "s" and mg.axes[0].scale > 0:
        frame_dt = float(mg.axes[0].scale)
    meta = mg.metadata or {}
    lt = _number(_search(meta, ("line_time", "line_time_s", "scan_time")))
    if lt is None:
        rate = _number(_search(meta, ("scan_rate",)))
        lt = 1.0 / rate if rate else None
    if lt is None:
        rt = _number(_search(meta, ("raster_time",)))
        lt = rt * mg.shape[-1] if rt else None
    if frame_dt is None:
        frame_dt = _number(_search(meta, ("frame_time", "frame_interval")))
    return frame_dt, lt


def _auto_minmass(masses: np.ndarray) -> float:
    """The mass above which features are particles: a Gaussian mixture of the log-masses (2 or 3 components,
    chosen by BIC; faint noise and support texture make the lower ones) and the point where the brightest
    component becomes the more probable; 0 when too few features."""
    from sklearn.mixture import GaussianMixture

    m = np.asarray(masses, float)
    m = np.log(m[m > 0])[:, None]
    if len(m) < 10 or np.ptp(m) == 0:
        return 0.0
    fits = [GaussianMixture(k, random_state=0).fit(m) for k in (2, 3)]
    g = min(fits, key=lambda f: f.bic(m))
    top = int(np.argmax(g.means_[:, 0]))
    grid = np.linspace(m.min(), m.max(), 512)[:, None]
    post = g.predict_proba(grid)[:, top]
    above = np.nonzero(post >= 0.5)[0]
    return float(np.exp(grid[above[0], 0])) if above.size else 0.0


def locate(frames: np.ndarray, config: TrackConfig | None = None, **overrides: Any):
    """Particles in every frame: a DataFrame ``frame, y, x, mass`` (positions as seen, px)."""
    import pandas as pd

    c = config or TrackConfig(**overrides)
    if config is not None and overrides:
        c = config.model_copy(update=overrides)
    f = np.asarray(frames, np.float32)
    if c.detector == "segment":
        from ..segment.particles import analyse_particles

        rows = []
        for t, fr in enumerate(f):
            tab, _ = analyse_particles(fr, model=c.model)
            rows.append(pd.DataFrame({"frame": t, "y": tab.y, "x": tab.x, "mass": tab.area_px}))
        return pd.concat(rows, ignore_index=True)
    tp = trackpy()
    if not c.bright:
        f = f.max() - f
    d = int(c.diameter) | 1
    feats = tp.batch(list(f), d, minmass=0, processes=1, engine="python")  # no numba compile on each run
    if len(feats) == 0 or "frame" not in feats:  # nothing in any frame (trackpy's empty table has no columns)
        return pd.DataFrame({"frame": np.zeros(0, int), "y": np.zeros(0), "x": np.zeros(0), "mass": np.zeros(0)})
    minmass = c.minmass if c.minmass is not None else _auto_minmass(feats.loc[feats["frame"] < 3, "mass"])
    feats = feats[feats["mass"] >= minmass]
    return feats[["frame", "y", "x", "mass"]].reset_index(drop=True)


def link(features, config: TrackConfig | None = None):
    """Link drift-corrected features (``frame, y, x``) into tracks (trackpy); adds ``particle``."""
    c = config or TrackConfig()
    tp = trackpy()
    if len(features) == 0:
        out = features.copy()
        out["particle"] = np.array([], int)
        return out
    linked = tp.link(features, c.search_range, memory=c.memory)
    if c.min_length > 1:
        linked = tp.filter_stubs(linked, c.min_length)
    return linked.reset_index(drop=True)


def add_velocities(tracks):
    """Add ``vx``, ``vy``: central differences of ``x``, ``y`` over ``t`` along each track (one-sided at
    the ends; NaN for a single point)."""
    tracks = tracks.sort_values(["particle", "frame"]).reset_index(drop=True)
    vx = np.full(len(tracks), np.nan)
    vy = np.full(len(tracks), np.nan)
    for _, idx in tracks.groupby("particle").indices.items():
        if len(idx) < 2:
            continue
        t = tracks["t"].to_numpy()[idx]
        vx[idx] = np.gradient(tracks["x"].to_numpy()[idx], t)
        vy[idx] = np.gradient(tracks["y"].to_numpy()[idx], t)
    tracks["vx"], tracks["vy"] = vx, vy
    return tracks


def track(frames: Any, config: TrackConfig | dict | None = None, *, frame_interval: float | None = None,
          line_time: float | None = None, known_drift: np.ndarray | None = None, **overrides: Any):
    """Track particles through a movie (``sn.track``): drift correction first, then detection and linking.

    Parameters
    ----------
    frames : ndarray (T, H, W), Micrograph stack, or a list of frames (arrays or Micrographs)
    config : TrackConfig or dict, optional
        Detection, linking and drift settings; keyword ``overrides`` too (e.g. ``diameter=9``).
    frame_interval : float, optional
        Seconds between frames (default from the Micrograph, else ``t`` counts frame intervals).
    line_time : float, optional
        Seconds (or frame intervals) between scan lines (default from the file's metadata, else 0: snapshots).
    known_drift : ndarray (T, 2), optional
        A known drift ``(dy, dx)`` per frame; otherwise estimated by phase correlation (``config.drift``).

    Returns
    -------
    pandas.DataFrame
        Columns ``frame, particle, x, y, vx, vy, t, x_raw, y_raw, mass, x_m, y_m, vx_m, vy_m``; the drift
        is in ``df.attrs["drift"]`` (``(T, 2)`` list) and the times' unit in ``df.attrs["t_unit"]``.
    """
    try:
        c = TrackConfig.model_validate({**(config.model_dump() if isinstance(config, TrackConfig) else config or {}),
                                        **overrides})
    except Exception as exc:
        raise InputError(f"invalid TrackConfig: {exc}") from exc
    f, mg = _frames(frames)
    dt_file, lt_file = scan_timing(mg)
    dt = frame_interval or dt_file
    lt = line_time if line_time is not None else (lt_file or 0.0)
    if dt is None and lt and line_time is None:  # a file's line time (s) without a frame interval: take
        dt = lt * f.shape[1]                      # the frame interval as the frame's scan time
    unit = "s" if dt else "frames"
    dt = dt or 1.0
    drift = known_drift
    if drift is None:
        drift = np.zeros((len(f), 2)) if c.drift == "none" else \
            estimate_drift(f, reference=c.drift, upsample=c.upsample, highpass=c.highpass or None,
                           max_step=c.max_drift_step)
    drift = np.asarray(drift, float)
    if drift.shape != (len(f), 2):
        raise InputError(f"drift must be (T, 2) = ({len(f)}, 2), got {drift.shape}")
    feats = locate(f, c)
    fr = feats["frame"].to_numpy().astype(int)
    t = fr * dt + feats["y"].to_numpy() * lt
    # drift at each detection's own time, interpolated between frames; the phase correlation of a scanned
    # frame measures the drift at its mean row time
    tf = np.arange(len(f)) * dt + lt * (f.shape[1] - 1) / 2
    dy = np.interp(t, tf, drift[:, 0])
    dx = np.interp(t, tf, drift[:, 1])
    feats = feats.assign(y_raw=feats["y"], x_raw=feats["x"], y=feats["y"] - dy, x=feats["x"] - dx, t=t)
    tracks = add_velocities(link(feats, c))
    px = None
    if mg is not None:
        from ..segment.particles import pixel_size_m

        px = pixel_size_m(mg[0] if mg.ndim == 3 else mg)
    s = float("nan") if px is None else px
    tracks["x_m"], tracks["y_m"] = tracks["x"] * s, tracks["y"] * s
    tracks["vx_m"], tracks["vy_m"] = tracks["vx"] * s, tracks["vy"] * s
    cols = ["frame", "particle", "x", "y", "vx", "vy", "t", "x_raw", "y_raw", "mass", "x_m", "y_m", "vx_m", "vy_m"]
    out = tracks[cols].sort_values(["frame", "particle"]).reset_index(drop=True)
    out["frame"] = out["frame"].astype(int)
    out["particle"] = out["particle"].astype(int)
    out.attrs.update(drift=drift.tolist(), t_unit=unit, line_time=float(lt), frame_interval=float(dt),
                     pixel_size_m=px)
    return out


def msd(tracks, max_lag: int | None = None, pixel_size: float | None = None):
    """Ensemble mean squared displacement of drift-corrected tracks.

    Parameters
    ----------
    tracks : DataFrame with ``frame, particle, x, y`` (and ``t``; the lag time is the mean time difference)
    max_lag : int, optional
        Largest lag in frames (default: the longest track's length minus one).
    pixel_size : float, optional
        Metres per pixel (default ``tracks.attrs["pixel_size_m"]``) for ``msd_m2``.

    Returns
    -------
    DataFrame ``lag`` (frames), ``lag_t`` (units of ``t``), ``msd_px2``, ``msd_m2``, ``n`` (displacements averaged).
    For free diffusion ``msd = 4 D lag_t`` in 2-D.
    """
    import pandas as pd

    need = {"frame", "particle", "x", "y"}
    if not need <= set(tracks.columns):
        raise InputError(f"msd needs columns {sorted(need)}, got {list(tracks.columns)}")
    px = pixel_size if pixel_size is not None else tracks.attrs.get("pixel_size_m")
    if len(tracks) == 0:
        return pd.DataFrame(columns=["lag", "lag_t", "msd_px2", "msd_m2", "n"])
    x = tracks.pivot_table(index="frame", columns="particle", values="x")
    y = tracks.pivot_table(index="frame", columns="particle", values="y")
    full = np.arange(int(x.index.min()), int(x.index.max()) + 1)
    x, y = x.reindex(full), y.reindex(full)
    tt = tracks.groupby("frame")["t"].mean().reindex(full).to_numpy() if "t" in tracks else full.astype(float)
    n_lag = len(full) - 1 if max_lag is None else min(int(max_lag), len(full) - 1)
    rows = []
    X, Y = x.to_numpy(), y.to_numpy()
    for lag in range(1, n_lag + 1):
        d2 = (X[lag:] - X[:-lag]) ** 2 + (Y[lag:] - Y[:-lag]) ** 2
        ok = np.isfinite(d2)
        if not ok.any():
            continue
        lt = np.nanmean(tt[lag:] - tt[:-lag])
        m = float(d2[ok].mean())
        rows.append((lag, lt, m, m * px * px if px else float("nan"), int(ok.sum())))
    return pd.DataFrame(rows, columns=["lag", "lag_t", "msd_px2", "msd_m2", "n"])
