"""Benchmark: super-resolution of coarse SPM scans, model vs nearest / bilinear / bicubic.

Fine 128x128 images (held-out simulated SPM images, and real gordon-hsi STM images from sessions
the shipped model never saw) are block-mean downsampled to 32x32 (x4) and 64x64 (x2) -- the coarse
scan -- and upsampled back. Errors are on images scaled to [0, 1] per fine image::

    python -m scopenet.tasks.inpaint.bench_superres [--n-sim 100] [--n-real 200] [--model spm-x4]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .superres import SuperResolver, block_mean, upsample

HSI_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "gordon-hsi"
EVAL_SIM_SEED = 90_210  # training uses other seeds (see scripts/train_superres.py)
HOLDOUT_FOLD = 0  # session_folds(k=5, seed=0) fold kept out of training


def unit(images: np.ndarray) -> np.ndarray:
    """Scale each image of ``(N, H, W)`` to [0, 1] (constant images to 0)."""
    a = np.asarray(images, np.float32)
    lo = a.min(axis=(1, 2), keepdims=True)
    span = a.max(axis=(1, 2), keepdims=True) - lo
    return (a - lo) / np.where(span > 0, span, 1)


def sim_images(n: int, seed: int = EVAL_SIM_SEED, size: int = 128) -> np.ndarray:
    """``n`` simulated SPM images in [0, 1], float32 (n, size, size)."""
    from ...simulate.spm import simulate_batch

    return unit(simulate_batch(n, size=size, seed=seed)["images"])


def real_split(folder: Path = HSI_DIR, holdout_fold: int = HOLDOUT_FOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gordon-hsi images (N, 128, 128) in [0, 1], with train and held-out indices (whole sessions)."""
    from ..classify.data import load_gordon_hsi, session_folds

    ds = load_gordon_hsi(folder)
    tr, te = session_folds(ds.sessions, k=5, seed=0)[holdout_fold]
    return unit(ds.images), tr, te


def _metrics(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    from skimage.metrics import structural_similarity

    err = pred - truth
    rms = float(np.sqrt((err ** 2).mean(axis=(1, 2))).mean())
    mse = (err ** 2).mean(axis=(1, 2))
    psnr = float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-12))))
    ssim = float(np.mean([structural_similarity(p, t, data_range=1.0) for p, t in zip(pred, truth)]))
    return rms, psnr, ssim


def evaluate(model: SuperResolver, fine: np.ndarray, factor: int, batch: int = 32) -> dict[str, dict[str, float]]:
    """RMS, PSNR (dB), SSIM and ms/image of each method at one factor on fine images in [0, 1].

    Coarse inputs are the block means of ``fine``; every method gets the same coarse input,
    outputs are compared with ``fine`` without clipping.
    """
    coarse = block_mean(fine, factor)
    out: dict[str, dict[str, float]] = {}
    methods = {m: (lambda c, m=m: np.stack([upsample(x, factor, m) for x in c])) for m in ("nearest", "bilinear", "bicubic")}
    methods["model"] = lambda c: np.concatenate([model.predict_batch(c[i:i + batch], factor)
                                                 for i in range(0, len(c), batch)])
    for name, fn in methods.items():
        t0 = time.perf_counter()
        pred = fn(coarse)
        dt = (time.perf_counter() - t0) / len(coarse) * 1e3
        rms, psnr, ssim = _metrics(pred, fine)
        out[name] = {"rms": rms, "psnr": psnr, "ssim": ssim, "ms": dt}
    return out


def table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int) -> str:
    """Markdown table of :func:`evaluate` results for several factors."""
    lines = [f"### {title} (n = {n})", "",
             "| scan | method | RMS | PSNR (dB) | SSIM | ms/image |", "|---|---|---|---|---|---|"]
    for f, r in res.items():
        best = min(v["rms"] for k, v in r.items() if k != "model")
        for k, v in r.items():
            tag = f" ({v['rms'] / best:.3f}x best interp.)" if k == "model" else ""
            lines.append(f"| {128 // f}->128 (x{f}) | {k} | {v['rms']:.4f}{tag} | {v['psnr']:.2f} | "
                         f"{v['ssim']:.4f} | {v['ms']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_superres", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="spm-x4", help="installed model name or path stem")
    p.add_argument("--n-sim", type=int, default=100, help="held-out simulated images")
    p.add_argument("--n-real", type=int, default=200, help="held-out real gordon-hsi images (0: skip)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    model = SuperResolver.pretrained(a.model)
    print(f"model {model.card.get('name')}: {model.card.get('n_parameters')} parameters")
    if a.n_sim > 0:
        fine = sim_images(a.n_sim)
        print(table(f"held-out simulated SPM (seed {EVAL_SIM_SEED})", {f: evaluate(model, fine, f) for f in (4, 2)},
                    len(fine)))
        print()
    if a.n_real > 0:
        if not HSI_DIR.exists():
            print(f"skipping real images: {HSI_DIR} not found")
        else:
            imgs, _tr, te = real_split()
            idx = np.random.default_rng(0).permutation(te)[:a.n_real]
            fine = imgs[np.sort(idx)]
            print(table(f"gordon-hsi held-out sessions (fold {HOLDOUT_FOLD})",
                        {f: evaluate(model, fine, f) for f in (4, 2)}, len(fine)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
