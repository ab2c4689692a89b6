"""Reference atom columns for real HAADF-STEM images (``scopenet bench atoms-real``), made here and checked by eye.

There is no ground truth for a real micrograph. For a few crops of the real STEM images in
``../shared/data/em-real`` (never copied into the repository) the columns were marked with a classical
detector whose settings were chosen *per image by a person* (smoothing, minimum distance, local threshold,
and for Si [110] the dumbbell split), and every marked column was then checked on the overlay pictures
(``--pictures DIR`` writes ``DIR/<id>-reference.png``; they show the images, so they stay beside them and out of
the repository). The settings live in :data:`REFERENCES`; the
result is ``benchmarks/atoms-real-columns.csv`` (image id, ``x``, ``y`` in px of the whole image, the crop,
the column kind). What a person would not mark (a column too faint to tell from the noise) is not marked,
and the benchmark leaves detections on such places out of its scores (``faint`` sites, listed too).

Nine of the fourteen atomic-resolution STEM images have references. Left out, because a person cannot
say from the image which columns are there: the MoS2 monolayers (``stem_10``-``12``: whether the S2
sublattice is visible), DyScO3 (``stem_05``: faint features between the Dy columns), the ptychographic
phase image (``stem_14``: not an ADF image). The Si [110] images (``stem_04``, ``07``-``09``) show dumbbells
the smoothing merges: each blob is split into two columns by a template fitted to the average of all blobs
(:func:`dumbbell_split`; separations 13-18 px, about 1.4 A at the files' nominal fields of view).

    OMP_NUM_THREADS=1 python scripts/atoms_real_reference.py [--only stem_02_ncempy_sto_80kv] [--pictures DIR]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "atoms-real-columns.csv"

#: per image: the crop (y0, x0, size), the smoothing sigma (px), the minimum distance between columns (px),
#: the local threshold (fraction of the local range above the local minimum), the background scale (px,
#: a Gaussian subtracted first; None: none), and what the columns are
REFERENCES: dict[str, dict] = {
    "stem_02_ncempy_sto_80kv": dict(crop=(256, 256, 512), smooth=3.0, distance=8, threshold=0.3, background=None,
                                    what="SrTiO3 [100], 80 kV: Sr and Ti-O columns (the pure-O columns not visible)"),
    "stem_01_scifi_si_survey": dict(crop=(0, 0, 512), smooth=2.0, distance=5, threshold=0.3, background=30.0,
                                    faint=(1.3, 1.6),
                                    what="perovskite-type crystal, survey image (brightness falls to the top); "
                                         "the faint rows between the bright ones (between vertical neighbours): faint sites"),
    "stem_03_ncempy_velox_acq18": dict(crop=(256, 256, 512), smooth=3.0, distance=8, threshold=0.3, background=None,
                                       what="crystal lattice, Velox single frame, shot noise"),
    "stem_06_atomsegnet_au_grain_boundary": dict(crop=(0, 0, 512), smooth=2.0, distance=5, threshold=0.3,
                                                 background=None, what="Au, grain boundary"),
    "stem_13_osiris_srtio3": dict(crop=(0, 0, 512), smooth=2.5, distance=7, threshold=0.3, background=None,
                                  faint=(1.2, 1.8),
                                  what="SrTiO3, 200 kV, line noise: the Sr columns; the cell centres (Ti-O, "
                                       "barely visible) faint sites"),
    "stem_07_atomsegnet_si110": dict(crop=(0, 0, 512), smooth=5.0, distance=12, threshold=0.3, background=None,
                                     dumbbell=14, what="Si [110] dumbbells (each blob split into its two columns)"),
    "stem_04_atomsegnet_afterimage_8nm": dict(crop=(109, 109, 512), smooth=5.0, distance=12, threshold=0.3,
                                              background=None, dumbbell=14,
                                              what="dumbbells smeared along the fast scan (detector afterglow)"),
    "stem_08_atomsegnet_8nm_1024px": dict(crop=(256, 256, 512), smooth=6.0, distance=14, threshold=0.3,
                                          background=None, dumbbell=18, what="dumbbells, 16 us dwell, line-synchronised"),
    "stem_09_atomsegnet_frame_stack_512px": dict(crop=(0, 0, 512), smooth=5.0, distance=12, threshold=0.3,
                                                 background=None, dumbbell=14,
                                                 what="dumbbells, one frame of a series, no line sync (line jumps)"),
}


def load(image_id: str) -> np.ndarray:
    """The stored array of a real image (2-D float; the first frame of a stack)."""
    from scopenet.tasks.atoms.bench_real import data_folder, load_image

    return load_image(image_id, data_folder())


def mark(img: np.ndarray, smooth: float, distance: int, threshold: float, background: float | None) -> np.ndarray:
    """``(row, col)`` of the columns the settings give on ``img`` (a crop): local maxima of the smoothed
    image at least ``distance`` px apart, above ``threshold`` of the local range, refined by centre of mass."""
    from scipy import ndimage as ndi

    from scopenet.tasks.atoms.postprocess import refine_com

    a = np.asarray(img, float)
    if background:
        a = a - ndi.gaussian_filter(a, background)
    g = ndi.gaussian_filter(a, smooth)
    size = 2 * distance + 1
    mx = ndi.maximum_filter(g, size=size)
    lo = ndi.minimum_filter(g, size=2 * size + 1)
    hi = ndi.maximum_filter(g, size=2 * size + 1)
    pk = np.argwhere((g == mx) & (g > lo + threshold * (hi - lo)))
    if not len(pk):
        return np.zeros((0, 2))
    return refine_com(g, pk.astype(float), max(1.5, distance / 2), iterations=2)


def dumbbell_split(img: np.ndarray, blobs: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every blob (a dumbbell the smoothing merged) into its two columns: the blobs' crops are
    averaged into one template (its noise down by the square root of their number), two Gaussians of one
    width are fitted to it, and each blob's columns are put at its centre plus the template's two offsets.
    Returns ``(columns (2k, 2), offsets (2, 2))`` in ``(row, col)`` px."""
    from scipy.optimize import least_squares

    a = np.asarray(img, float)
    h, w = a.shape
    c = np.rint(blobs).astype(int)
    keep = ((c >= half) & (c < np.array([h, w]) - half)).all(1)
    stack = np.stack([a[y - half:y + half + 1, x - half:x + half + 1] for y, x in c[keep]])
    t = stack.mean(0)
    t = t - np.percentile(t, 10)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    # start: the two brightest separated maxima of the template, opposite each other
    flat = np.argsort(t.ravel())[::-1]
    p1 = np.array([yy.ravel()[flat[0]], xx.ravel()[flat[0]]], float)
    p0 = [t.max(), p1[0], p1[1], half / 4, 0.0]

    def model(q):
        amp, dy, dx, sg, bg = q
        g = np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / (2 * sg * sg)) + np.exp(-((yy + dy) ** 2 + (xx + dx) ** 2)
                                                                             / (2 * sg * sg))
        return amp * g + bg

    fit = least_squares(lambda q: (model(q) - t).ravel(), p0)
    _, dy, dx, _, _ = fit.x
    off = np.array([[dy, dx], [-dy, -dx]])
    # the template's own centre: the blobs were centred on the smoothed maximum, not on the dumbbell's middle
    cols = np.concatenate([blobs + off[0], blobs + off[1]])
    return cols, off


def faint_sites(cols: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Places between the marked columns where a fainter column may sit that a person cannot tell from the
    noise: the midpoints of pairs of marked columns ``lo``-``hi`` x their nearest-neighbour spacing apart
    (the centres of a square or rectangular cell, a row between rows), merged within 0.3 spacings."""
    from scipy.spatial import cKDTree

    from scopenet.tasks.atoms.postprocess import nearest_neighbour_distances

    sp = float(np.median(nearest_neighbour_distances(cols)))
    pairs = np.array(sorted(cKDTree(cols).query_pairs(hi * sp)), int).reshape(-1, 2)
    d = np.hypot(*(cols[pairs[:, 0]] - cols[pairs[:, 1]]).T)
    mid = (cols[pairs[d >= lo * sp, 0]] + cols[pairs[d >= lo * sp, 1]]) / 2
    out: list[np.ndarray] = []
    for m in mid:  # merge the midpoints of several pairs around one place
        if not out or np.min(np.hypot(*(np.asarray(out) - m).T)) > 0.3 * sp:
            out.append(m)
    far = np.hypot(*(np.asarray(out)[:, None, :] - cols[None]).transpose(2, 0, 1)).min(1) > 0.3 * sp
    return np.asarray(out).reshape(-1, 2)[far]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None)
    p.add_argument("--pictures", default=None, help="folder for the overlay pictures checked by eye")
    a = p.parse_args(argv)
    rows = []
    if OUT.exists() and a.only:
        rows = [r for r in csv.DictReader(OUT.open()) if r["image"] != a.only]
    for image_id, s in REFERENCES.items():
        if a.only and image_id != a.only:
            continue
        y0, x0, n = s["crop"]
        crop = load(image_id)[y0:y0 + n, x0:x0 + n]
        rc = mark(crop, s["smooth"], s["distance"], s["threshold"], s["background"])
        if s.get("dumbbell"):
            rc, off = dumbbell_split(crop, rc, s["dumbbell"])
            print(image_id, "dumbbell offsets", np.round(off, 2).tolist(),
                  f"separation {2 * np.hypot(*off[0]):.1f} px")
        faint = faint_sites(rc, *s["faint"]) if s.get("faint") else np.zeros((0, 2))
        for kind, pts in (("column", rc), ("faint", faint)):
            for r, c in pts:
                rows.append({"image": image_id, "x": f"{c + x0:.2f}", "y": f"{r + y0:.2f}", "crop_y0": y0,
                             "crop_x0": x0, "crop_size": n, "kind": kind})
        print(image_id, len(rc), "columns", len(faint), "faint sites")
        if a.pictures:
            picture(image_id, crop, rc, Path(a.pictures) / f"{image_id}-reference.png", s["what"], faint)
    rows.sort(key=lambda r: r["image"])
    with OUT.open("w", newline="") as f:
        w = csv.DictWriter(f, ["image", "x", "y", "crop_y0", "crop_x0", "crop_size", "kind"])
        w.writeheader()
        w.writerows(rows)
    print("wrote", OUT, len(rows), "rows")
    return 0


def picture(image_id: str, crop: np.ndarray, rc: np.ndarray, path: Path, title: str,
            faint: np.ndarray | None = None) -> None:
    """The crop with the marked columns (red) and the faint sites (yellow): what was checked by eye."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(8, 8))
    ax = fig.add_axes([0, 0, 1, 0.95])
    ax.imshow(crop, cmap="gray", interpolation="nearest")
    ax.plot(rc[:, 1], rc[:, 0], "+", color="tab:red", ms=7, mew=1.2)
    if faint is not None and len(faint):
        ax.plot(faint[:, 1], faint[:, 0], "x", color="yellow", ms=4, mew=0.8)
    ax.set_title(f"{image_id}: {len(rc)} reference columns, {0 if faint is None else len(faint)} faint sites\n{title}",
                 fontsize=9)
    ax.set_axis_off()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
