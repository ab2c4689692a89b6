"""Demo-report section (and the docs figure): an exit wave of an unseen material, its amplitude, true and
recovered phase on a cyclic colour map, the error and the phase confidence."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

DEMO_MATERIAL = "MgO"  # a test-split material: no shipped model saw it
DEMO_SEED = 4


def demo_wave(material: str = DEMO_MATERIAL, seed: int = DEMO_SEED, prange: str = "restricted") -> tuple:
    """One simulated exit wave (needs the ``sim`` extra): ``(wave (144, 144) complex64, WaveParams)``."""
    from ...simulate.em.exitwave import sample_params, simulate_exit_wave

    p = sample_params(material, np.random.default_rng(seed), prange)
    return simulate_exit_wave(p), p


def figure_png(model: str = "restricted", material: str = DEMO_MATERIAL, seed: int = DEMO_SEED) -> tuple[bytes, str]:
    """PNG bytes of amplitude / true phase / recovered phase / |error| / confidence, and a caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...report import fig_to_png
    from .baselines import components, per_pixel_error, phase_mae
    from .model import ExitWaveEstimator, UnfamiliarInputWarning

    wave, p = demo_wave(material, seed)
    est = ExitWaveEstimator.pretrained(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfamiliarInputWarning)
        a, phase, conf = est.phase_and_confidence(np.abs(wave))
        verdict = est._assess(a, conf)
    truth = np.angle(wave)
    err = per_pixel_error(components(phase), components(wave))
    mae = phase_mae(components(phase), components(wave))
    panels = [(a, "amplitude (mean 1)", "gray", None), (truth, "true phase", "twilight", (-np.pi, np.pi)),
              (phase, f"recovered ({est.name})", "twilight", (-np.pi, np.pi)),
              (err, f"|error|, MAE {mae:.3f}", "magma", (0, 2)), (conf, "phase confidence", "viridis", (0, 1))]
    fig, axs = plt.subplots(1, 5, figsize=(13, 2.9))
    for ax, (img, title, cmap, lim) in zip(axs, panels):
        im = ax.imshow(img, cmap=cmap, vmin=None if lim is None else lim[0], vmax=None if lim is None else lim[1])
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    caption = (f"{material} (unseen), [{' '.join(map(str, p.zone))}] zone axis, {p.thickness_nm:.1f} nm, "
               f"{p.voltage_kv:.0f} kV: phase-component MAE {mae:.3f} (uniform random 0.75), mean confidence "
               f"{float(conf.mean()):.2f}; " + ("flagged as unlike the training data" if not verdict["familiar"]
                                                 else "not flagged"))
    return fig_to_png(fig), caption


def write_figure(path: str | Path = "docs/figures/exitwave.png") -> Path:
    """Write the docs figure (``python -m scopenet.tasks.exitwave.demo [PATH]``)."""
    import io

    from PIL import Image

    png, _ = figure_png()
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)  # docs figures stay < 200 KB
    path = Path(path)
    img.save(path, format="PNG", optimize=True)
    return path


def section(report, workdir, samples) -> None:
    """Add an "Exit-wave phase" section to ``report`` (a simulated unseen material; needs ``scopenet[sim]``)."""
    sec = report.section("Exit-wave phase from the amplitude",
                         "Ede's chapter 7: the phase of a simulated exit wave recovered from its amplitude alone by "
                         "the restricted multi-material model, with the per-pixel confidence.")
    try:
        from ...simulate.em.abtem_backend import available

        if available():
            png, caption = figure_png()
            sec.figure(png, caption)
            return
    except ImportError:
        pass
    # without abTEM: the model on a lattice-like amplitude (not a physical exit wave)
    from .model import ExitWaveEstimator

    y, x = np.mgrid[:96, :96] * (2 * np.pi / 12)
    amp = 1.0 + 0.3 * np.cos(x) * np.cos(y)
    est = ExitWaveEstimator.pretrained("restricted")
    _, phase, conf = est.phase_and_confidence(amp)
    sec.images([amp, phase, conf], ["amplitude", "recovered phase (rad)", "confidence"],
               caption="abTEM is not installed (pip install 'scopenet[sim]'): the model on a synthetic "
                       "lattice amplitude instead of a simulated exit wave")


if __name__ == "__main__":
    import sys

    print(write_figure(*sys.argv[1:2]))
