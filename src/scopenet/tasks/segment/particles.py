"""Particle analysis of a segmentation: labelled regions, sizes and ellipses in calibrated units.

:func:`label_particles` turns a mask (or class probabilities) into instance labels (connected
components, optionally touching particles split by a distance-transform watershed);
:func:`particle_table` measures every region with scikit-image's ``regionprops``; :func:`analyse_particles`
does both from an image with a :class:`~scopenet.tasks.segment.Segmenter` or a threshold baseline.
Pictures: :func:`size_histogram_png` and :func:`overlay_png`.

Conventions: pixel centres at integer coordinates, ``x`` the column and ``y`` the row; ``orientation``
is the angle of the major axis from the +x axis toward +y (rows grow downwards), in (-90, 90] degrees;
``major_axis`` and ``minor_axis`` are the full lengths (diameters) of the ellipse with the region's
second moments; ``equivalent_diameter`` is that of the disc of the same area.

>>> import numpy as np
>>> m = np.zeros((40, 40), bool); m[10:20, 5:25] = True
>>> t = particle_table(m)
>>> round(float(t.area_px[0])), round(float(t.orientation_deg[0]))
(200, 0)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...image.micrograph import Micrograph

__all__ = ["COLUMNS", "label_particles", "particle_table", "analyse_particles", "size_histogram_png",
           "overlay_png", "pixel_size_m"]

#: the columns of :func:`particle_table` (``*_m`` / ``*_m2`` are NaN for an uncalibrated image)
COLUMNS = ("label", "x", "y", "area_px", "equivalent_diameter_px", "major_axis_px", "minor_axis_px",
           "orientation_deg", "eccentricity", "x_m", "y_m", "area_m2", "equivalent_diameter_m", "major_axis_m",
           "minor_axis_m", "touches_border")


def pixel_size_m(img: Any) -> float | None:
    """The pixel size in metres of a calibrated Micrograph (geometric mean of y and x), else None."""
    if not isinstance(img, Micrograph):
        return None
    py, px = img.pixel_size_m()
    if py is None or px is None:
        return None
    return float(math.sqrt(py * px))


def label_particles(mask: Any, *, min_area: int = 4, split: bool = False, min_distance: int = 3) -> np.ndarray:
    """Instance labels (int32, 0 background) of a boolean mask.

    Parameters
    ----------
    mask : array_like (H, W)
        Boolean mask, or class probabilities ``(K, H, W)`` of a binary model (foreground ``> 0.5``).
    min_area : int
        Regions with fewer pixels are dropped (noise).
    split : bool
        Split touching particles by a watershed of the distance transform (seeds: its maxima at least
        ``min_distance`` px apart).
    """
    from scipy import ndimage
    from skimage.morphology import remove_small_objects

    m = np.asarray(getattr(mask, "data", mask))
    if m.ndim == 3 and m.shape[0] == 2 and m.dtype.kind == "f":
        m = m[1] > 0.5
    if m.ndim != 2:
        raise InputError(f"a particle mask must be 2-D (or (2, H, W) probabilities), got shape {m.shape}")
    m = m.astype(bool)
    if min_area > 1:
        m = remove_small_objects(m, max_size=int(min_area) - 1)
    if not split:
        return ndimage.label(m)[0].astype(np.int32)
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndimage.distance_transform_edt(m)
    comp = ndimage.label(m)[0]
    peaks = peak_local_max(dist, min_distance=int(min_distance), labels=comp, exclude_border=False)
    markers = np.zeros(m.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # components without a peak (tiny) keep one seed at their maximum
    lab = watershed(-dist, markers, mask=m)
    missing = m & (lab == 0)
    if missing.any():
        extra = ndimage.label(missing)[0]
        lab[missing] = extra[missing] + lab.max()
    return lab.astype(np.int32)


def particle_table(labels: Any, pixel_size: float | None = None, *, image: Any = None):
    """Measure every labelled region: a ``pandas.DataFrame`` with :data:`COLUMNS`, one row per particle.

    Parameters
    ----------
    labels : array_like of int (H, W), or a boolean mask (labelled by connectivity)
    pixel_size : float, optional
        Metres per pixel; default that of ``image`` (a calibrated Micrograph), else the metric columns are NaN.
    image : Micrograph, optional
        Source of the calibration (offsets ignored: ``x_m = x * pixel_size``).
    """
    import pandas as pd
    from skimage.measure import regionprops_table

    lab = np.asarray(getattr(labels, "data", labels))
    if lab.ndim != 2:
        raise InputError(f"labels must be 2-D, got shape {lab.shape}")
    if lab.dtype == bool or lab.max() <= 1:
        from scipy import ndimage

        lab = ndimage.label(lab.astype(bool))[0]
    lab = lab.astype(np.int32)
    if pixel_size is None:
        pixel_size = pixel_size_m(image) if image is not None else pixel_size_m(labels)
    props = regionprops_table(lab, properties=("label", "centroid", "area", "equivalent_diameter_area",
                                               "axis_major_length", "axis_minor_length", "orientation",
                                               "eccentricity", "bbox"))
    h, w = lab.shape
    df = pd.DataFrame({
        "label": props["label"].astype(int),
        "x": props["centroid-1"], "y": props["centroid-0"],
        "area_px": props["area"].astype(float),
        "equivalent_diameter_px": props["equivalent_diameter_area"],
        "major_axis_px": props["axis_major_length"], "minor_axis_px": props["axis_minor_length"],
        # skimage: angle from the row axis to the major axis; here from +x toward +y
        "orientation_deg": np.degrees(_wrap(np.pi / 2 - props["orientation"])),
        "eccentricity": props["eccentricity"],
    })
    s = float("nan") if pixel_size is None else float(pixel_size)
    df["x_m"], df["y_m"] = df.x * s, df.y * s
    df["area_m2"] = df.area_px * s * s
    for k in ("equivalent_diameter", "major_axis", "minor_axis"):
        df[f"{k}_m"] = df[f"{k}_px"] * s
    df["touches_border"] = (props["bbox-0"] == 0) | (props["bbox-1"] == 0) | (props["bbox-2"] == h) | \
        (props["bbox-3"] == w)
    return df[list(COLUMNS)]


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles to (-pi/2, pi/2] (an axis has no sign)."""
    a = np.mod(np.asarray(a, float) + np.pi / 2, np.pi) - np.pi / 2
    return np.where(a <= -np.pi / 2 + 1e-12, a + np.pi, a)


def analyse_particles(img: Any, model: Any = "segment-particles", *, method: str = "model", split: bool = False,
                      min_area: int = 4, tta: int = 1):
    """Segment one image and measure its particles: ``(table, labels)``.

    Parameters
    ----------
    img : ndarray (H, W) or Micrograph (a calibrated one gives metric columns)
    model : str or Segmenter
        For ``method="model"``: a binary segmentation model (installed name, path or estimator).
    method : {"model", "otsu", "local"}
        The network, or a threshold baseline (:mod:`scopenet.tasks.segment.baselines`).
    split, min_area : see :func:`label_particles`.
    """
    a = np.asarray(getattr(img, "data", img), np.float32)
    if a.ndim != 2:
        raise InputError(f"particle analysis takes one 2-D image, got shape {a.shape}")
    if method == "model":
        from .model import segment

        mask = np.asarray(segment(a, model=model, tta=tta)) > 0
    elif method in ("otsu", "local"):
        from .baselines import BASELINES

        mask = BASELINES[method](a)
    else:
        raise InputError(f"unknown method {method!r}; use model, otsu or local")
    lab = label_particles(mask, min_area=min_area, split=split)
    return particle_table(lab, image=img if isinstance(img, Micrograph) else None), lab


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def size_histogram_png(table, path: str | Path, *, bins: int = 30, unit: str | None = None,
                       title: str = "particle sizes", overwrite: bool = False) -> Path:
    """Histogram of equivalent diameters (nm when calibrated, else px) written as a PNG (atomically)."""
    from ..._fileutil import atomic_output

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists (use overwrite)")
    calibrated = len(table) and np.isfinite(table["equivalent_diameter_m"]).all()
    d = table["equivalent_diameter_m"] * 1e9 if calibrated else table["equivalent_diameter_px"]
    unit = unit or ("nm" if calibrated else "px")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    ax.hist(np.asarray(d, float), bins=bins, color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    ax.set_title(f"{title} (n = {len(table)})")
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def overlay_png(image: Any, labels: np.ndarray, path: str | Path, *, title: str = "", overwrite: bool = False,
                table=None) -> Path:
    """The image in grey with particle outlines (and fitted ellipses when ``table`` is given) as a PNG."""
    from skimage.segmentation import find_boundaries

    from ..._fileutil import atomic_output

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists (use overwrite)")
    a = np.asarray(getattr(image, "data", image), float)
    lo, hi = np.nanpercentile(a, [0.5, 99.5])
    g = np.clip((a - lo) / (hi - lo if hi > lo else 1), 0, 1)
    rgb = np.repeat(g[..., None], 3, -1)
    b = find_boundaries(np.asarray(labels), mode="inner")
    rgb[b] = (1.0, 0.2, 0.1)
    plt = _plt()
    h, w = a.shape
    fig, ax = plt.subplots(figsize=(5, 5 * h / w), dpi=max(100, int(min(h, w) / 5)))
    ax.imshow(rgb, interpolation="nearest")
    if table is not None and len(table) < 2000:
        from matplotlib.patches import Ellipse

        for r in table.itertuples():
            ax.add_patch(Ellipse((r.x, r.y), r.major_axis_px, r.minor_axis_px, angle=r.orientation_deg,
                                 fill=False, color="cyan", lw=0.6))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
