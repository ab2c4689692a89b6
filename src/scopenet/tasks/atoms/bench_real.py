"""Benchmark: atom finding on real HAADF-STEM images against columns a person marked and checked.

``scopenet bench atoms`` and ``atoms-abtem`` score simulated images. This one scores crops of the real
atomic-resolution STEM images beside the repository (``../shared/data/em-real``, or ``$SCOPENET_EM_REAL``;
no atom finder was trained on any of them) against reference columns made with a classical detector whose
settings were chosen per image by a person and checked by eye on overlay pictures
(``scripts/atoms_real_reference.py``, ``benchmarks/atoms-real-columns.csv``). The model runs on the whole
image, as a user would run it; the scores count the columns at least half a spacing inside the crop, a
detection matching within 0.3 x the reference's nearest-neighbour spacing (the baselines are told that
spacing, the model nothing). The references mark what a microscopist would mark; they are not exact
positions, so the "offset" column (RMS distance to the reference) is agreement, not error.
Skipped, with a reason, when the images are not there::

    scopenet bench atoms-real [--model NAME] [--references CSV] [--pictures DIR] [--json out.json]
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .._bench import BenchSpec, Report, Table, timed
from .bench import TOLERANCE, nearest_distance, on_faint, pool_add, pooled


def data_folder() -> Path | None:
    """The real images: ``$SCOPENET_EM_REAL`` or ``<repo>/../shared/data/em-real`` (None if absent)."""
    from ...training.em_real import default_folder

    return default_folder()


def default_references() -> Path | None:
    """``benchmarks/atoms-real-columns.csv`` of the checkout (None outside one)."""
    env = os.environ.get("SCOPENET_ATOMS_REAL_REFERENCES")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        cand = parent / "benchmarks" / "atoms-real-columns.csv"
        if (parent / "pyproject.toml").exists() and cand.exists():
            return cand
    return None


def read_references(path: str | Path) -> dict[str, dict]:
    """``{image id: {"crop": (y0, x0, size), "columns": (k, 2) (row, col) px, "kind": (k,)}}``."""
    out: dict[str, dict] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            d = out.setdefault(r["image"], {"crop": (int(r["crop_y0"]), int(r["crop_x0"]), int(r["crop_size"])),
                                            "columns": [], "kind": []})
            d["columns"].append((float(r["y"]), float(r["x"])))
            d["kind"].append(r.get("kind", "column"))
    for d in out.values():
        d["columns"] = np.asarray(d["columns"], float).reshape(-1, 2)
        d["kind"] = np.asarray(d["kind"])
    return out


def load_image(image_id: str, folder: Path) -> np.ndarray:
    """The stored array of a real image (2-D float; the first frame of a stack)."""
    import tifffile

    tif, npy = folder / f"{image_id}.tif", folder / f"{image_id}.npy"
    a = tifffile.imread(tif) if tif.exists() else np.load(npy)
    a = np.asarray(a, float)
    return a if a.ndim == 2 else a[0]


def reference_spacing(ref: dict) -> float:
    """The median nearest-neighbour distance of a crop's marked columns (not its faint sites), px."""
    from .postprocess import nearest_neighbour_distances

    return float(np.median(nearest_neighbour_distances(ref["columns"][ref["kind"] != "faint"])))


def score_crop(pred_rc: np.ndarray, ref: dict) -> dict:
    """Match detections (whole-image ``(row, col)`` px) to the reference columns of one crop, as
    :func:`.bench.score` does: the reference columns at least half a spacing inside the crop count, and so do
    the detections there or matched to one of them; a detection on a ``faint`` reference site (a column a
    person could not tell from the noise) is neither right nor wrong."""
    from ...metrics.atoms import match_atoms

    cols, kind = ref["columns"], ref["kind"]
    spacing = reference_spacing(ref)
    y0, x0, n = ref["crop"]
    m = 0.5 * spacing
    lo, hi = np.array([y0 + m, x0 + m]), np.array([y0 + n - 1 - m, x0 + n - 1 - m])

    def inner(p):
        return ((p >= lo) & (p <= hi)).all(1)

    tol = TOLERANCE * spacing
    real = cols[(kind != "faint") & inner(cols)]
    faint = cols[kind == "faint"]
    pred = np.asarray(pred_rc, float).reshape(-1, 2)
    # candidates: inside the inner region, or within the tolerance of a counted column just across its edge
    pred = pred[inner(pred) | (nearest_distance(pred, real) <= tol)]
    neutral = on_faint(pred, faint, real, tol)
    pred = pred[~neutral]
    mt = match_atoms(real, pred, tol)
    # outside the inner region only matched detections count (the unmatched ones there are the next columns')
    unmatched = np.setdiff1d(np.arange(len(pred)), mt.pairs[:, 1])
    drop = unmatched[~inner(pred[unmatched])]
    if len(drop):
        pred = np.delete(pred, drop, axis=0)
        mt = match_atoms(real, pred, tol)
    return {"f1": mt.f1, "precision": mt.precision, "recall": mt.recall, "tp": mt.tp, "n_true": mt.n_true,
            "n_pred": mt.n_pred, "sq_err": float(np.sum(mt.distances_px ** 2)), "spacing_px": spacing,
            "on_faint": int(neutral.sum())}


def image_statistics(img: np.ndarray, ref: dict) -> dict:
    """What sets a real crop apart from the training images: the columns' contrast over the background
    (``contrast``: the median of the lightly smoothed image at the marked columns minus its 10th percentile),
    the ``pedestal`` (that background over the contrast; about 0-0.3 in the shot-noise-only training images),
    the pixel noise (``noise``: the MAD of the 2x2 Haar diagonal; a noise smeared along the scan reads low) and
    the contrast-to-noise per pixel."""
    from scipy import ndimage as ndi

    y0, x0, n = ref["crop"]
    a = np.asarray(img, float)[y0:y0 + n, x0:x0 + n]
    c = ref["columns"][ref["kind"] != "faint"] - [y0, x0]
    c = np.rint(c[((c >= 0) & (c <= n - 1)).all(1)]).astype(int)
    g = ndi.gaussian_filter(a, 1.0)
    bg = float(np.percentile(g, 10))
    contrast = float(np.median(g[c[:, 0], c[:, 1]])) - bg
    d = (a[:-1:2, :-1:2] - a[1::2, :-1:2] - a[:-1:2, 1::2] + a[1::2, 1::2]) / 2
    noise = float(1.4826 * np.median(np.abs(d - np.median(d))))
    return {"contrast": contrast, "pedestal": bg / contrast if contrast > 0 else float("nan"),
            "noise": noise, "cnr_per_px": contrast / noise if noise > 0 else float("inf")}


def _options(p) -> None:
    p.add_argument("--model", default="default",
                   help="installed model name or path stem; several, comma-separated, are compared")
    p.add_argument("--references", default=None, help="reference columns CSV (default benchmarks/atoms-real-columns.csv)")
    p.add_argument("--pictures", default=None, help="folder for one overlay picture per image and model")


def _picture(img: np.ndarray, ref: dict, found: dict, path: Path) -> None:
    """The crop with the reference columns and each method's detections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y0, x0, n = ref["crop"]
    crop = img[y0:y0 + n, x0:x0 + n]
    k = len(found)
    fig, axs = plt.subplots(1, k, figsize=(5 * k, 5.3), squeeze=False)
    for ax, (name, rc) in zip(axs[0], found.items()):
        ax.imshow(crop, cmap="gray", interpolation="nearest")
        c = ref["columns"] - [y0, x0]
        ax.plot(c[:, 1], c[:, 0], "o", mfc="none", mec="tab:cyan", ms=7, mew=0.8)
        p = np.asarray(rc, float).reshape(-1, 2) - [y0, x0]
        p = p[((p >= 0) & (p <= n - 1)).all(1)]
        ax.plot(p[:, 1], p[:, 0], "+", color="tab:red", ms=6, mew=1.0)
        ax.set_title(f"{name}: {len(p)} found (cyan: {len(c)} reference)", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _brief(r: dict) -> dict:
    """The per-image figures of a :func:`score_crop` result."""
    return {k: r[k] for k in ("f1", "precision", "recall", "tp", "n_true", "n_pred")}


def run(a, report: Report) -> int:
    from .baselines import BASELINES
    from .model import AtomFinder
    from .postprocess import estimate_spacing

    folder = data_folder()
    refs_path = Path(a.references) if a.references else default_references()
    if folder is None or not folder.exists() or refs_path is None or not refs_path.exists():
        report.line("skipped: the real images (../shared/data/em-real or $SCOPENET_EM_REAL) or the reference "
                    "columns (benchmarks/atoms-real-columns.csv) are not here")
        report.data["skipped"] = True
        return 0
    refs = read_references(refs_path)
    model_names = [m.strip() for m in a.model.split(",") if m.strip()]
    models = {name if len(model_names) > 1 else "AtomFinder": AtomFinder.pretrained(name) for name in model_names}
    report.line(f"atom finding on {len(refs)} real HAADF-STEM images (crops) against columns marked by a person; "
                f"models {', '.join(m.name for m in models.values())}; match within {TOLERANCE} x spacing")
    acc: dict = {}
    per_image: dict = {}
    spacings: dict = {}
    stats: dict = {}
    for image_id, ref in sorted(refs.items()):
        img = load_image(image_id, folder)
        found = {}
        per_image[image_id] = {}
        spacing = reference_spacing(ref)
        spacings[image_id] = spacing
        for name, est in models.items():
            df, dt = timed(est.predict, img)
            rc = df[["y", "x"]].to_numpy() if len(df) else np.zeros((0, 2))
            found[name] = rc
            r = score_crop(rc, ref)
            pool_add(acc, name, r, dt)
            per_image[image_id][name] = {**_brief(r), "ood": bool(df.attrs.get("ood", False))}
        auto = estimate_spacing(img)
        for base, fn in BASELINES.items():
            for name, sp in ((base, spacing), (f"{base}, own spacing", auto)):
                rc, dt = timed(fn, img, spacing_px=sp)
                found[name] = rc
                r = score_crop(rc, ref)
                pool_add(acc, name, r, dt)
                per_image[image_id][name] = _brief(r)
        stats[image_id] = image_statistics(img, ref)
        if a.pictures:
            _picture(img, ref, found, Path(a.pictures) / f"{image_id}.png")
    res = pooled(acc)
    t = Table(["method", "F1", "precision", "recall", "offset px", "worst image F1", "s/image"],
              title=f"real HAADF-STEM, {len(refs)} images, {next(iter(res.values()))['n_atoms']} reference columns "
                    "(pooled)")
    for name, r in res.items():
        t.add(name, r["f1"], r["precision"], r["recall"], r["rms_px"], r["f1_min_image"], r["s_per_image"])
    t.notes.append("offset: RMS distance to the reference columns, which are marked, not measured: agreement, not error")
    t.notes.append("the baselines are told the reference's spacing; ', own spacing': the image's autocorrelation "
                   "repeat instead (estimate_spacing), what they get without a person. The references were marked "
                   "with local maxima of a smoothed image, the maxima baseline's own kind of detector: its score "
                   "with the reference's spacing flatters it")
    report.table(t)
    names = list(res)
    t = Table(["image", "columns", "spacing px"] + [f"{n} F1 (found)" for n in names], title="per image")
    for image_id, d in sorted(per_image.items()):
        first = next(iter(d.values()))
        t.add(image_id, first["n_true"], f"{spacings[image_id]:.1f}",
              *[f"{d[n]['f1']:.3f} ({d[n]['n_pred']}){' ood' if d[n].get('ood') else ''}" for n in names])
    t.notes.append("ood: the model flagged the image as unlike its training data")
    report.table(t)
    t = Table(["image", "pedestal", "contrast / noise per px"],
              title="the real crops against the training images (shot noise on a support of 0-0.3 x a column)")
    for image_id, st in sorted(stats.items()):
        t.add(image_id, f"{st['pedestal']:.2f}", f"{st['cnr_per_px']:.1f}")
    t.notes.append("pedestal: the background under the columns over their contrast (image_statistics)")
    report.table(t)
    report.data.update({"pooled": res, "per_image": per_image, "spacing_px": spacings, "image_statistics": stats,
                        "references": str(refs_path)})
    return 0


SPEC = BenchSpec("atoms-real", __doc__, run, _options, seed=None, quick="the same (a few real crops)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench atoms-real``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
