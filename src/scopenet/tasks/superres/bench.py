"""Benchmark: super-resolution of coarse SPM scans, model vs nearest / bilinear / bicubic.

SPM (default, ``--domain spm``): fine 128x128 images (held-out simulated SPM images, and real
gordon-hsi STM images from sessions the shipped model never saw) are block-mean downsampled to
32x32 (x4) and 64x64 (x2) -- the coarse scan -- and upsampled back. Errors are on images scaled to
[0, 1] per fine image::

    python -m scopenet.tasks.superres.bench [--n-sim 100] [--n-real 200] [--model spm-x4]

``--ladder`` adds the SPM review's setting: one 32x32 coarse scan of a field of view imaged at
256x256, super-resolved to 64, 128 and 256 pixels (x2, x4, x8); each target is the 256x256 image
block-averaged to that size (simulated images; real gordon-hsi images, 128x128, give 64 and 128).

STEM (``--domain stem``): centre crops (512x512, or the largest square multiple of 4 that fits, at
least 256) of the em-real held-out micrographs -- the test set of the inpainting and denoising
benchmarks, never used in training -- are decimated (``fine[::f, ::f]``, a STEM sub-lattice scan)
by 2 and 4 and upsampled back with interpolation aligned to that grid. Errors against the crop and
against the crop blurred by the 5x5, sigma 2.5 px Gaussian (``blur_target``; the crops are noisy);
tables for the STEM images and for all modalities::

    python -m scopenet.tasks.superres.bench --domain stem [--model stem-x4] [--n-sim 0]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .model import STEM_MODEL, SuperResolver, coarsen, upsample

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

    Coarse inputs are made from ``fine`` by the model's sampling (block means for SPM models,
    decimation for STEM ones) and interpolated on the same grid convention; every method gets the
    same coarse input, outputs are compared with ``fine`` without clipping.
    """
    samp = model.sampling
    coarse = coarsen(fine, factor, samp)
    out: dict[str, dict[str, float]] = {}
    methods = {m: (lambda c, m=m: np.stack([upsample(x, factor, m, samp) for x in c]))
               for m in ("nearest", "bilinear", "bicubic")}
    methods["model"] = lambda c: np.concatenate([model.predict_batch(c[i:i + batch], factor)
                                                 for i in range(0, len(c), batch)])
    for name, fn in methods.items():
        t0 = time.perf_counter()
        pred = fn(coarse)
        dt = (time.perf_counter() - t0) / len(coarse) * 1e3
        rms, psnr, ssim = _metrics(pred, fine)
        out[name] = {"rms": rms, "psnr": psnr, "ssim": ssim, "ms": dt}
    return out


def ladder(model: SuperResolver, fine: np.ndarray, coarse_size: int = 32) -> dict[int, dict[str, dict[str, float]]]:
    """:func:`evaluate` from one ``coarse_size`` scan to every power-of-two size up to ``fine``'s.

    ``fine`` (N, S, S) in [0, 1] is the best scan of the field of view; the target at size ``T`` is
    its block mean (rescaled to [0, 1]), the coarse input the block mean at ``coarse_size``, so every
    target shares the same coarse scan. Returns ``{T: results}``.
    """
    S = fine.shape[-1]
    out = {}
    T = 2 * coarse_size
    while T <= S:
        target = unit(np.stack([coarsen(x, S // T, "block_mean") for x in fine])) if T < S else fine
        out[T] = evaluate(model, target, T // coarse_size)
        T *= 2
    return out


def table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, coarse: int | None = None) -> str:
    """Markdown table of :func:`evaluate` results: keyed by factor (fine images of 128 px), or, with
    ``coarse``, a :func:`ladder` result keyed by target size from one ``coarse``-pixel scan."""
    lines = [f"### {title} (n = {n})", "",
             "| scan | method | RMS | PSNR (dB) | SSIM | ms/image |", "|---|---|---|---|---|---|"]
    for key, r in res.items():
        f, size = (key // coarse, key) if coarse else (key, 128)
        scan = f"{size // f}->{size} (x{f})"
        best = min(v["rms"] for k, v in r.items() if k != "model")
        for k, v in r.items():
            tag = f" ({v['rms'] / best:.3f}x best interp.)" if k == "model" else ""
            lines.append(f"| {scan} | {k} | {v['rms']:.4f}{tag} | {v['psnr']:.2f} | "
                         f"{v['ssim']:.4f} | {v['ms']:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- STEM
STEM_CROP = 512
STEM_MIN_CROP = 256
STEM_EVAL_SIM_SEED = 70_707  # simulated EM for the STEM bench; training uses other seeds
BLUR_LP = "+blur"  # suffix of a baseline whose output gets the same low-pass as the blurred truth


def centre_crop(img: np.ndarray, size: int = STEM_CROP, multiple: int = 4) -> np.ndarray | None:
    """Centre crop of side ``min(size, min(H, W))`` rounded down to ``multiple``; None below 256 px."""
    s = min(size, *img.shape[-2:]) // multiple * multiple
    if s < STEM_MIN_CROP:
        return None
    y, x = (img.shape[-2] - s) // 2, (img.shape[-1] - s) // 2
    return np.ascontiguousarray(img[..., y:y + s, x:x + s], np.float32)


def stem_heldout(folder=None) -> list[tuple[str, str, np.ndarray]]:
    """``(id, modality, crop)`` for each em-real held-out image (crops in [0, 1], see :func:`centre_crop`)."""
    from ...training.em_real import load_em_real

    out = []
    for r in load_em_real(folder, split="heldout"):
        c = centre_crop(r.image)
        if c is not None:
            out.append((r.id, r.modality, c))
    return out


def evaluate_images(model: SuperResolver, images: list[np.ndarray], factor: int) -> dict[str, dict[str, float]]:
    """Per-method means over images of any sizes: raw and blurred-truth RMS/PSNR/SSIM, ms/image.

    Coarse scans follow the model's sampling; ``rms_b``, ``psnr_b``, ``ssim_b`` compare with the
    truth blurred by :func:`~scopenet.tasks.inpaint.data.blur_target`. The row ``bicubic+blur``
    is bicubic given the same low-pass, so smoothing alone earns no credit against the blurred truth.
    """
    from .data import blur_target

    samp = model.sampling
    methods = {m: (lambda c, m=m: upsample(c, factor, m, samp)) for m in ("nearest", "bilinear", "bicubic")}
    methods["model"] = lambda c: model.predict_batch(c[None], factor)[0]
    acc: dict[str, dict[str, list[float]]] = {}
    for fine in images:
        coarse = coarsen(fine, factor, samp)
        fine = fine[:coarse.shape[0] * factor, :coarse.shape[1] * factor]
        fine_b = blur_target(fine)
        preds = {}
        for name, fn in methods.items():
            t0 = time.perf_counter()
            preds[name] = fn(coarse)
            dt = (time.perf_counter() - t0) * 1e3
            acc.setdefault(name, {}).setdefault("ms", []).append(dt)
        preds["bicubic" + BLUR_LP] = blur_target(preds["bicubic"])
        acc.setdefault("bicubic" + BLUR_LP, {}).setdefault("ms", []).append(np.nan)
        for name, pred in preds.items():
            r = acc[name]
            for suffix, truth in (("", fine), ("_b", fine_b)):
                rms, psnr, ssim = _metrics(pred[None], truth[None])
                r.setdefault("rms" + suffix, []).append(rms)
                r.setdefault("psnr" + suffix, []).append(psnr)
                r.setdefault("ssim" + suffix, []).append(ssim)
    order = ["nearest", "bilinear", "bicubic", "bicubic" + BLUR_LP, "model"]
    return {k: {q: float(np.mean(v)) for q, v in acc[k].items()} for k in order}


def stem_table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, size: str) -> str:
    """Markdown table of :func:`evaluate_images` results for several factors."""
    lines = [f"### {title} (n = {n})", "",
             "| scan | method | RMS | PSNR (dB) | SSIM | RMS vs blurred | PSNR vs blurred | SSIM vs blurred "
             "| ms/image |", "|---|---|---|---|---|---|---|---|---|"]
    for f, r in res.items():
        best = min(v["rms"] for k, v in r.items() if k in ("nearest", "bilinear", "bicubic"))
        best_b = min(v["rms_b"] for k, v in r.items() if k != "model")
        for k, v in r.items():
            tag = f" ({v['rms'] / best:.3f}x best interp.)" if k == "model" else ""
            tag_b = f" ({v['rms_b'] / best_b:.3f}x best)" if k == "model" else ""
            ms = "-" if not np.isfinite(v["ms"]) else f"{v['ms']:.2f}"
            lines.append(f"| {size} 1/{f} (x{f}) | {k} | {v['rms']:.4f}{tag} | {v['psnr']:.2f} | {v['ssim']:.4f} | "
                         f"{v['rms_b']:.4f}{tag_b} | {v['psnr_b']:.2f} | {v['ssim_b']:.4f} | {ms} |")
    return "\n".join(lines)


def stem_sim_images(n: int, seed: int = STEM_EVAL_SIM_SEED, size: int = 256) -> np.ndarray:
    """``n`` simulated EM micrographs (``kind="mixed"``) in [0, 1], float32 (n, size, size)."""
    from ...simulate.em.api import simulate_batch

    return unit(simulate_batch(n, size, seed=seed, kind="mixed")["images"])


def stem_benchmark(model: SuperResolver, factors=(2, 4), n_sim: int = 0,
                   folder=None) -> dict[str, tuple[dict[int, dict[str, dict[str, float]]], int]]:
    """STEM results: ``{"stem": (res, n), "all": (res, n)[, "sim": (res, n)]}`` with ``res[factor]``."""
    held = stem_heldout(folder)
    out = {}
    groups = {"stem": [c for _i, m, c in held if m.upper() == "STEM"], "all": [c for _i, _m, c in held]}
    if n_sim > 0:
        groups["sim"] = list(stem_sim_images(n_sim))
    for g, imgs in groups.items():
        out[g] = ({f: evaluate_images(model, imgs, f) for f in factors}, len(imgs))
    return out


def main_stem(a) -> int:
    """``--domain stem``: print the STEM tables."""
    from ...training.em_real import default_folder

    model = SuperResolver.pretrained(a.model or STEM_MODEL)
    print(f"model {model.card.get('name')}: {model.card.get('n_parameters')} parameters, "
          f"sampling {model.sampling}")
    if model.sampling != "decimate":
        print("note: this model expects block-mean coarse scans; the STEM benchmark decimates with its sampling "
              f"({model.sampling}), so the inputs here are block means")
    if default_folder() is None:
        print("skipping: the em-real folder was not found (set SCOPENET_EM_REAL)")
        return 1
    held = stem_heldout()
    print("held-out crops: " + ", ".join(f"{i} ({m}, {c.shape[0]} px)" for i, m, c in held))
    res = stem_benchmark(model, (2, 4), n_sim=a.n_sim)
    titles = {"stem": "em-real held-out, STEM images", "all": "em-real held-out, all modalities",
              "sim": f"simulated EM (mixed, seed {STEM_EVAL_SIM_SEED}, 256 px)"}
    for g, (r, n) in res.items():
        print()
        print(stem_table(titles[g], r, n, "256 px" if g == "sim" else "crop"))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_superres", description=__doc__.splitlines()[0])
    p.add_argument("--domain", choices=("spm", "stem"), default="spm",
                   help="spm: block-mean coarse scans (default); stem: decimated sub-lattice scans of em-real")
    p.add_argument("--model", default=None, help="installed model name or path stem (default spm-x4 / stem-x4)")
    p.add_argument("--n-sim", type=int, default=None,
                   help="held-out simulated images (default 100 for spm, 0 for stem)")
    p.add_argument("--n-real", type=int, default=200, help="held-out real gordon-hsi images (0: skip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ladder", action="store_true",
                   help="spm: also 32 -> 64/128/256 from one coarse scan (the SPM review's setting)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.domain == "stem":
        a.n_sim = 0 if a.n_sim is None else a.n_sim
        return main_stem(a)
    a.n_sim = 100 if a.n_sim is None else a.n_sim
    model = SuperResolver.pretrained(a.model or "spm-x4")
    print(f"model {model.card.get('name')}: {model.card.get('n_parameters')} parameters")
    if a.n_sim > 0:
        fine = sim_images(a.n_sim)
        print(table(f"held-out simulated SPM (seed {EVAL_SIM_SEED})", {f: evaluate(model, fine, f) for f in (4, 2)},
                    len(fine)))
        print()
        if a.ladder:
            fine = sim_images(a.n_sim, size=256)
            print(table(f"held-out simulated SPM, one 32x32 scan to 64/128/256 (seed {EVAL_SIM_SEED}, 256 px)",
                        ladder(model, fine), len(fine), coarse=32))
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
            if a.ladder:
                print()
                print(table(f"gordon-hsi held-out sessions (fold {HOLDOUT_FOLD}), one 32x32 scan to 64/128",
                            ladder(model, fine), len(fine), coarse=32))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
