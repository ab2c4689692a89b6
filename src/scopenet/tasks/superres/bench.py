"""Benchmark: super-resolution of coarse SPM scans, model vs nearest / bilinear / bicubic.

SPM (default, ``--domain spm``): fine 128x128 images (held-out simulated SPM images, and real
gordon-hsi STM images from sessions the shipped model never saw) are block-mean downsampled to
32x32 (x4) and 64x64 (x2) -- the coarse scan -- and upsampled back. Errors are on images scaled to
[0, 1] per fine image::

    scopenet bench superres [--n-sim 100] [--n-real 200] [--model spm-x4]

``--ladder`` adds the SPM review's setting: one 32x32 coarse scan of a field of view imaged at
256x256, super-resolved to 64, 128 and 256 pixels (x2, x4, x8); each target is the 256x256 image
block-averaged to that size (simulated images; real gordon-hsi images, 128x128, give 64 and 128).

STEM (``--domain stem``): centre crops (512x512, or the largest square multiple of 4 that fits, at
least 256) of the em-real held-out micrographs -- the test set of the inpainting and denoising
benchmarks, never used in training -- are decimated (``fine[::f, ::f]``, a STEM sub-lattice scan)
by 2 and 4 and upsampled back with interpolation aligned to that grid. Errors against the crop and
against the crop blurred by the 5x5, sigma 2.5 px Gaussian (``blur_target``; the crops are noisy);
tables for the STEM images and for all modalities::

    scopenet bench superres --domain stem [--model stem-x4] [--n-sim 0]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...image.scaling import unit_scale
from .._bench import BenchSpec, Report, Table, best_of, card_field, compare_with_best, image_scores, timed_loop
from .model import STEM_MODEL, SuperResolver, coarsen, upsample

HSI_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "gordon-hsi"
EVAL_SIM_SEED = 90_210  # training uses other seeds (see scripts/train_superres.py)
HOLDOUT_FOLD = 0  # session_folds(k=5, seed=0) fold kept out of training


def unit(images: np.ndarray) -> np.ndarray:
    """Scale each image of ``(N, H, W)`` to [0, 1] (constant images to 0)."""
    return np.stack([unit_scale(a)[0] for a in np.asarray(images, np.float32)])


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


def _sampling(model) -> str:
    return getattr(model, "sampling", None) or card_field(model, "sampling", "block_mean")


def _predict_stack(model, coarse: np.ndarray, factor: int, batch: int = 32) -> np.ndarray:
    """The model's output for a stack of coarse scans already in [0, 1] (batched where it can)."""
    if hasattr(model, "predict_batch"):
        return np.concatenate([model.predict_batch(coarse[i:i + batch], factor) for i in range(0, len(coarse), batch)])
    return np.stack([model.predict(c, factor=factor) for c in coarse])


def _interpolators(factor: int, sampling: str) -> dict:
    """nearest (the coarse scan as it is, each sample repeated), bilinear and bicubic on the scan's grid."""
    return {m: (lambda c, m=m: np.stack([upsample(x, factor, m, sampling) for x in c]) if c.ndim == 3
                else upsample(c, factor, m, sampling)) for m in ("nearest", "bilinear", "bicubic")}


def evaluate(model: SuperResolver, fine: np.ndarray, factor: int, batch: int = 32) -> dict[str, dict[str, float]]:
    """RMS, PSNR (dB), SSIM and ms/image of each method at one factor on fine images in [0, 1].

    Coarse inputs are made from ``fine`` by the model's sampling (block means for SPM models,
    decimation for STEM ones) and interpolated on the same grid convention; every method gets the
    same coarse input, outputs are compared with ``fine`` without clipping (metrics: per-image
    means of :mod:`scopenet.metrics.image`, data range 1).
    """
    samp = _sampling(model)
    coarse = coarsen(fine, factor, samp)
    methods = {**_interpolators(factor, samp), "model": lambda c: _predict_stack(model, c, factor, batch)}
    res = timed_loop([(coarse, fine)], methods, lambda pred, ex: image_scores(ex[1], pred))
    return {k: {"rms": v["rms"][0], "psnr": v["psnr"][0], "ssim": v["ssim"][0],
                "ms": v["time"][0] / len(coarse) * 1e3} for k, v in res.items()}


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


def _summary(scan: str, r: dict[str, dict[str, float]], key: str = "rms", exclude=()) -> str:
    """The model against the best of all other rows (nearest = the coarse scan as it is, included)."""
    scores = {k: v[key] for k, v in r.items() if k not in exclude}
    return f"- {scan}: " + compare_with_best("model", scores, "RMS" + ("" if key == "rms" else " vs blurred"),
                                             fmt="{:.4f}")


def sr_table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, coarse: int | None = None,
             size: int = 128) -> Table:
    """:class:`Table` of :func:`evaluate` results keyed by factor (fine images of ``size`` px), or, with
    ``coarse``, of a :func:`ladder` result keyed by target size from one ``coarse``-pixel scan."""
    t = Table(["scan", "method", "RMS", "PSNR (dB)", "SSIM", "ms/image"], title=f"{title} (n = {n})")
    for key, r in res.items():
        f, sz = (key // coarse, key) if coarse else (key, size)
        scan = f"{sz // f}->{sz} (x{f})"
        best = best_of({k: v["rms"] for k, v in r.items()}, exclude=["model"])[1]
        for k, v in r.items():
            tag = f" ({v['rms'] / best:.3f}x best interp.)" if k == "model" else ""
            t.add(scan, k, f"{v['rms']:.4f}{tag}", f"{v['psnr']:.2f}", f"{v['ssim']:.4f}", f"{v['ms']:.2f}")
        t.notes.append(_summary(scan, r))
    return t


def table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, coarse: int | None = None) -> str:
    """:func:`sr_table` as markdown."""
    return sr_table(title, res, n, coarse).markdown()


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
    from ..inpaint.data import blur_target

    samp = _sampling(model)

    def examples():
        for fine in images:
            coarse = coarsen(fine, factor, samp)
            fine = fine[:coarse.shape[0] * factor, :coarse.shape[1] * factor]
            yield coarse, fine, blur_target(fine)

    def score(pred, ex):
        raw, blurred = image_scores(ex[1], pred), image_scores(ex[2], pred)
        return {**raw, **{k + "_b": v for k, v in blurred.items()}}

    methods = {**_interpolators(factor, samp), "model": lambda c: model.predict_batch(c[None], factor)[0]
               if hasattr(model, "predict_batch") else model.predict(c, factor=factor)}
    res: dict = {}

    def blurred_bicubic(name, pred, ex):
        if name == "bicubic":  # the same low-pass as the blurred truth; not timed
            r = res.setdefault("bicubic" + BLUR_LP, {})
            for k, v in score(blur_target(pred), ex).items():
                r.setdefault(k, []).append(v)
            r.setdefault("time", []).append(np.nan)

    timed_loop(examples(), methods, score, results=res, on_output=blurred_bicubic)
    order = ["nearest", "bilinear", "bicubic", "bicubic" + BLUR_LP, "model"]
    out = {}
    for k in order:
        out[k] = {q: float(np.mean(v)) for q, v in res[k].items() if q != "time"}
        out[k]["ms"] = float(np.mean(res[k]["time"]) * 1e3)
    return out


def stem_sr_table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, size: str) -> Table:
    """:class:`Table` of :func:`evaluate_images` results for several factors."""
    t = Table(["scan", "method", "RMS", "PSNR (dB)", "SSIM", "RMS vs blurred", "PSNR vs blurred", "SSIM vs blurred",
               "ms/image"], title=f"{title} (n = {n})")
    for f, r in res.items():
        best = best_of({k: v["rms"] for k, v in r.items() if k in ("nearest", "bilinear", "bicubic")})[1]
        best_b = best_of({k: v["rms_b"] for k, v in r.items()}, exclude=["model"])[1]
        scan = f"{size} 1/{f} (x{f})"
        for k, v in r.items():
            tag = f" ({v['rms'] / best:.3f}x best interp.)" if k == "model" else ""
            tag_b = f" ({v['rms_b'] / best_b:.3f}x best)" if k == "model" else ""
            ms = "-" if not np.isfinite(v["ms"]) else f"{v['ms']:.2f}"
            t.add(scan, k, f"{v['rms']:.4f}{tag}", f"{v['psnr']:.2f}", f"{v['ssim']:.4f}", f"{v['rms_b']:.4f}{tag_b}",
                  f"{v['psnr_b']:.2f}", f"{v['ssim_b']:.4f}", ms)
        t.notes.append(_summary(scan, r, exclude=["bicubic" + BLUR_LP]))
        t.notes.append(_summary(scan, r, "rms_b"))
    return t


def stem_table(title: str, res: dict[int, dict[str, dict[str, float]]], n: int, size: str) -> str:
    """:func:`stem_sr_table` as markdown."""
    return stem_sr_table(title, res, n, size).markdown()


def stem_sim_images(n: int, seed: int = STEM_EVAL_SIM_SEED, size: int = 256) -> np.ndarray:
    """``n`` simulated EM micrographs (``kind="mixed"``) in [0, 1], float32 (n, size, size)."""
    from ...simulate.em.api import simulate_batch

    return unit(simulate_batch(n, size, seed=seed, kind="mixed")["images"])


def stem_benchmark(model: SuperResolver, factors=(2, 4), n_sim: int = 0,
                   folder=None, seed: int = STEM_EVAL_SIM_SEED) -> dict[str, tuple[dict[int, dict[str, dict[str, float]]], int]]:
    """STEM results: ``{"stem": (res, n), "all": (res, n)[, "sim": (res, n)]}`` with ``res[factor]``."""
    held = stem_heldout(folder)
    out = {}
    groups = {"stem": [c for _i, m, c in held if m.upper() == "STEM"], "all": [c for _i, _m, c in held]}
    if n_sim > 0:
        groups["sim"] = list(stem_sim_images(n_sim, seed))
    for g, imgs in groups.items():
        out[g] = ({f: evaluate_images(model, imgs, f) for f in factors}, len(imgs))
    return out


def _folder_images(folder: Path, max_side: int = STEM_CROP) -> list[tuple[str, np.ndarray]]:
    """``--images``: each readable file's first 2-D image, centre-cropped square (side a multiple of 4,
    at most ``max_side``, at least 32 px) and scaled to [0, 1]."""
    from ...errors import InputError, ScopenetError
    from ...io.registry import read

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--images {folder}: not a folder")
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        try:
            d = np.asarray(read(p).data, np.float64)
        except ScopenetError as exc:
            print(f"skipping {p.name}: {exc}")
            continue
        d = d if d.ndim == 2 else d.reshape(-1, *d.shape[-2:])[0]
        side = min(max_side, *d.shape) // 4 * 4
        if side < 32:
            print(f"skipping {p.name}: smaller than 32 px")
            continue
        y, x = (d.shape[0] - side) // 2, (d.shape[1] - side) // 2
        out.append((p.name, unit_scale(d[y:y + side, x:x + side])[0]))
    if not out:
        raise InputError(f"no readable images in {folder}")
    return out


def _model(a) -> SuperResolver:
    name = a.model or (STEM_MODEL if a.domain == "stem" else "spm-x4")
    if Path(str(name) + ".safetensors").exists() or Path(str(name)).suffix == ".safetensors":
        return SuperResolver.load(name)
    return SuperResolver.pretrained(name)


def _run_images(a, model, report: Report) -> int:
    imgs = _folder_images(a.images)
    report.line("images: " + ", ".join(f"{n} ({c.shape[0]} px)" for n, c in imgs))
    factors = (2, 4) if a.domain == "stem" else (4, 2)
    res = {f: evaluate_images(model, [c for _n, c in imgs], f) for f in factors}
    report.data["results"] = {"images": res}
    report.table(stem_sr_table(f"{a.images}", res, len(imgs), "crop"))
    return 0


def main_stem(a, report: Report | None = None) -> int:
    """``--domain stem``: print the STEM tables."""
    from ...training.em_real import default_folder

    report = report or Report("superres")
    model = _model(a)
    samp = _sampling(model)
    report.line(f"model {card_field(model, 'name')}: {card_field(model, 'n_parameters')} parameters, sampling {samp}")
    if samp != "decimate":
        report.line("note: this model expects block-mean coarse scans; the STEM benchmark decimates with its sampling "
                    f"({samp}), so the inputs here are block means")
    if getattr(a, "images", None):
        return _run_images(a, model, report)
    if default_folder() is None:
        report.line("skipping: the em-real folder was not found (set SCOPENET_EM_REAL)")
        return 1
    held = stem_heldout()
    report.line("held-out crops: " + ", ".join(f"{i} ({m}, {c.shape[0]} px)" for i, m, c in held))
    seed = a.seed if getattr(a, "seed", None) is not None else STEM_EVAL_SIM_SEED
    res = stem_benchmark(model, (2, 4), n_sim=a.n_sim, seed=seed)
    titles = {"stem": "em-real held-out, STEM images", "all": "em-real held-out, all modalities",
              "sim": f"simulated EM (mixed, seed {seed}, 256 px)"}
    report.data["results"] = {g: r for g, (r, _n) in res.items()}
    for g, (r, n) in res.items():
        report.line()
        report.table(stem_sr_table(titles[g], r, n, "256 px" if g == "sim" else "crop"))
    return 0


def _options(p) -> None:
    p.add_argument("--domain", choices=("spm", "stem"), default="spm",
                   help="spm: block-mean coarse scans (default); stem: decimated sub-lattice scans of em-real")
    p.add_argument("--model", default=None, help="installed model name or path stem (default spm-x4 / stem-x4)")
    p.add_argument("--n-sim", type=int, default=None,
                   help="held-out simulated images (default 100 for spm, quick 20; 0 for stem)")
    p.add_argument("--n-real", type=int, default=None,
                   help="held-out real gordon-hsi images (default 200, quick 40; 0: skip)")
    p.add_argument("--ladder", action="store_true",
                   help="spm: also 32 -> 64/128/256 from one coarse scan (the SPM review's setting)")


def run(a, report: Report) -> int:
    """``scopenet bench superres`` on the harness."""
    report.data.update({"domain": a.domain})
    if a.domain == "stem":
        a.n_sim = 0 if a.n_sim is None else a.n_sim
        return main_stem(a, report)
    a.n_sim = (20 if a.quick else 100) if a.n_sim is None else a.n_sim
    a.n_real = (40 if a.quick else 200) if a.n_real is None else a.n_real
    seed = EVAL_SIM_SEED if a.seed is None else a.seed
    model = _model(a)
    report.line(f"model {card_field(model, 'name')}: {card_field(model, 'n_parameters')} parameters")
    if a.images:
        return _run_images(a, model, report)
    results = report.data.setdefault("results", {})
    if a.n_sim > 0:
        fine = sim_images(a.n_sim, seed=seed)
        results["sim"] = {f: evaluate(model, fine, f) for f in (4, 2)}
        report.table(sr_table(f"held-out simulated SPM (seed {seed})", results["sim"], len(fine)))
        report.line()
        if a.ladder:
            fine = sim_images(a.n_sim, seed=seed, size=256)
            results["sim_ladder"] = ladder(model, fine)
            report.table(sr_table(f"held-out simulated SPM, one 32x32 scan to 64/128/256 (seed {seed}, 256 px)",
                                  results["sim_ladder"], len(fine), coarse=32))
            report.line()
    if a.n_real > 0:
        if not HSI_DIR.exists():
            report.line(f"skipping real images: {HSI_DIR} not found")
        else:
            imgs, _tr, te = real_split()
            idx = np.random.default_rng(0).permutation(te)[:a.n_real]
            fine = imgs[np.sort(idx)]
            results["real"] = {f: evaluate(model, fine, f) for f in (4, 2)}
            report.table(sr_table(f"gordon-hsi held-out sessions (fold {HOLDOUT_FOLD})", results["real"], len(fine)))
            if a.ladder:
                report.line()
                results["real_ladder"] = ladder(model, fine)
                report.table(sr_table(f"gordon-hsi held-out sessions (fold {HOLDOUT_FOLD}), one 32x32 scan to 64/128",
                                      results["real_ladder"], len(fine), coarse=32))
    return 0


SPEC = BenchSpec("superres", __doc__, run, _options, seed=None, threads=1,
                 quick="spm: 20 simulated and 40 real images (explicit --n-sim/--n-real win)",
                 images="folder of fine images (any format scopenet reads; centre crops, scaled to [0, 1]) "
                        "instead of the default data")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench superres``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
