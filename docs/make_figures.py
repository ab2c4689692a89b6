"""Make the figures of the documentation site: ``python docs/make_figures.py [--only NAME ...]``.

Every figure is drawn from simulated data (``scopenet.simulate``, fixed seeds, never seen in training) and
the shipped pretrained models, on the CPU in a few seconds each, and written as a PNG into
``docs/figures/`` (replacing the previous one). Run it again after a model or a simulator changes, look
at the pictures, and commit them (each is well under 200 KB).
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"


def _panels(images, titles, path: Path, cmap="gray", size=2.3, suptitle: str | None = None) -> Path:
    """One row of image panels without axes, saved as a compact PNG."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.35), dpi=80, squeeze=False)
    for ax, im, t in zip(axes[0], images, titles):
        if isinstance(cmap, dict):
            c = cmap.get(t, "gray")
        else:
            c = cmap
        ax.imshow(im, cmap=c, interpolation="nearest")
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=8, y=0.02, va="bottom")
    fig.tight_layout(pad=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    # 256-colour palette: a third of the size of a true-colour PNG, no visible difference at this scale
    Image.open(buf).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else a * 0


# ------------------------------------------------------------------------------------------ figures
def flatten() -> Path:
    """A simulated STM scan with a tilted plane and line offsets, before and after ``sn.flatten``."""
    import scopenet as sn
    from scopenet.simulate.spm import simulate_batch

    clean = simulate_batch(1, size=128, seed=2024)["images"][0]
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:128, :128] / 128.0
    raw = clean + 1.5 * xx + 0.8 * yy + rng.normal(0, 0.15, (128, 1))  # tilt + one offset per scan line
    flat = sn.flatten(raw, method="auto")
    return _panels([raw, flat, clean], ["raw scan (tilt + line offsets)", "sn.flatten(method='auto')",
                                        "simulated surface"], OUT / "flatten.png", cmap="afmhot")


def denoise() -> Path:
    """A simulated low-dose STEM image, a Gaussian filter, ``sn.denoise`` and the truth."""
    import scopenet as sn
    from scopenet.simulate.em import simulate_batch
    from scopenet.simulate.em.noise import ede_noisy_pair
    from scopenet.tasks.denoise.baselines import gaussian

    clean = simulate_batch(1, size=160, seed=777, kind="stem")["images"][0]
    noisy, truth = ede_noisy_pair(clean, np.random.default_rng(0), "low", return_scale=False)
    out = {"low-dose input": noisy, "Gaussian 3x3": gaussian(noisy), "sn.denoise": sn.denoise(noisy)}
    titles = [f"{k}\nRMS {_rms(np.clip(v, 0, 1), truth):.3f}" for k, v in out.items()]
    return _panels([*out.values(), truth], [*titles, "truth\n(simulated, noise-free)"], OUT / "denoise.png")


def inpaint() -> Path:
    """Ede's spiral scan at 1/17.9 coverage of a simulated STEM image, interpolation and ``sn.inpaint``."""
    import scopenet as sn
    from scopenet.simulate import scans
    from scopenet.simulate.em import simulate_batch
    from scopenet.tasks.inpaint.baselines import linear

    truth = _unit(simulate_batch(1, size=192, seed=3, kind="stem")["images"][0])
    mask = scans.spiral_mask(192, 1 / 17.9)
    partial = np.where(mask, truth, 0).astype(np.float32)
    lin = linear(partial, mask)
    out = sn.inpaint(partial, mask)
    return _panels([partial, lin, out, truth],
                   [f"spiral scan, {mask.mean():.1%} of pixels", f"linear interpolation\nRMS {_rms(lin, truth):.3f}",
                    f"sn.inpaint\nRMS {_rms(out, truth):.3f}", "full scan (truth)"], OUT / "inpaint.png")


def superres() -> Path:
    """A 32x32 coarse SPM scan (block means of a simulated 128x128 one), bicubic and ``sn.super_resolve``."""
    import scopenet as sn
    from scopenet.simulate.spm import simulate_batch
    from scopenet.tasks.superres import coarsen, upsample

    fine = _unit(simulate_batch(1, size=128, seed=90_211)["images"][0])
    coarse = coarsen(fine, 4)
    bic = upsample(coarse, 4, "bicubic")
    out = sn.super_resolve(coarse, factor=4)
    return _panels([coarse, bic, out, fine],
                   ["coarse scan, 32x32", f"bicubic x4\nRMS {_rms(bic, fine):.3f}",
                    f"sn.super_resolve x4\nRMS {_rms(out, fine):.3f}", "fine scan, 128x128 (truth)"],
                   OUT / "superres.png", cmap="afmhot")


def classify() -> Path:
    """Simulated STM images with the good/bad verdict and the Grad-CAM map of the 'bad' output."""
    from scopenet.simulate.spm import simulate_batch
    from scopenet.tasks.classify import TipClassifier
    from scopenet.tasks.classify.preprocess import prepare

    sim = simulate_batch(6, 64, seed=4242)
    gb = TipClassifier.pretrained("good-bad")
    p_good = gb.predict_proba(sim["images"])[:, gb.categories.index("good")]
    cams = gb.cam(sim["images"], "bad")
    X = prepare(sim["images"], gb.config.size)[:, 0]
    n = len(X)
    fig, ax = plt.subplots(2, n, figsize=(1.6 * n, 3.6), dpi=72, squeeze=False)
    for i in range(n):
        ax[0, i].imshow(X[i], cmap="afmhot")
        ax[0, i].set_title(f"P(good) {p_good[i]:.2f}\ntrue: {'good' if sim['good'][i] else 'bad'}", fontsize=8)
        ax[1, i].imshow(X[i], cmap="gray")
        ax[1, i].imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax[1, i].set_title("Grad-CAM of 'bad'", fontsize=8)
        for a in ax[:, i]:
            a.axis("off")
    fig.tight_layout(pad=0.3)
    return _save(fig, OUT / "classify.png")


FIGURES = {"flatten": flatten, "denoise": denoise, "inpaint": inpaint, "superres": superres, "classify": classify}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="make only these figures")
    a = p.parse_args(argv)
    for name in a.only or FIGURES:
        t0 = time.perf_counter()
        path = FIGURES[name]()
        print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size / 1024:.0f} KB, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
