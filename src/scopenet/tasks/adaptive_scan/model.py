"""Adaptive partial scans: :class:`AdaptiveScanner` steers a probe segment by segment and completes the scan.

A recurrent actor (:class:`~scopenet.nn.recurrent.RecurrentActor`) chooses the direction of each of
``T = 20`` straight segments of 20 probing positions spaced ``sqrt(2)`` px from what the probe has
measured so far; a generator CNN completes the image from the visited pixels (J. M. Ede, thesis ch. 5;
the environment is :mod:`scopenet.simulate.scan_env`). The same estimator also holds the fixed-path
baselines (``config.path = "spiral"`` or ``"grid"``): a generator trained on one fixed path.

Any instrument (or a test) drives it through a probe function::

    scanner = AdaptiveScanner.pretrained()
    image, mask = scanner.scan(lambda rows, cols: stage.measure(rows, cols), shape=(96, 96))

``probe(rows, cols)`` receives the integer pixel coordinates of the next segment (arrays of 20) and
returns the measured values; it is called ``T`` times per 96x96 tile. Larger fields are scanned tile by
tile. :meth:`AdaptiveScanner.predict` simulates the scan on images already recorded (the probe reads
their pixels) and returns the completions.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...errors import InputError
from ...image.tta import check_views, tta_average
from ...nn.recurrent import AdaptiveScanNet
from ...simulate import scan_env as env
from .._estimator import Estimator, cached, map_images, register
from .config import DEFAULT_GENERATOR, AdaptiveScanConfig
from .scanning import (actor_policy, complete_batch, fixed_path_pixels, fixed_path_points, generator_input,
                       scan_batch)

__all__ = ["AdaptiveScanner", "adaptive_scan", "fixed_path_pixels", "generator_input", "actor_policy",
           "complete_batch", "scan_batch"]  # the scanning helpers are re-exported from .scanning

DEFAULT_MODEL = "adaptive-scan-default"


def _tile_starts(n: int, tile: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, tile))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


# --------------------------------------------------------------------------------------- estimator
@register
class AdaptiveScanner(Estimator):
    """Steer a scanning probe segment by segment and complete the partial scan (Ede, thesis ch. 5).

    Parameters
    ----------
    config : AdaptiveScanConfig or dict, optional
        ``path`` ("adaptive", or a fixed "spiral" / "grid" baseline), the networks (``arch_config``:
        ``actor`` and ``generator``), the tile size and segment counts; keyword overrides too.
    device : str, optional
        Where the networks run (:mod:`scopenet.nn.device`).

    Attributes
    ----------
    last_scan_ : dict
        After :meth:`scan`: ``points`` (ordered probing positions of every tile, field coordinates),
        ``scan_time`` (:class:`~scopenet.simulate.scan_env.ScanTime` of each tile) and ``n_probes``.
    """

    task = "adaptive-scan"
    config_class = AdaptiveScanConfig
    aliases = {"default": DEFAULT_MODEL, "spiral": "adaptive-scan-spiral", "grid": "adaptive-scan-grid"}

    def build_net(self):
        cfg = dict(self.config.arch_config)
        cfg.setdefault("actor", {"hidden": 64, "layers": 2})
        cfg.setdefault("generator", dict(DEFAULT_GENERATOR))
        return AdaptiveScanNet(**cfg).eval()

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``); the card's
        ``input_shape`` is the generator's ``[NN infill, mask]`` of one tile."""
        self.card_.preprocessing["input_shape"] = [1, 2, int(self.config.tile), int(self.config.tile)]
        return super().save(path, overwrite=overwrite)

    def _after_load(self) -> None:
        self.last_scan_ = {}

    @property
    def path(self) -> str:
        return self.config.path

    def _device(self):
        from ...nn.device import place

        return place(self.net_, self.device)

    # ---------------------------------------------------------------------------- scanning
    def scan(self, probe: Callable[[np.ndarray, np.ndarray], Any], shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
        """Scan a field through ``probe`` and complete it.

        Parameters
        ----------
        probe : callable
            ``probe(rows, cols) -> values``: ``rows``, ``cols`` int64 arrays (one segment, in field pixel
            coordinates, always inside the field) -> measured values of the same length.
        shape : (int, int)
            The field, px. Fields larger than ``config.tile`` are scanned tile by tile (``n_segments``
            probe calls each); smaller ones probe the nearest pixel inside the field.

        Returns
        -------
        image : ndarray float32, shape ``shape``
            The completion, in the units of the probe's values.
        mask : ndarray bool, shape ``shape``
            The visited pixels.

        Raises
        ------
        InputError
            A probe that returns the wrong number of values or non-finite ones, a bad shape.
        """
        if not callable(probe):
            raise InputError(f"probe must be callable probe(rows, cols) -> values, got {type(probe).__name__}")
        H, W = env._check_shape(shape)
        net = self._check_fitted()
        dev = self._device()
        c = self.config
        tile = int(c.tile)
        image = np.zeros((H, W), np.float64)
        weight = np.zeros((H, W), np.float64)
        mask = np.zeros((H, W), bool)
        points, times = [], []
        fixed = None if self.path == "adaptive" else np.array_split(fixed_path_pixels(self.path, tile), c.n_segments)
        for r0 in _tile_starts(H, tile):
            for c0 in _tile_starts(W, tile):
                vals = np.zeros((tile, tile), np.float32)
                tmask = np.zeros((tile, tile), bool)
                pts_tile = []
                state, pos, d = None, env.centre((tile, tile)), env.first_direction()
                lo, hi = np.inf, -np.inf
                obs = np.zeros(c.segment_positions, np.float32)  # the last segment's scaled values
                for t in range(c.n_segments):
                    if fixed is not None:
                        ij = fixed[t]
                        pts_tile.append(ij.astype(np.float64))
                        r, cc = ij[:, 0], ij[:, 1]
                    else:
                        if t > 0:
                            x = np.concatenate([obs, pos / tile, d]).astype(np.float32)[None]
                            with torch.no_grad():
                                dt, state = net.actor.step(torch.from_numpy(x).to(dev), state)
                            d = env.unit(dt.cpu().numpy().astype(np.float64), d[None])[0]
                        p = env.segment_positions(pos[None], d[None], c.segment_positions)[0]
                        pts_tile.append(p)
                        r, cc, _ = env.sample_pixels(p, (tile, tile))
                        pos = pos + c.segment_positions * env.SPACING * d
                    fr, fc = np.clip(r + r0, 0, H - 1), np.clip(cc + c0, 0, W - 1)
                    v = np.asarray(probe(fr.astype(np.int64), fc.astype(np.int64)), np.float64).reshape(-1)
                    if v.shape != fr.shape:
                        raise InputError(f"probe returned {v.size} values for {fr.size} positions")
                    if not np.isfinite(v).all():
                        raise InputError("probe returned non-finite values")
                    lr, lc = fr - r0, fc - c0  # the pixel actually probed, in tile coordinates
                    vals[lr, lc] = v
                    tmask[lr, lc] = True
                    lo, hi = min(lo, v.min()), max(hi, v.max())
                    obs = env.normalise_observation(v[None], np.array([[lo]]), np.array([[hi]]))[0]
                if fixed is None:
                    pts = np.concatenate(pts_tile)
                    times.append(env.path_scan_time(pts))
                else:
                    fp, n_px = fixed_path_points(self.path, tile)
                    pts = np.concatenate(pts_tile)
                    times.append(env.path_scan_time(fp, n_dwell=n_px) if self.path == "spiral" else env.path_scan_time(fp))
                points.append(pts + np.array([r0, c0]))
                net.generator.eval()
                comp = complete_batch(net.generator, vals[None], tmask[None], dev)[0]
                h, w = min(tile, H - r0), min(tile, W - c0)
                image[r0:r0 + h, c0:c0 + w] += comp[:h, :w]
                weight[r0:r0 + h, c0:c0 + w] += 1
                mask[r0:r0 + h, c0:c0 + w] |= tmask[:h, :w]
        self.last_scan_ = {"points": points, "scan_time": times, "n_probes": int(len(points) * c.n_segments)}
        return (image / np.maximum(weight, 1)).astype(np.float32), mask

    def scan_frame(self, frame: np.ndarray, tta: int = 1) -> np.ndarray:
        """Simulate a scan of a recorded 2-D image (the probe reads its pixels) and return the completion."""
        a = np.asarray(frame, np.float64)
        if a.ndim != 2 or min(a.shape) < 2 or not np.isfinite(a).all():
            raise InputError(f"a frame to scan must be a finite 2-D image of at least 2x2, got shape {a.shape}")

        def one(img):
            img = np.asarray(img, np.float64)
            return self.scan(lambda r, c: img[r, c], img.shape)[0]

        return tta_average(one, a.astype(np.float32), views=tta)

    # ---------------------------------------------------------------------------- contract
    def predict(self, x, *, tta: int = 1):
        """Simulate adaptive (or fixed-path) scans of recorded images and return their completions.

        Parameters
        ----------
        x : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Fully recorded images; each is scanned through a probe that reads its pixels.
        tta : int
            Number of flipped/rotated views averaged (each view is its own scan: ``tta`` times the probes).

        Returns
        -------
        The input's kind: completions (float32, the input's units), a Micrograph with a provenance entry.
        """
        views = check_views(tta)
        return map_images(lambda f: self.scan_frame(f, views), x, operation="adaptive_scan",
                          what="image to scan",
                          provenance=lambda: {"model": self.name, "path": self.path, "tta": views})

    def fit(self, images, **overrides) -> "AdaptiveScanner":
        """Train (or fine-tune) on fully recorded images (each at least 96x96): the generator, and for
        ``path="adaptive"`` the actor by RDPG. ``overrides`` are
        :class:`~scopenet.tasks.adaptive_scan.config.AdaptiveScanTrainConfig` fields (``max_steps``,
        ``batch_size``, ...); nothing is written unless ``workdir`` is given. Sets ``history_`` (the
        generator loss per step)."""
        from .train import fit_estimator

        return fit_estimator(self, images, **overrides)


def adaptive_scan(probe: Callable, shape=(96, 96), model: str | AdaptiveScanner = "default"):
    """Scan a field through ``probe(rows, cols) -> values`` with a pretrained adaptive scanner; returns
    ``(image, mask)`` (see :meth:`AdaptiveScanner.scan`)."""
    est = model if isinstance(model, AdaptiveScanner) else \
        cached(("adaptive-scan", str(model)), lambda: AdaptiveScanner.pretrained(str(model)))
    return est.scan(probe, shape)
