"""Demo-report section: searching a collection of simulated micrographs by image with ``embed-default``."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def section(report, workdir: Path, samples) -> None:
    """Add the "Micrograph search" section: three queries and their nearest images, and an HTML map."""
    from .bench import BENCH_SIM_SEED, sim_set, transformed
    from .index import Index
    from .map import map_index
    from .model import Embedder
    from .preprocess import thumbnail

    sec = report.section(
        "Micrograph search",
        "sn.embed turns each micrograph into 64 numbers (the latent means of Ede's variational autoencoder, "
        "with encoding normalisation); the nearest codes are the most similar images. Here a gallery of "
        "simulated STEM, HRTEM, mesoscale and STM images (held-out seeds) is searched with rotated and "
        "re-noised copies of three of its images (each image encoded in its canonical orientation, as an index does).")
    est = Embedder.pretrained("default")
    imgs, labels = sim_set(6, 15, BENCH_SIM_SEED + 7)
    mu, sig = est.encode(imgs)
    idx = Index.from_codes(mu, sigmas=sig, paths=[f"{lab} #{i}" for i, lab in enumerate(labels)], modality=labels)
    idx.thumbs = np.stack([thumbnail(a, 64) for a in imgs])
    idx._model = est
    rng = np.random.default_rng(0)
    panels, titles, rows = [], [], []
    for qi, t in ((0, "rot90"), (7, "renoise"), (25, "flip-lr")):
        q = transformed(imgs[qi], t, rng)
        res = idx.search(est.predict(q)[0], k=4)
        panels.append(q)
        titles.append(f"query: {labels[qi]} ({t})")
        for r in res.itertuples():
            panels.append(imgs[int(r.row)])
            titles.append(f"#{r.rank} {labels[int(r.row)]} d={r.distance:.2f}")
            rows.append({"query": f"{labels[qi]} #{qi} ({t})", "rank": r.rank, "result": r.path,
                         "distance": float(r.distance), "original found": int(r.row) == qi})
    sec.images(panels, titles, ncols=5, size=1.8,
               caption="Each row: a transformed copy of a gallery image, then its 4 nearest gallery images "
                       "(simulator label and distance between codes).")
    sec.table(rows, caption="The search results.")
    out = map_index(idx, Path(workdir) / "embed-map.html", grid=8, overwrite=True)
    sec.text(f"Interactive t-SNE map of the gallery (hover a point to see its image): {out.name} in the "
             "demo's work folder (scopenet map STORE -o map.html does this for an index).")
