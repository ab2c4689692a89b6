"""Figures of adaptive scans (learned paths over images, learning curves) and the demo-report section."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["paths_png", "curves_png", "section"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, path: Path | None) -> bytes:
    """``fig`` laid out tight, closed and returned as PNG bytes (also written to ``path`` when given)."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def paths_png(crops: np.ndarray, scans: dict[str, dict], path: Path | None = None, n: int = 4) -> bytes:
    """PNG: ``n`` crops (rows) with each method's path drawn over the image, then its completion.

    ``scans``: ``{method: scan_batch(...) result}`` on the same crops (``points``, ``completion``).
    """
    plt = _plt()
    methods = list(scans)
    n = min(n, len(crops))
    fig, axes = plt.subplots(n, 2 * len(methods), figsize=(2.0 * 2 * len(methods), 2.1 * n), dpi=90, squeeze=False)
    for i in range(n):
        for j, m in enumerate(methods):
            a = axes[i, 2 * j]
            a.imshow(crops[i], cmap="gray")
            p = np.asarray(scans[m]["points"][i], float)
            jump = np.r_[False, np.hypot(*np.diff(p, axis=0).T) > 2.0]  # blanked jumps: not drawn
            q = np.insert(p, np.flatnonzero(jump), np.nan, axis=0)
            a.plot(q[:, 1], q[:, 0], "-", color="#ff3b30", lw=0.8)
            a.plot(p[:1, 1], p[:1, 0], "o", color="#34c759", ms=3)
            a.set_xlim(-0.5, crops.shape[2] - 0.5)
            a.set_ylim(crops.shape[1] - 0.5, -0.5)
            b = axes[i, 2 * j + 1]
            b.imshow(scans[m]["completion"][i], cmap="gray")
            if i == 0:
                a.set_title(f"{m}\npath", fontsize=7)
                b.set_title(f"{m}\ncompletion", fontsize=7)
            for ax in (a, b):
                ax.set_xticks([])
                ax.set_yticks([])
    return _png(fig, path)


def curves_png(curves: dict[str, dict], path: Path | None = None) -> bytes:
    """PNG: generator training loss against step for each model (from the cards' ``learning_curve``),
    and, for adaptive models, the coverage and off-image rate of the actor's exploring scans."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, cv) in enumerate(curves.items()):
        col = colours[i % len(colours)]
        steps = np.asarray(cv.get("step") or [], float)
        mse = np.asarray([np.nan if v is None else v for v in cv.get("gen_mse") or []], float)
        if len(steps):
            a.plot(steps, mse, label=name, lw=1, color=col)
        cov = np.asarray([np.nan if v is None else v for v in cv.get("coverage") or []], float)
        off = np.asarray([np.nan if v is None else v for v in cv.get("off_rate") or []], float)
        if len(off) and np.isfinite(off).any():
            b.plot(steps, cov * 23.04, label=f"{name}: coverage x 23.04", lw=1, color=col)
            b.plot(steps, off, "--", label=f"{name}: off-image segments", lw=1, color=col)
    a.set_xlabel("step")
    a.set_ylabel("generator training MSE (scan-value scale)")
    a.set_yscale("log")
    a.legend(fontsize=7)
    a.set_title("learning curves", fontsize=9)
    b.set_xlabel("step")
    b.set_ylim(0, 1.05)
    b.legend(fontsize=7)
    b.set_title("adaptive actors while exploring", fontsize=9)
    return _png(fig, path)


def section(report, workdir, samples) -> None:
    """Add "Adaptive scans" to the demo report: learned paths (and the fixed spiral's) over simulated STEM
    crops, each completion, and the RMS error and scan time of each."""
    from ...simulate import scan_env as env
    from ...simulate.em.api import simulate_batch
    from .model import AdaptiveScanner
    from .scanning import mse_scores, scan_batch

    imgs = simulate_batch(3, 96, seed=5, kind="mixed")["images"].astype(np.float32)
    sec = report.section("Adaptive scans", "A recurrent actor chooses the direction of each of 20 straight "
                         "segments (20 probes each, coverage 1/23.04) from what it has measured; a generator "
                         "completes the scan. Beside it the fixed spiral at the same coverage (Ede, thesis ch. 5).")
    scans, rows = {}, []
    for label, name in (("adaptive", "default"), ("spiral", "spiral")):
        try:
            est = AdaptiveScanner.pretrained(name)
        except Exception as exc:  # noqa: BLE001 - not installed: say so
            sec.text(f"{label}: no pretrained model ({exc})")
            continue
        res = scan_batch(est.net_, est.path, imgs)
        scans[label] = res
        mse = mse_scores(imgs, res["completion"], est.config.blur_sigma)
        t = [env.path_scan_time(p).time_s for p in res["points"]] if est.path == "adaptive" else \
            [_fixed_time(est.path)] * len(imgs)
        rows.append({"path": label, "model": est.name, "MSE [-1, 1]": float(np.mean(mse)),
                     "coverage": float(res["mask"].mean()), "scan time (us)": float(np.mean(t)) * 1e6})
    if scans:
        sec.figure(paths_png(imgs, scans, n=3), caption="paths (red, start green) and completions")
        sec.table(rows, caption="test MSE on the [-1, 1] scale of the blurred crop; scan time under the coil model "
                                "of scopenet.simulate.scan_env.CoilLimits")


def _fixed_time(path: str) -> float:
    from ...simulate import scan_env as env
    from .scanning import fixed_path_points

    pts, n_px = fixed_path_points(path)
    return env.path_scan_time(pts, n_dwell=n_px if path == "spiral" else None).time_s
