"""Demo-report section: tip-state verdicts and class activation maps on simulated and real STM images."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _as_scan(image, fov_m: float):
    """A standardised simulated STM image as a Micrograph calibrated by its field of view."""
    from ...image.micrograph import Axis, Micrograph

    h, w = image.shape
    px_nm = fov_m * 1e9 / w
    return Micrograph(image, axes=[Axis("y", h, px_nm, unit="nm"), Axis("x", w, px_nm, unit="nm")],
                      signal="height, standardised", signal_unit="s.d.", modality="STM")


def _overlay_grid(images, cams, titles, fovs_m) -> bytes:
    """Top row: the network's inputs; bottom row: Grad-CAM over them. Scale bars on every panel,
    one colour bar per row (standardised height; CAM weight)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...report import add_scale_bar, fig_to_png
    from ...image.units import signal_label

    n = len(images)
    scans = [_as_scan(images[i], fovs_m[i]) for i in range(n)]
    fig, ax = plt.subplots(2, n, figsize=(2.0 * n + 1.2, 4.4), dpi=90, squeeze=False)
    # one colour scale for the row (the inputs are standardised alike): 1-99 % of all their pixels
    lo, hi = (float(v) for v in np.percentile(np.concatenate([np.ravel(im) for im in images]), [1, 99]))
    for i in range(n):
        top = ax[0, i].imshow(images[i], cmap="afmhot", vmin=lo, vmax=hi)
        ax[0, i].set_title(titles[i], fontsize=7)
        ax[1, i].imshow(images[i], cmap="gray", vmin=lo, vmax=hi)
        cam = ax[1, i].imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for a in ax[:, i]:
            a.axis("off")
    ax[1, 0].set_title("CAM: why 'bad'", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / (2.0 * n + 1.2), 1))
    for i in range(n):
        for a in ax[:, i]:
            add_scale_bar(a, scans[i])
    for row, mappable, label in ((0, top, signal_label("height, standardised", "s.d.")),
                                 (1, cam, "Grad-CAM weight")):
        box = ax[row, -1].get_position()
        cax = fig.add_axes((box.x1 + 0.012, box.y0, 0.012, box.height))
        cb = fig.colorbar(mappable, cax=cax)
        cb.set_label(label, fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig_to_png(fig)


def section(report, workdir: Path, samples) -> None:
    """Add the "Tip-state classification" section: predictions and CAM overlays."""
    from ...simulate.spm import simulate_batch
    from .model import TipClassifier
    from .preprocess import prepare

    sec = report.section(
        "Tip-state classification",
        "scopenet.classify judges SPM images: the six H:Si(100) categories of Gordon & Landon (multi-label, "
        "sigmoid outputs trained on the volunteers' soft scores) and DeepSPM's good/bad tip (single-label). "
        "Grad-CAM maps show where the evidence for a verdict lies.")
    six, gb = TipClassifier.pretrained("hsi-six"), TipClassifier.pretrained("good-bad")
    sim = simulate_batch(8, 64, seed=4242)
    p6 = six.predict_proba(sim["images"])
    pg = gb.predict_proba(sim["images"])[:, gb.categories.index("good")]
    bad_idx = gb.categories.index("bad")
    cams = gb.cam(sim["images"], bad_idx)
    X = prepare(sim["images"], gb.config.size)[:, 0]
    titles = [f"P(good)={pg[i]:.2f} (true {'good' if sim['good'][i] else 'bad'})" for i in range(8)]
    fovs = [p["field_of_view_m"] for p in sim["params"]]
    sec.figure(_overlay_grid(X, cams, titles, fovs),
               "Simulated STM images (held-out seed) as the network sees them (line-flattened, standardised): "
               "good/bad verdicts and Grad-CAM maps for the 'bad' output.")
    rows = []
    for i in range(8):
        r = {"image": i, "P(good)": float(pg[i]), "true good": bool(sim["good"][i])}
        r.update({c: float(p6[i, k]) for k, c in enumerate(six.categories)})
        rows.append(r)
    sec.table(rows, caption="Six-category probabilities (hsi-six) and good/bad verdicts on the same images.")
    head = six.card_.metrics.headline
    if head is not None:
        sec.text(f"hsi-six on real H:Si(100) images (gordon-hsi): {head.label} {head.value:.3f} "
                 "(its model card).")
