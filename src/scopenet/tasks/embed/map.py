"""Maps of a micrograph collection: t-SNE of the VAE codes, Ede's sigma-weighted variant, the "uniformly
separated" grid layout, and a self-contained interactive HTML map (hover a point to see its image).

- :func:`tsne` embeds codes ``mu`` in 2-D with scikit-learn's t-SNE (perplexity ``sqrt(N)`` by default,
  as Ede following Oskolkov, capped where scikit-learn requires it).
- ``tsne(mu, sigma=sigma)`` uses Ede's pairwise similarities that account for the encoder's
  uncertainty (eqs. 14-15): the squared distance between images ``i`` and ``j`` is
  ``sum_k w_ijk (mu_ik - mu_jk)^2`` with ``w_ijk = 1 / (sigma_ik^2 + sigma_jk^2 + eps)`` normalised to sum
  to 1 over ``k`` (``eps = 0.01``); t-SNE then runs on these precomputed distances.
- :func:`uniform_grid` is Ede's algorithm 1 (supplementary S2): points are spread out so that the map
  fills its square, by mapping the quantiles of a ``h x w`` histogram (marginal CDF along the first
  axis, conditional CDFs along the second) to a regular grid and interpolating that map with
  Clough-Tocher cubic interpolation (scipy).
- :func:`html_map` writes one HTML file (inline SVG, thumbnails as data URIs, no external scripts or
  CDN) with a hover preview and, optionally, the "images at grid points" view.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError

__all__ = ["grid_cells", "html_map", "map_index", "sigma_distances", "tsne", "uniform_grid"]


def sigma_distances(mu: np.ndarray, sigma: np.ndarray, eps: float = 0.01, chunk: int = 256) -> np.ndarray:
    """Ede's uncertainty-weighted squared distances ``(N, N)`` between codes (eqs. 14-15).

    ``d_ij = sum_k w_ijk (mu_ik - mu_jk)^2``, ``w_ijk = (sigma_ik^2 + sigma_jk^2 + eps)^-1 / sum_l (...)^-1``.
    """
    mu = np.asarray(mu, np.float64)
    s2 = np.asarray(sigma, np.float64) ** 2
    if mu.shape != s2.shape or mu.ndim != 2:
        raise InputError(f"mu and sigma must be (N, latent) of one shape, got {mu.shape} and {s2.shape}")
    n = len(mu)
    d = np.empty((n, n), np.float64)
    for i in range(0, n, chunk):
        w = 1.0 / (s2[i:i + chunk, None, :] + s2[None, :, :] + eps)
        w /= w.sum(-1, keepdims=True)
        d[i:i + chunk] = (w * (mu[i:i + chunk, None, :] - mu[None, :, :]) ** 2).sum(-1)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def tsne(mu: np.ndarray, sigma: np.ndarray | None = None, *, perplexity: float | None = None, seed: int = 0,
         max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE map ``(N, 2)`` of codes ``mu`` ``(N, latent)``; with ``sigma`` Ede's sigma-weighted variant.

    ``perplexity`` defaults to ``sqrt(N)`` (at most ``(N - 1) / 3``, at least 2).
    """
    from sklearn.manifold import TSNE

    mu = np.asarray(mu, np.float32)
    n = len(mu)
    if mu.ndim != 2 or n < 3:
        raise InputError(f"a map needs at least 3 codes (N, latent), got shape {mu.shape}")
    p = float(perplexity) if perplexity is not None else float(np.sqrt(n))
    p = max(min(p, (n - 1) / 3.0), 1.0)
    if sigma is None:
        t = TSNE(2, perplexity=p, init="pca", random_state=seed, max_iter=max_iter)
        return t.fit_transform(mu).astype(np.float32)
    d = sigma_distances(mu, sigma)
    # scikit-learn squares nothing for a precomputed metric: these are the squared distances of eq. 14
    t = TSNE(2, perplexity=p, metric="precomputed", init="random", random_state=seed, max_iter=max_iter)
    return t.fit_transform(d).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(0), x.max(0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)


def uniform_grid(points: np.ndarray, h: int = 25, w: int = 25) -> np.ndarray:
    """Ede's uniformly separated map (algorithm 1): ``points`` ``(N, 2)`` -> ``(N, 2)`` in [0, 1].

    The points are scaled to [0, 1] per axis and binned in ``h x w`` cells; the cumulative counts give a
    marginal CDF along the first axis and conditional CDFs along the second. Each regular grid point
    ``((a - 0.5) / h, (b - 0.5) / w)`` is paired with its distribution point: the cells ``u`` and ``v``
    are the smallest with ``(a - 0.5) / h <= C_u`` and ``(b - 0.5) / w <= C_v|u`` (as the paper), and the
    point lies inside them where the CDFs, linear within a cell, reach those quantiles (the paper takes
    the cell centres, which collapses everything inside one dense cell onto one point). The map from
    distribution points to grid points is interpolated (Clough-Tocher; nearest pair outside their
    convex hull) at every point. Clustered points stay together; empty space is used.
    """
    from scipy.interpolate import CloughTocher2DInterpolator, NearestNDInterpolator

    x = np.asarray(points, np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) < 3:
        raise InputError(f"uniform_grid needs (N, 2) points, N >= 3, got shape {x.shape}")
    x = _unit(x)
    ia = np.minimum((x[:, 0] * h).astype(int), h - 1)
    ib = np.minimum((x[:, 1] * w).astype(int), w - 1)
    n = np.zeros((h, w))
    np.add.at(n, (ia, ib), 1)
    Ca = np.cumsum(n.sum(1)) / n.sum()                            # marginal CDF over rows a
    rows = np.cumsum(n, 1)
    Cb = rows / np.where(rows[:, -1:] > 0, rows[:, -1:], 1)       # conditional CDFs within each row
    def inverse(cdf: np.ndarray, q: float) -> tuple[int, float]:
        """The smallest cell ``j`` with ``q <= cdf[j]`` and the position of ``q`` inside it (0..1)."""
        j = min(int(np.searchsorted(cdf, q - 1e-12)), len(cdf) - 1)
        lo = cdf[j - 1] if j > 0 else 0.0
        return j, float(np.clip((q - lo) / (cdf[j] - lo), 0, 1)) if cdf[j] > lo else 0.5

    src, dst = [], []
    for a in range(1, h + 1):
        qa = (a - 0.5) / h
        u, fu = inverse(Ca, qa)
        for b in range(1, w + 1):
            qb = (b - 0.5) / w
            v, fv = inverse(Cb[u], qb)
            src.append(((u + fu) / h, (v + fv) / w))
            dst.append((qa, qb))
    src_a, dst_a = np.asarray(src), np.asarray(dst)
    # coinciding distribution points (rare): one pair each, at the mean grid position
    keys, inv = np.unique(np.round(src_a, 9), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    tgt = np.zeros((len(keys), 2))
    np.add.at(tgt, inv, dst_a)
    tgt /= np.bincount(inv, minlength=len(keys))[:, None]
    near = NearestNDInterpolator(keys, tgt)
    if len(keys) >= 4 and np.linalg.matrix_rank(keys - keys.mean(0)) == 2:
        y = CloughTocher2DInterpolator(keys, tgt)(x)
        bad = ~np.isfinite(y).all(1)
        y[bad] = near(x[bad])
    else:
        y = near(x)
    return np.clip(y, 0, 1).astype(np.float32)


def grid_cells(points: np.ndarray, g: int = 25) -> list[tuple[int, int, int]]:
    """``[(row, col, point)]``: for each cell of a ``g x g`` grid over the (scaled) map, the point nearest its
    centre, if a point lies within one cell of it (the "images at grid points" view)."""
    from scipy.spatial import cKDTree

    y = _unit(np.asarray(points, np.float64))
    tree = cKDTree(y)
    out = []
    for r in range(g):
        for c in range(g):
            ctr = ((c + 0.5) / g, (r + 0.5) / g)
            d, i = tree.query(ctr)
            if d <= 1.0 / g:
                out.append((r, c, int(i)))
    return out


def _png_uri(t: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(t, np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf"]


def html_map(points: np.ndarray, thumbs: np.ndarray, labels: Sequence[str], path: str | os.PathLike, *,
             groups: Sequence[str] | None = None, title: str = "scopenet map", grid: int = 0,
             overwrite: bool = False) -> Path:
    """Write a self-contained interactive HTML map.

    Parameters
    ----------
    points : ndarray (N, 2)
        Map positions (any units; scaled to the page).
    thumbs : ndarray uint8 (N, h, w)
        Thumbnails shown on hover (embedded as PNG data URIs).
    labels : list of str
        Shown under the hovered image (e.g. file paths).
    groups : list of str, optional
        Colours the points (e.g. modality); a legend lists them.
    grid : int
        ``g > 0`` adds the view of Ede's figures: the image nearest each point of a ``g x g`` grid drawn
        at that grid point (toggle with the button).
    """
    from ..._fileutil import atomic_output

    pts = np.asarray(points, np.float64)
    n = len(pts)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(thumbs) != n or len(labels) != n:
        raise InputError(f"points (N, 2), thumbs and labels must have one entry per image, got {pts.shape}, "
                         f"{len(thumbs)}, {len(labels)}")
    y = _unit(pts) if n > 1 else np.full((n, 2), 0.5)
    groups = [str(g) for g in groups] if groups is not None else ["image"] * n
    names = sorted(set(groups))
    colour = {g: _PALETTE[i % len(_PALETTE)] for i, g in enumerate(names)}
    S, M = 800, 20
    uris = [_png_uri(t) for t in thumbs]
    data = [{"x": round(M + float(p[0]) * (S - 2 * M), 2), "y": round(M + float(p[1]) * (S - 2 * M), 2),
             "l": str(lab), "g": g} for p, lab, g in zip(y, labels, groups)]
    circles = "".join(f'<circle cx="{d["x"]}" cy="{d["y"]}" r="4" fill="{colour[d["g"]]}" data-i="{i}"/>'
                      for i, d in enumerate(data))
    grid_imgs = ""
    if grid:
        cell = (S - 2 * M) / grid
        grid_imgs = "".join(f'<image href="{uris[i]}" x="{M + c * cell:.1f}" y="{M + r * cell:.1f}" '
                            f'width="{cell:.1f}" height="{cell:.1f}" data-i="{i}"/>'
                            for r, c, i in grid_cells(pts, grid))
    legend = " ".join(f'<span style="color:{colour[g]}">&#9679;</span> {html.escape(g)} '
                      f'({groups.count(g)})' for g in names)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 12px; }}
#map {{ border: 1px solid #ccc; background: #fff; }}
#map circle:hover {{ stroke: #000; stroke-width: 2; }}
#tip {{ position: fixed; display: none; background: #fff; border: 1px solid #888; padding: 4px;
        font-size: 11px; max-width: 220px; word-break: break-all; pointer-events: none; }}
#tip img {{ width: 192px; height: 192px; image-rendering: pixelated; display: block; }}
</style></head><body>
<h3>{html.escape(title)}</h3>
<div>{n} images. {legend} {'<button id="toggle">images at grid points</button>' if grid else ''}</div>
<svg id="map" width="{S}" height="{S}" viewBox="0 0 {S} {S}">
<g id="points">{circles}</g><g id="grid" style="display:none">{grid_imgs}</g></svg>
<div id="tip"><img id="tipimg" alt=""><div id="tiplab"></div></div>
<script>
const URIS = {json.dumps(uris)};
const DATA = {json.dumps(data)};
const tip = document.getElementById("tip");
function show(ev) {{
  const i = ev.target.getAttribute("data-i");
  if (i === null) return;
  document.getElementById("tipimg").src = URIS[i];
  document.getElementById("tiplab").textContent = DATA[i].l + " [" + DATA[i].g + "]";
  tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 14) + "px";
  tip.style.display = "block";
}}
document.getElementById("map").addEventListener("mousemove", show);
document.getElementById("map").addEventListener("mouseleave", () => tip.style.display = "none");
document.getElementById("map").addEventListener("mouseout", (ev) => {{ if (ev.target.tagName !== "svg") tip.style.display = "none"; }});
const btn = document.getElementById("toggle");
if (btn) btn.addEventListener("click", () => {{
  const g = document.getElementById("grid"), p = document.getElementById("points");
  const on = g.style.display === "none"; g.style.display = on ? "" : "none"; p.style.display = on ? "none" : "";
  btn.textContent = on ? "points" : "images at grid points";
}});
</script></body></html>
"""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def map_index(index, path: str | os.PathLike, *, sigma: bool = False, layout: str = "tsne", grid: int = 25,
              max_images: int | None = 5000, seed: int = 0, overwrite: bool = False) -> Path:
    """The HTML map of an :class:`~scopenet.tasks.embed.index.Index` (t-SNE of its codes; ``sigma``: the
    sigma-weighted variant; ``layout="uniform"``: Ede's uniformly separated layout), coloured by
    modality; at most ``max_images`` images (a random subset beyond)."""
    if layout not in ("tsne", "uniform"):
        raise InputError(f"layout must be 'tsne' or 'uniform', got {layout!r}")
    n = len(index)
    if n < 3:
        raise InputError(f"a map needs at least 3 images, the index has {n}")
    rows = np.arange(n)
    if max_images is not None and n > max_images:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
    mu = np.asarray(index.codes[rows], np.float32)
    pts = tsne(mu, np.asarray(index.sigmas[rows], np.float32) if sigma else None, seed=seed)
    if layout == "uniform":
        pts = uniform_grid(pts)
    it = index.items.iloc[rows]
    labels = [f"{p}" + (f" [frame {f}]" if f else "") for p, f in zip(it["path"], it["frame"])]
    kind = ("sigma-weighted " if sigma else "") + "t-SNE" + (", uniformly separated" if layout == "uniform" else "")
    return html_map(pts, np.asarray(index.thumbs[rows]), labels, path, groups=list(it["modality"].astype(str)),
                    title=f"{n} micrographs: {kind} of {index.model_name} codes", grid=grid, overwrite=overwrite)
