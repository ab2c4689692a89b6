"""Adaptive scan paths versus fixed spiral and grid paths at the same coverage (1/23.04).

Every method scans the same held-out 96x96 crops (default: 1,000 crops of the em-real held-out
micrographs, which no model saw in training; ``--quick``: 100) and completes them with its own
generator, trained on the same images and budget. The error is Ede's: the MSE between the completion
and the crop blurred by a 5x5 Gaussian of 2.5 px, both on the crop's ``[-1, 1]`` scale (min-max of the
blurred crop). The table gives mean and sd over crops, the ratio of means to the same-budget spiral,
the fraction of crops where the method beats the spiral, the actual coverage, the mean number of
segments partly off the image and the scan time of each path under the coil model of
:class:`scopenet.simulate.scan_env.CoilLimits` (1 us dwell per probe, 50 us per reversal, turns pro
rata, blanked jumps 2 us + 1 us/px). ``--figures DIR`` writes ``learning-curves.png`` and
``example-paths.png`` there.

Models: the installed ``adaptive-scan-*`` cards (``--models name=stem ...`` or ``--runs DIR`` to read
``DIR/adaptive-scan-<stage>/model`` instead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._bench import BenchSpec, Report, Table
from .scanning import mse_scores

__all__ = ["SPEC", "main", "mse_scores", "STAGES"]

#: (label, installed model, baseline it is measured against)
STAGES = (
    ("adaptive (default)", "adaptive-scan-default", "spiral (2x steps)"),
    ("adaptive (spiral start, free)", "adaptive-scan-free", "spiral (2x steps)"),
    ("adaptive (chapter)", "adaptive-scan-chapter", "spiral"),
    ("spiral", "adaptive-scan-spiral", None),
    ("spiral (2x steps)", "adaptive-scan-spiral2", None),
    ("grid", "adaptive-scan-grid", "spiral"),
)


def _options(p) -> None:
    p.add_argument("--n", type=int, default=None, help="held-out crops (default 1000; --quick 100)")
    p.add_argument("--models", nargs="*", default=None, metavar="LABEL=STEM",
                   help="models to compare as label=path-stem-or-name (default: the installed adaptive-scan-* models)")
    p.add_argument("--runs", type=Path, default=None,
                   help="read the models from DIR/adaptive-scan-<stage>/model (the training runs) instead")
    p.add_argument("--figures", type=Path, default=None, help="write learning-curves.png and example-paths.png here")
    p.add_argument("--batch", type=int, default=50, help="crops scanned at once")


def _models(a) -> list[tuple[str, object, str | None]]:
    from .model import AdaptiveScanner

    out = []
    if a.models:
        for item in a.models:
            label, _, stem = item.partition("=")
            out.append((label, AdaptiveScanner.load(stem or label), None))
        return out
    for label, name, base in STAGES:
        src = (a.runs / name / "model") if a.runs is not None else name
        try:
            out.append((label, AdaptiveScanner.load(src), base))
        except Exception:  # noqa: BLE001 - a stage not trained or not installed is left out
            continue
    return out


def _steps(est) -> str:
    """Generator steps of a scanner, ``a+b`` when it started from a saved model trained for ``a``."""
    own = est.card_.training.steps
    init = est.card_.training.init or (est.card_.training.config or {}).get("init_from")
    if not init:
        return str(own)
    try:
        from ...weights.files import read_card

        return f"{read_card(str(init) + '.json').training.steps}+{own}"
    except Exception:  # noqa: BLE001 - the run it started from is not on this machine
        return f"?+{own}"


def _ratio_ci(x: np.ndarray, base: np.ndarray, seed: int, n: int = 2000) -> tuple[float, float]:
    """95% paired-bootstrap interval of ``mean(x) / mean(base)`` over crops."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n, len(x)))
    r = x[idx].mean(1) / base[idx].mean(1)
    return float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def _crops(a) -> tuple[np.ndarray, str]:
    from .data import test_crops

    n = a.n or (100 if a.quick else 1000)
    if a.images is None:
        return test_crops(n, seed=a.seed if a.seed is not None else 0)
    from ...io import read
    from .data import CropSampler

    files = sorted(p for p in Path(a.images).iterdir() if p.is_file())
    imgs = []
    for f in files:
        try:
            d = np.asarray(read(f).data, np.float32)
        except Exception:  # noqa: BLE001 - not an image scopenet reads
            continue
        if d.ndim == 2 and min(d.shape) >= 96:
            imgs.append(d)
    if not imgs:
        from ...errors import InputError

        raise InputError(f"no 2-D image of at least 96x96 px in {a.images}")
    s = CropSampler(imgs, 96)
    crops = s.crops(s.params(np.random.default_rng(a.seed or 0), n))
    lo = crops.reshape(n, -1).min(1)[:, None, None]
    hi = crops.reshape(n, -1).max(1)[:, None, None]
    return (crops - lo) / np.where(hi > lo, hi - lo, 1), f"{n} crops of {len(imgs)} images in {a.images}"


def run(a, report: Report) -> int:
    from ...nn.device import resolve_device
    from ...simulate import scan_env as env
    from .demo import curves_png, paths_png
    from .scanning import fixed_path_points, scan_batch

    models = _models(a)
    if not models:
        report.line("skipping: no adaptive-scan model installed (train them: scripts/train_adaptive_scan.py)")
        return 0
    crops, desc = _crops(a)
    report.line(f"test data: {desc}")
    dev = resolve_device(None)
    results, scans = {}, {}
    for label, est, _ in models:
        mse, cover, off, times, turns = [], [], [], [], []
        first = None
        for i in range(0, len(crops), a.batch):
            res = scan_batch(est.net_, est.path, crops[i:i + a.batch], device=dev)
            if first is None:
                first = res
            mse.append(mse_scores(crops[i:i + a.batch], res["completion"], est.config.blur_sigma))
            cover.append(res["mask"].reshape(len(res["mask"]), -1).mean(1))
            off.append(np.asarray(res["off"], float))
            if est.path == "adaptive":
                st = [env.path_scan_time(p) for p in res["points"]]
            else:
                pts, n_px = fixed_path_points(est.path)
                st = [env.path_scan_time(pts, n_dwell=n_px if est.path == "spiral" else None)] * len(res["mask"])
            times.append([s.time_s for s in st])
            turns.append([s.turn_s + s.jump_s for s in st])
        r = {k: np.concatenate(v) for k, v in (("mse", mse), ("coverage", cover), ("off", off), ("time", times),
                                             ("turn", turns))}
        results[label] = {"model": est.name, "path": est.path, "steps": _steps(est), **r}
        scans[label] = first
    base_of = {label: base for label, _, base in models}
    t = Table(["method", "model", "gen. steps", "test MSE mean", "sd", "ratio to spiral", "95% CI", "wins vs spiral",
               "coverage", "off-image segs", "scan time (us)", "turns+jumps (us)"],
              title=f"Adaptive vs fixed paths, coverage 1/23.04, {len(crops)} held-out 96x96 crops",
              float_format="{:.4f}")
    summary = {}
    for label, r in results.items():
        base = base_of.get(label) or ("spiral" if label != "spiral" else None)
        if base not in results and label != "spiral":
            base = "spiral"  # the preferred same-budget spiral is not there: the plain one
        ratio = wins = None
        ci = (None, None)
        if base in results:
            ratio = float(r["mse"].mean() / results[base]["mse"].mean())
            wins = float((r["mse"] < results[base]["mse"]).mean())
            ci = _ratio_ci(r["mse"], results[base]["mse"], a.seed or 0)
        summary[label] = {"model": r["model"], "path": r["path"], "steps": r["steps"], "mse_mean": float(r["mse"].mean()),
                          "mse_sd": float(r["mse"].std()), "ratio_to": base if ratio is not None else None,
                          "ratio": ratio, "ratio_ci95": list(ci), "wins": wins,
                          "coverage": float(r["coverage"].mean()),
                          "off_segments": float(r["off"].mean()), "scan_time_us": float(r["time"].mean() * 1e6),
                          "turn_jump_us": float(r["turn"].mean() * 1e6)}
        s = summary[label]
        t.add(label, r["model"], r["steps"], s["mse_mean"], s["mse_sd"],
              "-" if ratio is None else f"{ratio:.3f} (vs {base})",
              "-" if ci[0] is None else f"{ci[0]:.3f}-{ci[1]:.3f}", "-" if wins is None else f"{wins:.2f}",
              f"1/{1 / s['coverage']:.1f}", f"{s['off_segments']:.2f}", f"{s['scan_time_us']:.0f}",
              f"{s['turn_jump_us']:.0f}")
    t.notes.append("ratio: mean MSE over the mean MSE of the spiral with the same generator budget (95% CI: "
                   "paired bootstrap over crops); wins: fraction of crops where the method's error is lower than "
                   "that spiral's on the same crop; gen. steps: generator steps, a+b when the run started from "
                   "a model trained for a steps.")
    report.table(t)
    report.data["results"] = summary
    if a.figures is not None:
        curves = {label: (est.card_.notes or {}).get("learning_curve", {}) for label, est, _ in models}
        p1 = Path(a.figures) / "learning-curves.png"
        p2 = Path(a.figures) / "example-paths.png"
        curves_png(curves, p1)
        paths_png(crops, scans, p2, n=4)
        report.line(f"figures: {p1}, {p2}")
    return 0


SPEC = BenchSpec("adaptive-scan", __doc__, run, _options, seed=0, threads=1,
                 quick="100 held-out crops instead of 1,000",
                 images="folder of images (any format scopenet reads, at least 96x96) to crop instead of em-real")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench adaptive-scan``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
