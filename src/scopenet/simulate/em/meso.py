"""Non-crystalline ("mesoscale") electron-micrograph textures, so denoisers generalise beyond lattices.

Four families, each a cheap procedural model of what lower-magnification TEM/SEM images show:

- ``particles``: nanoparticles (faceted or round, isolated or aggregated) on an amorphous support film,
  bright-field TEM thickness contrast (particles dark) or dark-field/SEM (particles bright).
- ``cells``: serial-section TEM of tissue: Voronoi-like cell membranes (dark lines) with organelles
  (mitochondria with cristae, vesicle clusters) on a textured cytoplasm.
- ``grains``: polished / ion-milled polycrystals and shale (SEM): grains of different grey levels, some
  with lamellae or fringes, dark pores, bright grain edges.
- ``milled``: FIB-SEM milling: trenches and holes with bright rims, curtaining streaks, shading.

Every generator returns ``(image, params)`` with ``image`` float32 ``(size, size)`` in [0, 1].
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .lattice import gaussian_random_field

MESO_KINDS = ("particles", "cells", "grains", "milled")


def _norm(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def _blob_radius(rng: np.random.Generator, ang: np.ndarray, r0: float, facets: bool) -> np.ndarray:
    """Radius as a function of angle: a few random harmonics, or a regular polygon when faceted."""
    if facets:
        n = int(rng.integers(4, 9))
        phase = rng.uniform(0, 2 * np.pi)
        # polygon: r(theta) = r0 cos(pi/n) / cos((theta - phase) mod (2pi/n) - pi/n)
        t = np.mod(ang - phase, 2 * np.pi / n) - np.pi / n
        return r0 * math.cos(math.pi / n) / np.cos(t)
    r = np.full_like(ang, r0)
    for k in (2, 3, 5):
        r = r + r0 * rng.uniform(0, 0.12) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    return r


def _paste_blobs(shape, rng, centres, radii, facets, profile="sphere"):
    """Thickness map of blobs: each blob's patch gets ``sqrt(1 - (d/r)^2)`` (sphere) or 1 (flat)."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for (cy, cx), r0, fac in zip(centres, radii, facets):
        R = int(math.ceil(r0 * 1.5)) + 2
        y0, y1 = max(0, int(cy) - R), min(h, int(cy) + R + 1)
        x0, x1 = max(0, int(cx) - R), min(w, int(cx) + R + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - cy, xx - cx
        rad = _blob_radius(rng, np.arctan2(dy, dx), r0, fac)
        d = np.hypot(dy, dx) / rad
        val = np.sqrt(np.clip(1 - d**2, 0, None)) if profile == "sphere" else (d < 1).astype(np.float32)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], val * r0 / 20)
    return out


def particles(rng: np.random.Generator, size: int = 512):
    """Nanoparticles on an amorphous support film."""
    n = int(rng.integers(5, 150))
    rmin, rmax = 3.0, size * rng.uniform(0.03, 0.12)
    radii = np.exp(rng.uniform(np.log(rmin), np.log(max(rmax, rmin + 1)), n))
    if rng.random() < 0.5:  # aggregates around a few cluster centres
        k = int(rng.integers(1, 5))
        cc = rng.uniform(0.1, 0.9, (k, 2)) * size
        centres = cc[rng.integers(k, size=n)] + rng.normal(0, size * rng.uniform(0.03, 0.12), (n, 2))
    else:
        centres = rng.uniform(0, size, (n, 2))
    facets = rng.random(n) < rng.uniform(0, 1)
    thick = _paste_blobs((size, size), rng, centres, radii, facets)
    support = 0.15 * gaussian_random_field((size, size), rng, rng.uniform(0.7, 2.0)) + \
        0.3 * gaussian_random_field((size, size), rng, size / 8)
    bright_field = rng.random() < 0.6
    mu = rng.uniform(0.5, 2.5)
    if bright_field:
        img = np.exp(-mu * thick) * (1 + 0.1 * support)
    else:
        img = (1 - np.exp(-mu * thick)) + 0.1 * (1 + support)
    if rng.random() < 0.5:  # lattice fringes inside some particles
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(3, 8)
        yy, xx = np.mgrid[:size, :size]
        fr = np.cos(2 * np.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / period)
        img = img + 0.05 * fr * (thick > 0)
    return _norm(img), {"family": "particles", "n_particles": n, "bright_field": bool(bright_field),
                        "faceted_fraction": float(facets.mean())}


def _voronoi_labels(rng: np.random.Generator, size: int, n_seeds: int, warp: float) -> np.ndarray:
    seeds = np.zeros((size, size), bool)
    pts = rng.integers(0, size, (n_seeds, 2))
    seeds[pts[:, 0], pts[:, 1]] = True
    lab = np.zeros((size, size), np.int32)
    lab[pts[:, 0], pts[:, 1]] = np.arange(1, n_seeds + 1)
    idx = ndimage.distance_transform_edt(~seeds, return_distances=False, return_indices=True)
    lab = lab[idx[0], idx[1]]
    if warp > 0:
        dy = warp * gaussian_random_field((size, size), rng, size / 10)
        dx = warp * gaussian_random_field((size, size), rng, size / 10)
        yy, xx = np.mgrid[:size, :size]
        lab = lab[np.clip((yy + dy).astype(np.int32), 0, size - 1), np.clip((xx + dx).astype(np.int32), 0, size - 1)]
    return lab


def _boundaries(lab: np.ndarray) -> np.ndarray:
    b = np.zeros(lab.shape, bool)
    b[:-1] |= lab[:-1] != lab[1:]
    b[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return b


def cells(rng: np.random.Generator, size: int = 512):
    """ssTEM-like tissue: membranes, mitochondria with cristae, vesicle clusters."""
    n = int(rng.integers(15, 120))
    lab = _voronoi_labels(rng, size, n, warp=rng.uniform(5, 25))
    width = rng.uniform(1.0, 3.0)
    membrane = ndimage.gaussian_filter(_boundaries(lab).astype(np.float32), width)
    membrane = np.minimum(membrane * math.sqrt(2 * math.pi) * width, 1.0)  # 1 on a straight membrane
    cyto = 0.6 + 0.08 * gaussian_random_field((size, size), rng, 1.5) + 0.1 * gaussian_random_field((size, size), rng, size / 12)
    level = rng.uniform(-0.08, 0.08, n + 1)[lab]
    img = cyto + level - 0.45 * membrane
    # mitochondria: dark-rimmed ellipses with stripes (cristae)
    yy, xx = np.mgrid[:size, :size]
    n_mito = int(rng.integers(0, 8))
    for _ in range(n_mito):
        cy, cx = rng.uniform(0, size, 2)
        a, b = rng.uniform(10, 40), rng.uniform(6, 16)
        th = rng.uniform(0, np.pi)
        R = int(a) + 6
        y0, y1, x0, x1 = max(0, int(cy) - R), min(size, int(cy) + R), max(0, int(cx) - R), min(size, int(cx) + R)
        if y0 >= y1 or x0 >= x1:
            continue
        u = (xx[y0:y1, x0:x1] - cx) * math.cos(th) + (yy[y0:y1, x0:x1] - cy) * math.sin(th)
        v = -(xx[y0:y1, x0:x1] - cx) * math.sin(th) + (yy[y0:y1, x0:x1] - cy) * math.cos(th)
        e = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        inside = e < 1
        rim = np.exp(-((e - 1) * min(a, b)) ** 2 / 2.0)
        cristae = 0.5 + 0.5 * np.cos(2 * np.pi * u / rng.uniform(4, 8))
        img[y0:y1, x0:x1] += -0.35 * rim - 0.15 * cristae * inside - 0.05 * inside
    # vesicles: small dark rings in clusters
    for _ in range(int(rng.integers(0, 5))):
        cy, cx = rng.uniform(0, size, 2)
        m = int(rng.integers(5, 40))
        pts = np.stack([cy, cx]) + rng.normal(0, rng.uniform(5, 20), (m, 2))
        r = rng.uniform(2, 5, m)
        for (py, px), rr in zip(pts, r):
            R = int(rr) + 3
            y0, y1, x0, x1 = max(0, int(py) - R), min(size, int(py) + R), max(0, int(px) - R), min(size, int(px) + R)
            if y0 >= y1 or x0 >= x1:
                continue
            d = np.hypot(yy[y0:y1, x0:x1] - py, xx[y0:y1, x0:x1] - px)
            img[y0:y1, x0:x1] -= 0.3 * np.exp(-((d - rr) ** 2) / 1.0)
    img = ndimage.gaussian_filter(img, rng.uniform(0.4, 1.2))
    return _norm(img), {"family": "cells", "n_cells": n, "membrane_px": float(width), "n_mitochondria": n_mito}


def grains(rng: np.random.Generator, size: int = 512):
    """Polycrystal / shale SEM: grey-level grains, lamellae, pores, bright edges."""
    n = int(rng.integers(8, 200))
    lab = _voronoi_labels(rng, size, n, warp=rng.uniform(0, 15))
    levels = rng.uniform(0.2, 0.9, n + 1)
    img = levels[lab].astype(np.float32)
    yy, xx = np.ogrid[:size, :size]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    # lamellae / fringes in a subset of grains, each with its own orientation
    striped = rng.random(n + 1) < rng.uniform(0, 0.5)
    ang = rng.uniform(0, np.pi, n + 1).astype(np.float32)
    per = rng.uniform(3, 15, n + 1).astype(np.float32)
    kx = (2 * np.pi * np.cos(ang) / per)[lab]
    ky = (2 * np.pi * np.sin(ang) / per)[lab]
    sel = striped[lab]
    img[sel] += 0.08 * np.cos(np.broadcast_to(xx, img.shape)[sel] * kx[sel] + np.broadcast_to(yy, img.shape)[sel] * ky[sel])
    img = img + 0.04 * gaussian_random_field((size, size), rng, 1.0) + 0.06 * gaussian_random_field((size, size), rng, size / 10)
    # bright grain edges (SEM edge effect)
    edge = ndimage.gaussian_filter(_boundaries(lab).astype(np.float32), 1.0)
    img = img + rng.uniform(0, 0.6) * edge
    # pores: dark blobs
    n_pores = int(rng.integers(0, 60))
    if n_pores:
        pores = _paste_blobs((size, size), rng, rng.uniform(0, size, (n_pores, 2)),
                             np.exp(rng.uniform(np.log(1.5), np.log(15), n_pores)), rng.random(n_pores) < 0.3,
                             profile="flat")
        img = np.where(pores > 0, 0.05 + 0.05 * img, img)
    return _norm(img), {"family": "grains", "n_grains": n, "n_pores": n_pores}


def milled(rng: np.random.Generator, size: int = 512):
    """FIB-SEM milling: trenches / holes with bright rims, curtaining and shading."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    base = 0.5 + 0.15 * gaussian_random_field((size, size), rng, size / 6) + 0.03 * gaussian_random_field((size, size), rng, 1.0)
    depth = np.zeros((size, size), np.float32)
    n = int(rng.integers(1, 6))
    for _ in range(n):
        if rng.random() < 0.5:  # rectangular trench
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            hh, ww = rng.uniform(0.05, 0.3, 2) * size
            th = rng.uniform(-0.3, 0.3)
            u = (xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)
            v = -(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)
            inside = (np.abs(u) < ww / 2) & (np.abs(v) < hh / 2)
        else:  # round hole / well
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            r = rng.uniform(0.03, 0.15) * size
            inside = np.hypot(yy - cy, xx - cx) < r
        depth = np.maximum(depth, inside.astype(np.float32))
    depth = ndimage.gaussian_filter(depth, rng.uniform(1, 4))
    rim = np.hypot(*np.gradient(depth))
    img = base * (1 - rng.uniform(0.4, 0.8) * depth) + rng.uniform(2, 8) * rim
    # curtaining: vertical streaks inside the milled area
    streak = gaussian_random_field((1, size), rng, rng.uniform(1, 4))[0]
    img = img + 0.08 * streak[None, :] * depth
    img = img + rng.uniform(0, 0.3) * (yy / size)  # detector shading
    return _norm(img), {"family": "milled", "n_features": n}


GENERATORS = {"particles": particles, "cells": cells, "grains": grains, "milled": milled}


def meso_image(rng: np.random.Generator, size: int = 512, family: str | None = None):
    """One mesoscale texture (random ``family`` unless given); returns ``(image, params)``."""
    family = family or str(rng.choice(MESO_KINDS))
    img, params = GENERATORS[family](rng, size)
    return img, dict(params, kind="meso")
