"""A gallery of the simulator: every surface and every artefact side by side, and the demo section."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .batch import simulate_batch
from .core import SPMSimConfig, simulate_image
from .labels import CATEGORIES

_CLEAN = dict(p_steps=0.0, p_double=0.0, p_asymmetric=0.0, p_blunt=0.0, p_tip_change=0.0, p_line_noise=0.0,
              p_scars=0.0, p_drift=0.0, p_creep=0.0, tip_sigma_range=(0.8e-10, 0.8e-10),
              white_noise_range=(0.03, 0.03), pink_noise_range=(0.03, 0.03), feedback_lag_range=(0.1, 0.1))

#: (title, config overrides) of the gallery panels: the surfaces under a good tip, then each artefact on H:Si.
PANELS: list[tuple[str, dict]] = [
    ("H:Si(100)-2x1", {"surfaces": {"hsi100": 1}}),
    ("H:Si(100), steps", {"surfaces": {"hsi100": 1}, "p_steps": 1.0}),
    ("Au(111)", {"surfaces": {"au111": 1}, "fov_range": (12e-9, 12e-9), "tip_sigma_range": (0.4e-10, 0.4e-10)}),
    ("Cu(111)", {"surfaces": {"cu111": 1}, "tip_sigma_range": (0.4e-10, 0.4e-10)}),
    ("HOPG", {"surfaces": {"hopg": 1}}),
    ("generic lattice", {"surfaces": {"lattice": 1}}),
    ("sharp tip (atoms)", {"surfaces": {"hsi100": 1}, "tip_sigma_range": (0.3e-10, 0.3e-10)}),
    ("blurred tip (rows)", {"surfaces": {"hsi100": 1}, "tip_sigma_range": (2.0e-10, 2.0e-10)}),
    ("blunt tip (dilation)", {"surfaces": {"hsi100": 1}, "p_blunt": 1.0, "blunt_radius_range": (5e-9, 5e-9),
                              "p_steps": 1.0}),
    ("double tip", {"surfaces": {"hsi100": 1}, "p_double": 1.0}),
    ("asymmetric tip", {"surfaces": {"hsi100": 1}, "p_asymmetric": 1.0}),
    ("tip change", {"surfaces": {"hsi100": 1}, "p_tip_change": 1.0, "p_second_change": 0.0}),
    ("line noise", {"surfaces": {"hsi100": 1}, "p_line_noise": 1.0, "line_noise_range": (2.0, 2.0)}),
    ("1/f + white noise", {"surfaces": {"hsi100": 1}, "white_noise_range": (0.4, 0.4),
                           "pink_noise_range": (0.5, 0.5)}),
    ("scars", {"surfaces": {"hsi100": 1}, "p_scars": 1.0, "scars_mean": 8}),
    ("drift + creep", {"surfaces": {"hsi100": 1}, "p_drift": 1.0, "drift_max": 0.3, "p_creep": 1.0,
                       "creep_max": 15.0}),
    ("raw (not flattened)", {"surfaces": {"hsi100": 1}, "p_line_noise": 1.0, "flatten": "none"}),
    ("default mix", None),
]


def gallery_images(seed: int = 0, size: int = 128) -> tuple[list, list[str]]:
    """The gallery panels as calibrated Micrographs and titles (each panel uses seed ``seed`` with its
    own settings)."""
    from ...image.micrograph import Axis, Micrograph

    images, titles = [], []
    for k, (title, over) in enumerate(PANELS):
        cfg = SPMSimConfig(size=size) if over is None else SPMSimConfig(size=size, **{**_CLEAN, **over})
        s = simulate_image(np.random.default_rng([seed, k]), cfg)
        on = [c.replace("individual_", "") for c, v in zip(CATEGORIES, s.labels6) if v >= 0.5]
        px = float(s.params["pixel_size_m"]) * 1e9
        images.append(Micrograph(s.image, axes=[Axis(name=n, size=m, scale=px, unit="nm")
                                                for n, m in zip(("y", "x"), s.image.shape)], modality="STM"))
        titles.append(f"{title}\n{'+'.join(on) or '-'}{' | good tip' if s.good_tip else ''}")
    return images, titles


def gallery_png(seed: int = 0, size: int = 128) -> bytes:
    """PNG bytes of the gallery: each surface and each artefact side by side, titled with its labels."""
    from ...report import image_grid

    images, titles = gallery_images(seed, size)
    return image_grid(images, titles, cmap="afmhot", ncols=6, robust=False)


def demo_section(report, workdir: Path, samples) -> None:
    """Add the "Simulated SPM data" section (gallery, label statistics) to a demo report."""
    import time

    sec = report.section("Simulated SPM data",
                         "Synthetic STM images from scopenet.simulate.spm: model surfaces in metres, tip "
                         "states (resolution, asymmetry, ghost apices, Villarrubia dilation, tip changes) "
                         "and scan artefacts, rendered line by line and X-flattened like the MATRIX "
                         "software. Labels follow the six Gordon & Landon categories and DeepSPM's "
                         "good/bad tip, by the rules in scopenet.simulate.spm.labels.")
    sec.figure(gallery_png(seed=0), "Each surface and each artefact (titles: categories >= 0.5).")
    t0 = time.perf_counter()
    b = simulate_batch(200, size=128, seed=1)
    dt = time.perf_counter() - t0
    pos = (b["labels6"] >= 0.5).mean(axis=0)
    rows = [{"category": c, "positive (%)": float(100 * v)} for c, v in zip(CATEGORIES, pos)]
    rows.append({"category": "good tip (DeepSPM)", "positive (%)": float(100 * b["good"].mean())})
    sec.table(rows, caption=f"Label frequencies over 200 images (default mix); {200 / dt:.0f} images/s "
                            "at 128x128 in this process.")
