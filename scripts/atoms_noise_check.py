"""Is the fit's noise term (``sigma_noise_px``, the Cramér-Rao bound of the Poisson-weighted fit) calibrated on
the simplest images? A 12 x 12 lattice of Gaussian columns (10 px spacing, each jittered by up to 0.5 px), Poisson
noise, no support, six draws per setting; prints the per-axis error's standard deviation, the median noise term,
the other terms, the ideal bound of an isolated column on no background (1 / sqrt(2 pi A)) and the share of
per-axis errors inside 1 sigma::

    OMP_NUM_THREADS=2 python scripts/atoms_noise_check.py
"""
import numpy as np

from scopenet.metrics.atoms import match_atoms
from scopenet.simulate.em.lattice import render_gaussians
from scopenet.tasks.atoms import AtomFinder


def main() -> int:
    rng = np.random.default_rng(0)
    est = AtomFinder.pretrained()
    for amp, width, bg in ((1000, 1.1, 0.0), (1000, 1.1, 50.0), (200, 1.5, 0.0), (50, 1.5, 0.0)):
        err, sig = [], []
        for _ in range(6):
            g = np.stack(np.meshgrid(np.arange(1, 13), np.arange(1, 13), indexing="ij"), -1).reshape(-1, 2) * 10.0
            g = g + rng.uniform(-0.5, 0.5, g.shape)
            img = rng.poisson(bg + render_gaussians((130, 130), g, np.full(len(g), float(amp)), width))
            df = est.predict(img.astype(np.float32))
            p = df[["y", "x"]].to_numpy()
            m = match_atoms(g, p, 3.0)
            err.append(p[m.pairs[:, 1]] - g[m.pairs[:, 0]])
            sig.append(df.iloc[m.pairs[:, 1]][["sigma_noise_px", "sigma_background_px", "sigma_px"]].to_numpy())
        e, s = np.concatenate(err), np.concatenate(sig)
        print(f"peak {amp} counts, width {width} px, background {bg}: error sd per axis {e.std():.4f} px, noise term "
              f"{np.median(s[:, 0]):.4f}, background term {np.median(s[:, 1]):.4f}, sigma {np.median(s[:, 2]):.4f}, "
              f"ideal bound {1 / np.sqrt(2 * np.pi * amp):.4f}, inside 1 sigma {(np.abs(e) <= s[:, 2:3]).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
