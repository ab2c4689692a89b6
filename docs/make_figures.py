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


def atoms() -> Path:
    """``sn.find_atoms`` on a held-out simulated crystal (low dose) and an SPM surface, against the truth."""
    import scopenet as sn
    from scopenet.metrics.atoms import match_atoms
    from scopenet.simulate.em.atoms import atom_image, spm_atom_image

    rng = np.random.default_rng(2027)
    exs = [atom_image(rng, 112, split="held_out", dose=50.0, spacing_px=11.0, region="full"),
           spm_atom_image(rng, 112, spacing_px=9.0, snr=5.0, lattice="honeycomb")]
    fig, ax = plt.subplots(1, len(exs), figsize=(2.6 * len(exs), 2.9), dpi=80, squeeze=False)
    for a, ex in zip(ax[0], exs):
        df = sn.find_atoms(ex.image)
        m = match_atoms(ex.atoms, df[["y", "x"]].to_numpy(), 0.3 * ex.spacing_px)
        lo, hi = np.percentile(ex.image, [0.5, 99.5])
        a.imshow(ex.image, cmap="gray", vmin=lo, vmax=hi)
        a.plot(ex.atoms[:, 1], ex.atoms[:, 0], "o", mfc="none", mec="lime", ms=5, mew=0.7, label="truth")
        a.plot(df["x"], df["y"], "+", color="red", ms=5, mew=0.9, label="sn.find_atoms")
        name = ex.params.get("structure", "SPM " + ex.params.get("lattice", ""))
        a.set_title(f"{name}\n{m.n_pred} found, {m.n_true} true: F1 {m.f1:.2f}", fontsize=8)
        a.axis("off")
    ax[0, 0].legend(loc="lower left", fontsize=6, framealpha=0.7)
    fig.tight_layout(pad=0.3)
    return _save(fig, OUT / "atoms.png")


def segment() -> Path:
    """``sn.segment`` on a held-out simulated particle micrograph, beside Otsu's threshold and the truth."""
    import scopenet as sn
    from scopenet.metrics.segmentation import dice
    from scopenet.simulate.em.particle_data import particle_sample
    from scopenet.tasks.segment.baselines import otsu

    s = particle_sample(np.random.default_rng(2025), 160, "heldout")
    model = np.asarray(sn.segment(s.image)) > 0
    base = otsu(s.image)
    return _panels([s.image, model, base, s.mask > 0],
                   [f"held-out simulation\n(dose {s.params['dose']:.0f} counts/px)",
                    f"sn.segment\nDice {dice(s.mask > 0, model):.3f}", f"Otsu threshold\nDice {dice(s.mask > 0, base):.3f}",
                    "truth"], OUT / "segment.png")


def track() -> Path:
    """``sn.track`` on a simulated drifting movie: tracks over the first frame, and measured against true drift."""
    import scopenet as sn
    from scopenet.simulate.em.movies import simulate_movie

    mov = simulate_movie(n_frames=12, size=128, n_particles=15, seed=7)
    tr = sn.track(mov.frames)
    drift = np.asarray(tr.attrs["drift"])
    fig, ax = plt.subplots(1, 2, figsize=(5.6, 2.7), dpi=80)
    ax[0].imshow(mov.frames[0], cmap="gray")
    for _, t in tr.groupby("particle"):
        ax[0].plot(t["x"], t["y"], "-", lw=1.0)
    ax[0].set_title(f"{tr.particle.nunique()} tracks (drift removed)\nover frame 0", fontsize=8)
    ax[0].axis("off")
    for k, name in enumerate(("dy", "dx")):
        ax[1].plot(mov.drift[:, k], "k-", lw=1, label="true" if k == 0 else None)
        ax[1].plot(drift[:, k], "o", ms=3, mfc="none", label=f"measured {name}")
    err = np.hypot(*(drift - mov.drift).T)
    ax[1].set_title(f"stage drift (px): RMS error {np.sqrt((err ** 2).mean()):.2f} px", fontsize=8)
    ax[1].set_xlabel("frame", fontsize=8)
    ax[1].tick_params(labelsize=7)
    ax[1].legend(fontsize=6)
    fig.tight_layout(pad=0.3)
    return _save(fig, OUT / "track.png")


def embed() -> Path:
    """A rotated, re-noised copy of a simulated micrograph and its nearest images by ``sn.embed`` codes."""
    import scopenet as sn
    from scopenet.tasks.embed.bench import sim_set

    imgs, labels = sim_set(3, 5, seed=9_101)
    codes = np.asarray(sn.embed(imgs))
    qi = 4
    rng = np.random.default_rng(0)
    q = np.clip(np.rot90(imgs[qi]) + rng.normal(0, 0.05, imgs[qi].shape[::-1]), 0, 1).astype(np.float32)
    d = np.linalg.norm(codes - np.asarray(sn.embed([q]))[0], axis=1)
    near = np.argsort(d)[:4]
    return _panels([q, *(imgs[i] for i in near)],
                   [f"query: {labels[qi]}\n(rotated, re-noised)",
                    *(f"#{r + 1} {labels[i]}{' (original)' if i == qi else ''}\ndistance {d[i]:.2f}"
                      for r, i in enumerate(near))], OUT / "embed.png", size=1.9)


def autopilot() -> Path:
    """One conditioning episode of the shipped agent on the simulated STM: each image with the judge's verdict."""
    from scopenet.autopilot.agent import QAgent
    from scopenet.autopilot.instrument import ACTION_NAMES
    from scopenet.autopilot.judge import judge_from_card
    from scopenet.autopilot.sim import SimMicroscope
    from scopenet.autopilot.supervisor import run_episode

    agent = QAgent.pretrained("default")
    mic, judge, seen = SimMicroscope(seed=3), judge_from_card(agent.card), []

    def watching(img):  # the judge, keeping each image, its verdict and the simulator's truth
        res = judge(img)
        seen.append((np.asarray(img), res.p_good, mic.state()["tip_good"]))
        return res

    ep = run_episode(mic, watching, agent, max_actions=8)
    names = ["first image"] + [f"after {ACTION_NAMES[a]}" for a in ep["sequence"]]
    keep = list(range(len(seen))) if len(seen) <= 5 else [0, 1, len(seen) - 3, len(seen) - 2, len(seen) - 1]
    return _panels([seen[i][0] for i in keep],
                   [f"{names[i]}\np(good) {seen[i][1]:.2f}, tip {'good' if seen[i][2] else 'bad'}" for i in keep],
                   OUT / "autopilot.png", cmap="afmhot", size=1.9)


FIGURES = {"flatten": flatten, "denoise": denoise, "inpaint": inpaint, "superres": superres, "classify": classify,
           "atoms": atoms, "segment": segment, "track": track, "embed": embed, "autopilot": autopilot}


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
