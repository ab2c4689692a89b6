"""Scanning helpers shared by the estimator, its training and its benchmark: fixed baseline paths, the
generator's input, a policy from a recurrent actor, batched scans and the test error."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...errors import InputError
from ...nn.recurrent import AdaptiveScanNet
from ...simulate import scan_env as env
from ...simulate import scans

__all__ = ["fixed_path_pixels", "fixed_path_points", "generator_input", "actor_policy", "actor_inputs",
           "complete_batch", "scan_batch", "mse_scores"]


def fixed_path_pixels(path: str, size: int = env.SIZE) -> np.ndarray:
    """The ordered pixels ``(n, 2)`` int64 of a fixed baseline path on a ``size x size`` tile: the spiral
    (calibrated to the actual coverage 1/23.04, in the order the spiral visits them) or the grid lines."""
    if path == "spiral":
        mask, pts = env.spiral_scan_path(size, env.COVERAGE)
        ij = np.clip(np.floor(pts).astype(np.int64), 0, size - 1)  # spiral_mask truncates its vertices
        ij = ij[mask[ij[:, 0], ij[:, 1]]]
        _, first = np.unique(ij[:, 0] * size + ij[:, 1], return_index=True)
        ordered = ij[np.sort(first)]
        missing = np.argwhere(mask & ~env.positions_to_mask(ordered[:, 0], ordered[:, 1], (size, size))[0])
        return np.concatenate([ordered, missing]) if len(missing) else ordered
    if path == "grid":
        _, pts = env.grid_scan_path(size, env.COVERAGE)
        ij = pts.astype(np.int64)
        _, first = np.unique(ij[:, 0] * size + ij[:, 1], return_index=True)
        return ij[np.sort(first)]
    raise InputError(f"unknown fixed path {path!r}; choose 'spiral' or 'grid'")


def fixed_path_points(path: str, size: int = env.SIZE) -> tuple[np.ndarray, int]:
    """The path of a fixed baseline for :func:`~scopenet.simulate.scan_env.path_scan_time`, and its
    number of probed pixels: the continuous spiral, or the grid's lines with fly-backs."""
    if path == "spiral":
        mask, pts = env.spiral_scan_path(size, env.COVERAGE)
        return pts, int(mask.sum())
    mask, pts = env.grid_scan_path(size, env.COVERAGE)
    return pts, len(pts)


def generator_input(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generator's input ``(B, 2, H, W)`` [NN infill, mask] of sparse scans in the scale of their values.

    Parameters
    ----------
    values : ndarray (B, H, W)
        Measured values at the visited pixels (anything elsewhere).
    mask : ndarray of bool (B, H, W)

    Returns
    -------
    x : float32 (B, 2, H, W)
        Values scaled by ``(v - lo) / (hi - lo)`` over each scan's visited pixels, infilled by the nearest
        visited pixel, and the mask.
    lo, hi : float64 (B,)
    """
    v = np.asarray(values, np.float64)
    m = np.asarray(mask, bool)
    B = len(v)
    lo = np.array([v[i][m[i]].min() if m[i].any() else 0.0 for i in range(B)])
    hi = np.array([v[i][m[i]].max() if m[i].any() else 1.0 for i in range(B)])
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    u = ((v - lo[:, None, None]) / span[:, None, None]).astype(np.float32)
    x = np.zeros((B, 2) + v.shape[1:], np.float32)
    for i in range(B):
        if not m[i].any():
            raise InputError("a scan visited no pixel")
        x[i, 0] = scans.nn_infill(np.where(m[i], u[i], 0.0).astype(np.float32), m[i])
        x[i, 1] = m[i]
    return x, lo, hi


def actor_policy(actor: torch.nn.Module, noise: Callable[[], np.ndarray] | None = None,
                 device: torch.device | str = "cpu") -> Callable:
    """A :func:`~scopenet.simulate.scan_env.rollout` policy from a recurrent actor (its state kept between
    calls); ``noise()`` (optional) returns angles (B,) to rotate each direction by (exploration)."""
    state: dict[str, Any] = {"s": None}

    def policy(t, obs, pos, prev_dir):
        x = torch.from_numpy(np.concatenate([obs, pos, np.asarray(prev_dir, np.float32)], 1)).float().to(device)
        with torch.no_grad():
            d, state["s"] = actor.step(x, state["s"])
        d = d.cpu().numpy().astype(np.float64)
        return env.rotate(d, noise()) if noise is not None else d

    return policy


def actor_inputs(res: dict) -> np.ndarray:
    """The actor's input at each decision of rollouts ``res``: ``(B, T - 1, n + 4)`` float32."""
    return np.concatenate([res["obs"][:, :-1], res["pos"][:, :-1], res["dirs"][:, :-1]], 2).astype(np.float32)


def complete_batch(generator: torch.nn.Module, values: np.ndarray, mask: np.ndarray,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Completions ``(B, H, W)`` of sparse scans, in the units of their values."""
    x, lo, hi = generator_input(values, mask)
    with torch.inference_mode():
        y = generator(torch.from_numpy(x).to(device)).float().cpu().numpy()[:, 0]
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return (y * span[:, None, None] + lo[:, None, None]).astype(np.float32)


def scan_batch(net: AdaptiveScanNet, path: str, images: np.ndarray, n_segments: int = env.N_SEGMENTS,
               n: int = env.SEGMENT_POSITIONS, device: torch.device | str = "cpu", noise=None) -> dict:
    """Scan a stack of ``96 x 96`` images (their pixels are the probe) and complete them.

    Returns
    -------
    dict
        ``completion`` (B, H, W) float32, ``mask`` (B, H, W) bool, ``points`` (B, n_points, 2) probing
        positions in order, ``off`` (B,) segments partly off the image, and for adaptive paths the
        rollout (``rollout``, :func:`~scopenet.simulate.scan_env.rollout`'s dict).
    """
    imgs = np.asarray(images, np.float32)
    B, h, w = imgs.shape
    out: dict[str, Any] = {}
    if path == "adaptive":
        net.actor.eval()
        res = env.rollout(imgs, actor_policy(net.actor, noise, device), n_segments, n)
        rows, cols = res["rows"].reshape(B, -1), res["cols"].reshape(B, -1)
        mask = env.positions_to_mask(rows, cols, (h, w))
        out.update(points=res["points"], off=res["off"].sum(1), rollout=res)
    else:
        ij = fixed_path_pixels(path, h)
        mask = np.broadcast_to(env.positions_to_mask(ij[:, 0], ij[:, 1], (h, w))[0], (B, h, w)).copy()
        out.update(points=np.broadcast_to(ij.astype(np.float64), (B,) + ij.shape), off=np.zeros(B, int))
    values = np.where(mask, imgs, 0.0)
    net.generator.eval()
    out.update(completion=complete_batch(net.generator, values, mask, device), mask=mask)
    return out


def mse_scores(crops: np.ndarray, completions: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """Per-crop MSE of completions against the blurred crops, both on the blurred crop's [-1, 1] scale
    (Ede's test error)."""
    from .data import blur

    t = blur(np.asarray(crops, np.float32), sigma)
    lo = t.reshape(len(t), -1).min(1)[:, None, None]
    hi = t.reshape(len(t), -1).max(1)[:, None, None]
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    a = 2 * (t - lo) / span - 1
    b = 2 * (np.asarray(completions, np.float32) - lo) / span - 1
    return ((a - b) ** 2).reshape(len(t), -1).mean(1)
