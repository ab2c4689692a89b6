"""Demo-report section: atoms found in held-out simulated STEM images and an SPM surface, with overlays."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _overlay(examples, tables, titles) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...report import fig_to_png

    n = len(examples)
    fig, ax = plt.subplots(1, n, figsize=(2.4 * n, 2.6), dpi=72, squeeze=False)
    for i, (ex, df) in enumerate(zip(examples, tables)):
        a = ax[0, i]
        lo, hi = np.percentile(ex.image, [0.5, 99.5])
        a.imshow(ex.image, cmap="gray", vmin=lo, vmax=hi)
        a.plot(ex.atoms[:, 1], ex.atoms[:, 0], "o", mfc="none", mec="lime", ms=5, mew=0.6, label="truth")
        for c, colour in zip(sorted(df["class"].unique()), ("red", "cyan", "orange")):
            t = df[df["class"] == c]
            a.plot(t["x"], t["y"], "+", color=colour, ms=5, mew=0.8, label=f"class {c}")
        a.set_title(titles[i], fontsize=7)
        a.axis("off")
    ax[0, 0].legend(loc="lower left", fontsize=6, framealpha=0.6)
    fig.tight_layout()
    return fig_to_png(fig)


def section(report, workdir: Path, samples) -> None:
    """Add the "Finding atoms" section: held-out crystals at three doses and an SPM surface."""
    from ...metrics.atoms import match_atoms
    from ...simulate.em.atoms import atom_image, spm_atom_image
    from .model import find_atoms

    sec = report.section("Finding atoms", "sn.find_atoms(img) on simulated images the model never saw (held-out "
                                          "crystals): green circles are the true columns, crosses the atoms "
                                          "found, coloured by intensity class.")
    rng = np.random.default_rng(2026)
    exs = [atom_image(rng, 128, split="held_out", dose=d, spacing_px=s, region="full")
           for d, s in ((20.0, 8.0), (100.0, 12.0), (1000.0, 6.0))]
    exs.append(spm_atom_image(rng, 128, spacing_px=9.0, snr=5.0, lattice="honeycomb"))
    tables, rows, titles = [], [], []
    for ex in exs:
        df = find_atoms(ex.image)
        tables.append(df)
        m = match_atoms(ex.atoms, df[["y", "x"]].to_numpy(), 0.3 * ex.spacing_px)
        name = ex.params.get("structure", "SPM " + ex.params.get("lattice", ""))
        titles.append(f"{name}, {ex.dose:g} {'counts' if ex.params['kind'] == 'stem' else 'SNR'}: F1 {m.f1:.3f}")
        rows.append({"image": name, "dose / SNR": ex.dose, "atoms (true)": m.n_true, "found": m.n_pred,
                     "F1": m.f1, "RMS px": m.rms_px, "median sigma px": float(np.median(df["sigma_px"]))
                     if len(df) else float("nan"), "classes": int(df["class"].nunique()) if len(df) else 0,
                     "OOD flag": bool(df.attrs.get("ood"))})
    sec.figure(_overlay(exs, tables, titles), "Atoms found (crosses) and true columns (circles).")
    sec.table(rows, "Per image: matching within 0.3 x the column spacing. Full figures: scopenet bench atoms.")
