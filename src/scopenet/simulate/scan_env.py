"""A scan environment for adaptive partial scans (J. M. Ede, thesis ch. 5, arXiv:2004.02786).

A probe explores a ``96 x 96`` image in ``T = 20`` straight segments of ``20`` probing positions spaced
``sqrt(2)`` px. The first segment starts at the image centre and heads for the bottom-right corner; the
action of every later step is the *direction* of the next segment, which starts where the last one
ended. At each position the nearest pixel is sampled; a position off the image samples the nearest edge
pixel and the step costs a penalty (0.1). At most ``20 * 20 = 400`` of ``96 * 96 = 9216`` pixels are
visited, a coverage of 1/23.04.

Beyond the chapter, the scan coils' limits can enter the cost: a segment that turns by ``phi`` rad from
the last costs ``turn_penalty * (1 - cos phi) / 2``, and :func:`path_scan_time` turns a path into a scan
time (dwell per position plus a fly-back-like settling time ``flyback * phi / pi`` per turn).

Conventions: positions are ``(row, col)`` floats in pixels, pixel ``(i, j)`` covering
``[i - 0.5, i + 0.5) x [j - 0.5, j + 0.5)``; directions are unit vectors ``(d_row, d_col)``.

Two interfaces share the same geometry (:func:`segment_positions`, :func:`sample_pixels`):

- :class:`ScanEnv`, a ``gymnasium.Env`` (one image; ``gymnasium`` is the ``rl`` extra), for agents and
  instruments that step one scan at a time;
- :func:`rollout`, a vectorised numpy version that drives a batch of images with any policy (training).

>>> import numpy as np
>>> p = segment_positions(np.array([[47.5, 47.5]]), np.array([[0.0, 1.0]]))
>>> p.shape, float(p[0, 1, 1] - p[0, 0, 1])
((1, 20, 2), 1.4142135623730951)
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..errors import InputError

try:  # the ``rl`` extra; the vectorised functions work without it
    import gymnasium as _gym
    from gymnasium import spaces as _spaces
    _EnvBase = _gym.Env
except ImportError:  # pragma: no cover - exercised only without the extra
    _gym = None
    _spaces = None
    _EnvBase = object

__all__ = ["SIZE", "N_SEGMENTS", "SEGMENT_POSITIONS", "SPACING", "EDGE_PENALTY", "COVERAGE", "CoilLimits",
           "ScanEnv", "first_direction", "rotate", "unit", "centre", "segment_positions", "sample_pixels", "rollout", "turn_angles",
           "path_scan_time", "positions_to_mask", "spiral_scan_path", "grid_scan_path", "raster_order", "normalise_observation", "spiral_directions", "ScanTime"]

SIZE = 96
N_SEGMENTS = 20
SEGMENT_POSITIONS = 20
SPACING = math.sqrt(2.0)
EDGE_PENALTY = 0.1
COVERAGE = SEGMENT_POSITIONS * N_SEGMENTS / SIZE ** 2  # 1 / 23.04


def _check_shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be (rows, cols), got {shape!r}") from None
    if h < 2 or w < 2:
        raise InputError(f"shape must be at least (2, 2), got {shape!r}")
    return h, w


def first_direction() -> np.ndarray:
    """The fixed first direction: from the centre towards the bottom-right corner, ``(1, 1) / sqrt(2)``."""
    return np.array([1.0, 1.0]) / math.sqrt(2.0)


def centre(shape=(SIZE, SIZE)) -> np.ndarray:
    """The start position, the centre of the field ``((rows - 1) / 2, (cols - 1) / 2)``."""
    h, w = _check_shape(shape)
    return np.array([(h - 1) / 2.0, (w - 1) / 2.0])


def unit(v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """``v / |v|`` along the last axis; rows of norm < 1e-8 take ``fallback`` (default ``(1, 0)``)."""
    v = np.asarray(v, np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    fb = np.broadcast_to(np.array([1.0, 0.0]) if fallback is None else np.asarray(fallback, np.float64), v.shape)
    ok = n > 1e-8
    return np.where(ok, v / np.where(ok, n, 1.0), fb)


def segment_positions(start: np.ndarray, direction: np.ndarray, n: int = SEGMENT_POSITIONS,
                      spacing: float = SPACING) -> np.ndarray:
    """Probing positions of straight segments: ``start + k * spacing * direction``, ``k = 0 .. n - 1``.

    The next segment starts at ``start + n * spacing * direction`` (the end of this one).

    Parameters
    ----------
    start : ndarray, shape (B, 2)
        Start positions, px.
    direction : ndarray, shape (B, 2)
        Directions (normalised here).

    Returns
    -------
    ndarray, shape (B, n, 2), float64
    """
    start = np.asarray(start, np.float64).reshape(-1, 2)
    d = unit(np.asarray(direction, np.float64).reshape(-1, 2))
    k = np.arange(n, dtype=np.float64)[None, :, None]
    return start[:, None, :] + k * spacing * d[:, None, :]


def sample_pixels(positions: np.ndarray, shape=(SIZE, SIZE)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pixels of probing positions, clipped to the image, and which positions were off it.

    Parameters
    ----------
    positions : ndarray, shape (..., 2)
        ``(row, col)`` positions, px.

    Returns
    -------
    rows, cols : ndarray of int64, shape (...)
        The sampled pixels (an off-image position samples the nearest edge pixel).
    off : ndarray of bool, shape (...)
        True where the nearest pixel lies outside the image.
    """
    h, w = _check_shape(shape)
    ij = np.floor(np.asarray(positions, np.float64) + 0.5).astype(np.int64)
    r, c = ij[..., 0], ij[..., 1]
    off = (r < 0) | (r >= h) | (c < 0) | (c >= w)
    return np.clip(r, 0, h - 1), np.clip(c, 0, w - 1), off


def rotate(directions: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate ``(B, 2)`` ``(d_row, d_col)`` vectors by ``angles`` (B,) rad (exploration of the actor)."""
    c, s = np.cos(angles), np.sin(angles)
    d = np.asarray(directions, np.float64)
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], 1)


def turn_angles(d_prev: np.ndarray, d_next: np.ndarray) -> np.ndarray:
    """Angle in rad (0..pi) between successive segment directions, shape ``(B,)``."""
    a, b = unit(d_prev), unit(d_next)
    return np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))


def normalise_observation(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Observed values scaled by the running range of every value seen so far: ``(v - lo) / (hi - lo)``
    (0.5 where ``hi == lo``), so the observations of any instrument's units are alike. Shapes broadcast
    ``(B, n)`` with ``(B, 1)``."""
    span = hi - lo
    ok = span > 1e-12
    return np.where(ok, (values - lo) / np.where(ok, span, 1.0), 0.5).astype(np.float32)


def positions_to_mask(rows: np.ndarray, cols: np.ndarray, shape=(SIZE, SIZE)) -> np.ndarray:
    """Boolean visited masks ``(B, H, W)`` from sampled pixels ``(B, n)``."""
    h, w = _check_shape(shape)
    rows, cols = np.atleast_2d(rows), np.atleast_2d(cols)
    m = np.zeros((rows.shape[0], h, w), bool)
    b = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
    m[b, rows.ravel(), cols.ravel()] = True
    return m


# ------------------------------------------------------------------------------------------ coil limits
@dataclass
class CoilLimits:
    """The scan coils' limits, in the cost of an action and in the scan time of a path.

    Attributes
    ----------
    dwell_s : float
        Dwell time per probing position, s.
    flyback_s : float
        Settling time of a full reversal (a turn of pi), s; a turn of ``phi`` costs ``flyback_s * phi / pi``
        (a raster line's fly-back is such a reversal).
    jump_speed_px_s : float
        Speed of a blanked jump between positions that are not neighbours, px/s.
    settle_s : float
        Settling time after a blanked jump, s.
    turn_penalty : float
        Cost of a reversal in the RL step loss; a turn of ``phi`` costs ``turn_penalty * (1 - cos phi) / 2``
        (0 reproduces the chapter).
    """

    dwell_s: float = 1e-6
    flyback_s: float = 50e-6
    jump_speed_px_s: float = 1e6
    settle_s: float = 2e-6
    turn_penalty: float = 0.0

    def turn_cost(self, phi: np.ndarray) -> np.ndarray:
        """Step-loss cost of turning by ``phi`` rad."""
        return self.turn_penalty * (1.0 - np.cos(phi)) / 2.0


@dataclass
class ScanTime:
    """Scan time of one path: ``time_s = dwell_s + turn_s + jump_s`` and its parts, with the counts."""

    time_s: float
    dwell_s: float
    turn_s: float
    jump_s: float
    n_positions: int
    n_jumps: int
    total_turn_rad: float

    def as_dict(self) -> dict:
        return asdict(self)


def path_scan_time(points: np.ndarray, limits: CoilLimits | None = None, jump_px: float = 2.0,
                   n_dwell: int | None = None) -> ScanTime:
    """Scan time of an ordered path of probing positions under the coils' limits.

    Model: every position costs ``dwell_s``; a step longer than ``jump_px`` px is a blanked jump costing
    ``settle_s + distance / jump_speed_px_s``; every change of direction by ``phi`` between two scanned
    steps costs ``flyback_s * phi / pi`` (a raster line's fly-back is a jump; a smooth spiral pays for its
    total winding angle, a segment path for its corners).

    Parameters
    ----------
    points : ndarray, shape (n, 2)
        Ordered ``(row, col)`` positions, px.
    limits : CoilLimits, optional
    jump_px : float
        Steps longer than this are blanked jumps.
    n_dwell : int, optional
        Positions that cost a dwell (default every point; a finely sampled continuous path gives the
        number of pixels it visits).

    Returns
    -------
    ScanTime
    """
    lim = limits or CoilLimits()
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 1:
        raise InputError(f"a path is an (n, 2) array of positions, got shape {p.shape}")
    steps = np.diff(p, axis=0)
    dist = np.hypot(steps[:, 0], steps[:, 1])
    jump = dist > jump_px
    moving = (dist > 1e-9) & ~jump
    jump_s = float((lim.settle_s + dist[jump] / lim.jump_speed_px_s).sum())
    turn = 0.0
    if moving.sum() >= 2:
        idx = np.flatnonzero(moving)
        d = steps[idx] / dist[idx, None]
        # turns between consecutive scanned steps only (a jump resets the direction)
        contiguous = np.diff(idx) == 1
        ang = np.arccos(np.clip((d[1:] * d[:-1]).sum(1), -1.0, 1.0))
        turn = float(ang[contiguous].sum())
    n_pos = len(p) if n_dwell is None else int(n_dwell)
    dwell = n_pos * lim.dwell_s
    turn_s = lim.flyback_s * turn / math.pi
    return ScanTime(time_s=dwell + turn_s + jump_s, dwell_s=dwell, turn_s=turn_s, jump_s=jump_s,
                    n_positions=n_pos, n_jumps=int(jump.sum()), total_turn_rad=turn)


def raster_order(mask: np.ndarray) -> np.ndarray:
    """The pixels of a mask in raster order (row by row, left to right) as an ``(n, 2)`` path."""
    r, c = np.nonzero(np.asarray(mask, bool))
    return np.stack([r, c], 1).astype(np.float64)


def spiral_scan_path(size: int = SIZE, coverage: float = COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """The fixed spiral baseline: Ede's Archimedes spiral calibrated to the *actual* ``coverage``
    (:func:`scopenet.simulate.scans.calibrate_spiral`), as a mask and as the ordered path of its pixels.

    Returns
    -------
    mask : ndarray of bool, shape (size, size)
    path : ndarray, shape (n, 2)
        The continuous spiral's vertices inside the field, in order (leaving and re-entering the field is
        a blanked jump); time it with ``path_scan_time(path, n_dwell=mask.sum())``.
    """
    mask, pts = _spiral_scan_path(int(size), float(coverage))
    return mask.copy(), pts.copy()


@functools.lru_cache(maxsize=8)
def _spiral_scan_path(size: int, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    from . import scans

    c = scans.calibrate_spiral(size, coverage)  # a bisection: seconds, so cached
    mask = scans.spiral_mask(size, c)
    pts = scans.spiral_path(size, c)
    inside = ((pts >= -0.5) & (pts < size - 0.5)).all(1)
    return mask, pts[inside]


def grid_scan_path(size: int = SIZE, coverage: float = COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """The fixed grid baseline: straight horizontal then vertical lines at ``coverage``
    (:func:`scopenet.simulate.scans.jittered_grid_mask` with no jitter), as a mask and as the ordered path
    (each line left to right or top to bottom, a blanked fly-back between lines; crossings are passed twice).
    """
    from . import scans

    mask = scans.jittered_grid_mask(size, coverage, np.random.default_rng(0), channel=0.0)
    rows = [r for r in range(size) if mask[r].sum() > size // 2]
    path = [(r, c) for r in rows for c in np.flatnonzero(mask[r])]
    rest = mask.copy()
    rest[rows] = False
    for c in np.flatnonzero(rest.any(0)):
        path += [(r, c) for r in np.flatnonzero(mask[:, c])]
    return mask, np.array(path, np.float64)


# ------------------------------------------------------------------------------------ vectorised rollout
def spiral_directions(n_segments: int = N_SEGMENTS, n: int = SEGMENT_POSITIONS, spacing: float = SPACING,
                      shape=(SIZE, SIZE)) -> np.ndarray:
    """Directions of a polygonal Archimedes spiral of equal segments from the centre, ``(n_segments, 2)``.

    The spiral ``r = k theta`` has turns ``2 pi k`` px apart, chosen so that the path of
    ``n_segments * n * spacing`` px reaches 3 px short of the nearest edge; the segments are chords of it,
    the first one towards the bottom-right corner (as the environment's). A fixed path the actor can be
    cloned from before reinforcement learning (the "spiral start" of the task's training).
    """
    h, w = _check_shape(shape)
    seg = n * spacing
    r_max = 0.5 * min(h, w) - 3.0
    # arc length of r = k theta up to R is ~ R^2 / (2 k): choose k so that it equals the path length
    k = r_max ** 2 / (2 * n_segments * seg)
    theta = np.linspace(0.0, r_max / k, 20_000) + math.pi / 4
    r = k * (theta - math.pi / 4)
    dense = np.stack([r * np.sin(theta), r * np.cos(theta)], 1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    # vertices at equal arc lengths, joined by chords of exactly one segment length
    idx = np.searchsorted(arc, seg * np.arange(1, n_segments + 1)).clip(0, len(dense) - 1)
    pts = [np.zeros(2)]
    for i in idx:
        pts.append(pts[-1] + unit(dense[i] - pts[-1]) * seg)
    d = unit(np.diff(np.array(pts), axis=0))
    # rotate the whole polygon so that its first chord heads for the bottom-right corner
    a = math.atan2(*first_direction()) - math.atan2(d[0, 0], d[0, 1])
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return unit(d @ rot.T)


def rollout(images: np.ndarray, policy: Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
            n_segments: int = N_SEGMENTS, n: int = SEGMENT_POSITIONS, spacing: float = SPACING,
            limits: CoilLimits | None = None, edge_penalty: float = EDGE_PENALTY) -> dict:
    """Scan a batch of images with ``policy``; the vectorised twin of :class:`ScanEnv`.

    Parameters
    ----------
    images : ndarray, shape (B, H, W)
    policy : callable
        ``policy(t, obs, pos, prev_dir) -> directions (B, 2)`` for steps ``t = 1 .. n_segments - 1``;
        ``obs`` (B, n) the normalised values of segment ``t - 1`` (:func:`normalise_observation`),
        ``pos`` (B, 2) the position where the next segment starts, divided by the image size,
        ``prev_dir`` (B, 2) the last direction.

    Returns
    -------
    dict
        ``obs`` (B, T, n) float32, ``pos`` (B, T, 2) float32 (normalised start of the *next* segment after
        each observation), ``dirs`` (B, T, 2) directions taken (``dirs[:, 0]`` the fixed first one),
        ``rows``/``cols`` (B, T, n) sampled pixels, ``values`` (B, T, n) raw sampled values, ``off`` (B, T)
        segments with an off-image position, ``turn`` (B, T) turning angles (0 for the first),
        ``step_cost`` (B, T) edge penalty + turn cost of each segment, ``points`` (B, T * n, 2) positions.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 3:
        raise InputError(f"rollout needs a (B, H, W) stack, got shape {imgs.shape}")
    lim = limits or CoilLimits()
    B, h, w = imgs.shape
    T = int(n_segments)
    scale = np.array([h, w], np.float64)
    pos = np.broadcast_to(centre((h, w)), (B, 2)).copy()
    d = np.broadcast_to(first_direction(), (B, 2)).copy()
    out = {k: [] for k in ("obs", "pos", "dirs", "rows", "cols", "values", "off", "turn", "points")}
    lo = np.full((B, 1), np.inf)
    hi = np.full((B, 1), -np.inf)
    bi = np.arange(B)[:, None]
    for t in range(T):
        if t > 0:
            nd = unit(np.asarray(policy(t, out["obs"][-1], out["pos"][-1], d), np.float64).reshape(B, 2), d)
            out["turn"].append(turn_angles(d, nd))
            d = nd
        else:
            out["turn"].append(np.zeros(B))
        pts = segment_positions(pos, d, n, spacing)
        r, c, off = sample_pixels(pts, (h, w))
        v = imgs[bi, r, c].astype(np.float64)
        lo = np.minimum(lo, v.min(1, keepdims=True))
        hi = np.maximum(hi, v.max(1, keepdims=True))
        pos = pos + n * spacing * d
        out["obs"].append(normalise_observation(v, lo, hi))
        out["pos"].append((pos / scale).astype(np.float32))
        out["dirs"].append(d.copy())
        out["rows"].append(r)
        out["cols"].append(c)
        out["values"].append(v.astype(np.float32))
        out["off"].append(off.any(1))
        out["points"].append(pts)
    res = {k: np.stack(v, 1) for k, v in out.items()}
    res["points"] = res["points"].reshape(B, T * n, 2)
    res["dirs"] = res["dirs"].astype(np.float32)
    res["step_cost"] = (edge_penalty * res["off"] + lim.turn_cost(res["turn"])).astype(np.float32)
    return res


# -------------------------------------------------------------------------------------------- gymnasium
class ScanEnv(_EnvBase):
    """Gymnasium environment of one adaptive partial scan (Ede, thesis ch. 5).

    Each episode scans one image (``images`` is a stack or a callable ``rng -> image``) in ``n_segments``
    segments. :meth:`reset` scans the fixed first segment (centre -> bottom-right corner) and returns its
    observation; each :meth:`step` takes a direction and scans the next segment; the episode ends after
    ``n_segments`` segments (``n_segments - 1`` steps).

    Spaces
    ------
    action : Box(-1, 1, (2,))
        Direction ``(d_row, d_col)`` of the next segment (normalised; a zero vector keeps the last one).
    observation : Box, shape (n + 2,)
        The segment's sampled values, scaled to [0, 1] by the range of every value seen so far
        (:func:`normalise_observation`), then the position where the next segment starts divided by
        the image size (the "previous position"; bounded by the farthest a path can reach).

    Reward (negative loss)
    ----------------------
    ``-(edge_penalty * [a position was off the image] + limits.turn_cost(turn))`` each step; at the last
    step also ``-final_loss(image, mask, values)`` when ``final_loss`` is given (e.g. a generator's error).

    ``info`` holds ``rows``, ``cols`` (sampled pixels of the segment), ``values`` (raw) and, at the end,
    ``mask`` (the visited pixels) and ``scan_time`` (:func:`path_scan_time`).
    """

    metadata = {"render_modes": []}

    def __init__(self, images, n_segments: int = N_SEGMENTS, n: int = SEGMENT_POSITIONS, spacing: float = SPACING,
                 edge_penalty: float = EDGE_PENALTY, limits: CoilLimits | None = None,
                 final_loss: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None,
                 shape=(SIZE, SIZE)):
        if _gym is None:  # pragma: no cover
            raise InputError("ScanEnv needs gymnasium: pip install 'scopenet[rl]'")
        self.shape = _check_shape(shape)
        if callable(images):
            self._draw = images
        else:
            stack = np.asarray(images, np.float32)
            if stack.ndim == 2:
                stack = stack[None]
            if stack.ndim != 3 or stack.shape[1:] != self.shape:
                raise InputError(f"ScanEnv images must be (N, {self.shape[0]}, {self.shape[1]}), got {stack.shape}")
            self._draw = lambda rng: stack[rng.integers(len(stack))]
        if n_segments < 1 or n < 1 or spacing <= 0:
            raise InputError("ScanEnv needs n_segments >= 1, n >= 1 and spacing > 0")
        self.n_segments, self.n, self.spacing = int(n_segments), int(n), float(spacing)
        self.edge_penalty = float(edge_penalty)
        self.limits = limits or CoilLimits()
        self.final_loss = final_loss
        self.action_space = _spaces.Box(-1.0, 1.0, (2,), np.float32)
        reach = 1.0 + self.n_segments * self.n * self.spacing / min(self.shape)  # the farthest a path can go
        self.observation_space = _spaces.Box(np.r_[np.zeros(self.n), -reach, -reach].astype(np.float32),
                                             np.r_[np.ones(self.n), reach, reach].astype(np.float32), dtype=np.float32)
        self._image = None

    def _scan(self):
        pts = segment_positions(self._pos[None], self._dir[None], self.n, self.spacing)[0]
        r, c, off = sample_pixels(pts, self.shape)
        v = self._image[r, c].astype(np.float64)
        self._lo, self._hi = min(self._lo, v.min()), max(self._hi, v.max())
        self._pos = self._pos + self.n * self.spacing * self._dir
        self._points.append(pts)
        self._mask[r, c] = True
        self._values[r, c] = v
        obs = np.concatenate([normalise_observation(v[None], np.array([[self._lo]]), np.array([[self._hi]]))[0],
                              (self._pos / np.array(self.shape)).astype(np.float32)]).astype(np.float32)
        return obs, bool(off.any()), {"rows": r, "cols": c, "values": v.astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        img = options.get("image") if options else None
        self._image = np.asarray(img if img is not None else self._draw(self.np_random), np.float32)
        if self._image.shape != self.shape:
            raise InputError(f"ScanEnv image must be {self.shape}, got {self._image.shape}")
        self._pos = centre(self.shape)
        self._dir = first_direction()
        self._lo, self._hi = np.inf, -np.inf
        self._points = []
        self._mask = np.zeros(self.shape, bool)
        self._values = np.zeros(self.shape, np.float32)
        self._t = 1
        obs, off, info = self._scan()
        info["off_image"] = off
        return obs, info

    def step(self, action):
        if self._image is None:
            raise InputError("call reset() before step()")
        if self._t >= self.n_segments:
            raise InputError("the episode has ended; call reset()")
        new = unit(np.asarray(action, np.float64).reshape(1, 2), self._dir[None])[0]
        phi = float(turn_angles(self._dir[None], new[None])[0])
        self._dir = new
        obs, off, info = self._scan()
        self._t += 1
        loss = self.edge_penalty * off + float(self.limits.turn_cost(np.array(phi)))
        done = self._t >= self.n_segments
        info.update(off_image=off, turn=phi)
        if done:
            info["mask"] = self._mask.copy()
            info["scan_time"] = path_scan_time(np.concatenate(self._points), self.limits).as_dict()
            if self.final_loss is not None:
                loss += float(self.final_loss(self._image, self._mask.copy(), self._values.copy()))
        return obs, -float(loss), done, False, info

    @property
    def points(self) -> np.ndarray:
        """Probing positions so far, ``(n_seen, 2)``."""
        return np.concatenate(self._points) if self._points else np.zeros((0, 2))
