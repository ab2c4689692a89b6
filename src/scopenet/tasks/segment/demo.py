"""Demo section "Particles and movies" (see :mod:`scopenet.demo`).

Segments a held-out simulated particle micrograph with ``sn.segment`` beside Otsu's threshold and the
truth (with a table of Dice and particle counts), measures the particles, and tracks a short simulated
movie with ``sn.track`` (drift error and correct links against the known trajectories).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def section(report, workdir: Path, samples: dict[str, Path]) -> None:
    """Add the particles-and-movies section to ``report``; write the particle table to ``workdir``."""
    import scopenet as sn
    from ...metrics.segmentation import dice
    from ...simulate.em.particle_data import particle_sample
    from .baselines import otsu
    from .particles import label_particles, particle_table

    sec = report.section(
        "Particles and movies",
        "sn.segment labels nanoparticles with the shipped segment-particles U-Net (trained on simulated "
        "particle micrographs with exact masks); the particle table gives each particle's area, equivalent "
        "diameter and ellipse. The image below comes from the held-out simulator setting (more elongated "
        "particles, lower dose, more blur than in training).")
    s = particle_sample(np.random.default_rng(2024), 256, "heldout")
    model = np.asarray(sn.segment(s.image)) > 0
    base = otsu(s.image)
    sec.images([s.image, s.mask.astype(np.float32), model.astype(np.float32), base.astype(np.float32)],
               ["image", "truth", "sn.segment", "Otsu"],
               caption=f"held-out simulated particles (dose {s.params['dose']:.0f} counts/px)", size=2.6)
    rows = []
    for name, m in (("truth", s.mask), ("sn.segment", model), ("Otsu", base)):
        lab = label_particles(m)
        rows.append({"mask": name, "Dice": dice(s.mask, m), "particles": int(lab.max())})
    sec.table(rows, caption="Dice against the truth and particle counts (connected regions)")
    tab = particle_table(label_particles(model))
    tab.to_csv(Path(workdir) / "particles.csv", index=False)
    sec.text(f"{len(tab)} particles; median equivalent diameter {np.median(tab.equivalent_diameter_px):.1f} px "
             "(table: particles.csv)." if len(tab) else "no particles found")

    from ...simulate.em.movies import simulate_movie

    mov = simulate_movie(n_frames=12, size=128, n_particles=15, seed=7)
    tracks = sn.track(mov.frames)
    err = np.hypot(*(np.asarray(tracks.attrs["drift"]) - mov.drift).T)
    sec.table([{"true particles": 15, "tracks": int(tracks.particle.nunique()),
                "positions": len(tracks), "drift error rms (px)": float(np.sqrt((err ** 2).mean())),
                "drift error max (px)": float(err.max())}],
              caption="sn.track on a simulated movie (12 frames, 15 diffusing particles, stage drift); "
                      "link accuracy: scopenet bench track")
