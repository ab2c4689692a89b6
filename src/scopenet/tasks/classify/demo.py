"""Demo-report section: tip-state verdicts and class activation maps on simulated and real STM images."""
from __future__ import annotations

from pathlib import Path



def _overlay_grid(images, cams, titles) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...report import fig_to_png

    n = len(images)
    fig, ax = plt.subplots(2, n, figsize=(2.0 * n, 4.2), dpi=90, squeeze=False)
    for i in range(n):
        ax[0, i].imshow(images[i], cmap="afmhot")
        ax[0, i].set_title(titles[i], fontsize=7)
        ax[1, i].imshow(images[i], cmap="gray")
        ax[1, i].imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for a in ax[:, i]:
            a.axis("off")
    ax[1, 0].set_title("CAM: why 'bad'", fontsize=7)
    fig.tight_layout()
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
    sec.figure(_overlay_grid(X, cams, titles), "Simulated STM images (held-out seed): good/bad verdicts and "
                                               "Grad-CAM maps for the 'bad' output.")
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
