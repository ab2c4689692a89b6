"""``scopenet bench denoise``: Ede & Beanland's Table 1 protocol (thesis ch. 6) on data no model saw.

Protocol, per example: a clean 512 x 512 crop is min-max scaled to [0, 1]; its dose scale is drawn
from the low-dose (25 + Exp(mean 75)) or the high-dose (Uniform(200, 2500)) distribution;
``noisy = minmax(Poisson(clean * scale))`` and the truth is the clean crop rescaled to the noisy
mean (:func:`scopenet.simulate.em.noise.ede_noisy_pair`). Every method's output is clipped to
[0, 1] (as in the chapter) and scored against the truth: MSE, PSNR (data range 1) and SSIM
(data range 1). Times are wall-clock per 512 x 512 image on this machine, medians.

Data: by default the held-out real micrographs of ``../shared/data/em-real`` (one centre 512 x 512
crop each; 256 px images are upsampled 2x), else held-out simulated images (seeds never used for
training); ``--images DIR`` scores any folder of files scopenet reads. Noise seeds are fixed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ...errors import InputError, ScopenetError

__all__ = ["main", "load_clean_crops", "run_benchmark", "format_table"]

SIZE = 512


def _centre_crop(a: np.ndarray, size: int, bin_factor: int = 1) -> np.ndarray:
    from skimage.transform import resize

    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a[0]
    a = np.nan_to_num(a, nan=float(np.nanmedian(a)))
    if bin_factor > 1:  # Ede's data preparation: bin to raise the signal-to-noise ratio of the truth
        f = bin_factor
        h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
        a = a[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    if min(a.shape) < size:
        f = size / min(a.shape)
        a = resize(a, (int(np.ceil(a.shape[0] * f)), int(np.ceil(a.shape[1] * f))), order=1, anti_aliasing=False)
    h, w = a.shape
    y, x = (h - size) // 2, (w - size) // 2
    c = a[y:y + size, x:x + size]
    lo, hi = c.min(), c.max()
    return ((c - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(c, np.float32)


def load_clean_crops(images: str | Path | None = None, n_sim: int = 8, size: int = SIZE, bin_factor: int = 1
                     ) -> tuple[list, list, str]:
    """The benchmark's clean crops: ``(crops, names, description)``.

    Each image gives one centre ``size`` x ``size`` crop, min-max scaled to [0, 1]; with
    ``bin_factor > 1`` the image is first binned (Ede binned his 2048 px micrographs 2x to raise the
    truth's signal-to-noise ratio); images smaller than ``size`` are upsampled (bilinear).
    """
    if images is not None:
        from ...io.registry import read

        folder = Path(images)
        if not folder.is_dir():
            raise InputError(f"--images {folder}: not a folder")
        crops, names = [], []
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in (".json", ".csv", ".md", ".txt"):
                try:
                    crops.append(_centre_crop(read(p).data, size, bin_factor))
                    names.append(p.name)
                except ScopenetError as exc:
                    print(f"skipping {p.name}: {exc}", file=sys.stderr)
        if not crops:
            raise InputError(f"no readable images in {folder}")
        return crops, names, f"{len(crops)} images from {folder}"
    try:
        from ...training.em_real import load_em_real

        real = load_em_real(split="heldout")
        return ([_centre_crop(r.image, size, bin_factor) for r in real], [r.id for r in real],
                f"em-real held-out split ({len(real)} real micrographs never used in training)")
    except ScopenetError:
        from ...simulate.em import simulate_batch

        crops, names = [], []
        for j, kind in enumerate(("stem", "hrtem", "meso")):
            b = simulate_batch(max(1, n_sim // 3), size=size, seed=9000 + j, kind=kind)
            crops += [_centre_crop(a, size, bin_factor) for a in b["images"]]
            names += [f"sim-{kind}-{i}" for i in range(len(b["images"]))]
        return crops, names, f"{len(crops)} held-out simulated images (seeds 9000-9002)"


def _score(out: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    from ...metrics.image import psnr, ssim

    o = np.clip(out, 0, 1).astype(np.float64)
    t = truth.astype(np.float64)
    return float(np.mean((o - t) ** 2)), float(psnr(t, o, data_range=1.0)), float(ssim(t, o, data_range=1.0))


def run_benchmark(crops: list[np.ndarray], methods: dict, n: int, seed: int = 0, max_slow: dict | None = None,
                  progress: bool = True) -> dict:
    """Score ``methods`` (name -> ``fn(noisy) -> denoised``) on ``n`` examples per dose.

    Example ``i`` of dose ``d`` uses crop ``i % len(crops)`` and noise from
    ``SeedSequence([seed, d, i])``. ``max_slow`` caps how many examples a slow method gets.

    Returns
    -------
    dict ``{dose: {method: {"mse": [...], "psnr": [...], "ssim": [...], "time": [...]}}}``
    """
    from ...simulate.em.noise import ede_noisy_pair

    max_slow = max_slow or {}
    res: dict = {}
    for d, dose in enumerate(("low", "high")):
        res[dose] = {m: {"mse": [], "psnr": [], "ssim": [], "time": []} for m in ["unfiltered", *methods]}
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence([seed, d, i]))
            noisy, truth = ede_noisy_pair(crops[i % len(crops)], rng, dose)
            r = res[dose]["unfiltered"]
            for k, v in zip(("mse", "psnr", "ssim"), _score(noisy, truth)):
                r[k].append(v)
            r["time"].append(0.0)
            for name, fn in methods.items():
                if i >= max_slow.get(name, n):
                    continue
                t0 = time.perf_counter()
                out = fn(noisy)
                dt = time.perf_counter() - t0
                r = res[dose][name]
                for k, v in zip(("mse", "psnr", "ssim"), _score(out, truth)):
                    r[k].append(v)
                r["time"].append(dt)
            if progress:
                print(f"  {dose} dose: example {i + 1}/{n} done", file=sys.stderr, flush=True)
    return res


def _ms(v: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    if not v:
        return "-"
    a = np.asarray(v) * scale
    return (fmt + " ± " + fmt).format(a.mean(), a.std(ddof=1) if len(a) > 1 else 0.0)


def format_table(res: dict, model_name: str | list[str] | None = None) -> str:
    """Markdown table like the chapter's Table 1 plus each model's ratio to the best baseline."""
    if isinstance(model_name, list):
        parts = [format_table(res, m) for m in model_name]
        return parts[0] + "".join("\n" + p.split("\n\n", 1)[1] if "\n\n" in p else "" for p in parts[1:]) \
            if parts else format_table(res)
    methods = list(res["low"])
    lines = ["| method | n (low/high) | low MSE ×1e3 | low PSNR (dB) | low SSIM | high MSE ×1e3 | high PSNR (dB) | high SSIM "
             "| median time (ms) |", "|---" * 9 + "|"]
    for m in methods:
        lo, hi = res["low"][m], res["high"][m]
        times = lo["time"] + hi["time"]
        lines.append(f"| {m} | {len(lo['mse'])}/{len(hi['mse'])} | {_ms(lo['mse'], 1e3)} | {_ms(lo['psnr'], fmt='{:.2f}')}"
                     f" | {_ms(lo['ssim'])} | {_ms(hi['mse'], 1e3)} | {_ms(hi['psnr'], fmt='{:.2f}')} | {_ms(hi['ssim'])}"
                     f" | {np.median(times) * 1e3:.1f} |")
    if model_name and model_name in methods:
        lines.append("")
        lines.append(f"**{model_name}**:")
        base = [m for m in methods if m not in ("unfiltered",) and not m.startswith("model:")]
        for dose in ("low", "high"):
            r = res[dose]
            n_all = len(r[model_name]["mse"])
            full = [m for m in base if len(r[m]["mse"]) == n_all]
            mm, ms = float(np.mean(r[model_name]["mse"])), float(np.mean(r[model_name]["ssim"]))
            if full:
                means = {m: float(np.mean(r[m]["mse"])) for m in full}
                ssims = {m: float(np.mean(r[m]["ssim"])) for m in full}
                best, bests = min(means, key=means.get), max(ssims, key=ssims.get)
                lines.append(f"- {dose} dose, all {n_all} examples: model MSE {mm * 1e3:.3f}e-3 vs best baseline "
                             f"{best} {means[best] * 1e3:.3f}e-3, ratio {mm / means[best]:.3f} "
                             f"({(1 - mm / means[best]) * 100:+.1f}% lower); SSIM {ms:.3f} vs best {bests} "
                             f"{ssims[bests]:.3f}; unfiltered MSE {np.mean(r['unfiltered']['mse']) * 1e3:.3f}e-3")
            for m in base:
                k = len(r[m]["mse"])
                if 0 < k < n_all:
                    a, b = float(np.mean(r[model_name]["mse"][:k])), float(np.mean(r[m]["mse"][:k]))
                    lines.append(f"- {dose} dose vs {m} on its first {k} examples: model MSE {a * 1e3:.3f}e-3 vs "
                                 f"{b * 1e3:.3f}e-3, ratio {a / b:.3f}; SSIM "
                                 f"{np.mean(r[model_name]['ssim'][:k]):.3f} vs {np.mean(r[m]['ssim'][:k]):.3f}")
        tm = np.median(res["low"][model_name]["time"] + res["high"][model_name]["time"])
        if "bm3d" in methods and res["low"]["bm3d"]["time"]:
            tb = np.median(res["low"]["bm3d"]["time"] + res["high"]["bm3d"]["time"])
            lines.append(f"- time: model {tm * 1e3:.0f} ms vs BM3D {tb * 1e3:.0f} ms per image "
                         f"(ratio {tm / tb:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench denoise``; prints the table and returns an exit code."""
    from .baselines import BASELINES, available_baselines

    p = argparse.ArgumentParser(prog="scopenet bench denoise", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=None, help="folder of micrographs (any format scopenet reads)")
    p.add_argument("--n", type=int, default=None, help="examples per dose (default: one per image)")
    p.add_argument("--quick", action="store_true", help="3 examples per dose, no BM3D / NL-means")
    p.add_argument("--model", default="auto", help="denoiser(s) to score, comma-separated: 'auto' (dose-routed "
                                                   "pair), installed names or saved paths; 'none' for baselines only")
    p.add_argument("--methods", default=None, help="comma-separated baselines (default: all available)")
    p.add_argument("--max-slow", type=int, default=4, help="examples per dose for BM3D (slow)")
    p.add_argument("--tta", action="store_true", help="also score the model with 8-fold TTA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=SIZE, help="crop side, px (512 as in the chapter)")
    p.add_argument("--bin", type=int, default=1, help="bin images by this factor before cropping (Ede binned 2x)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    p.add_argument("--json", type=Path, default=None, help="also write the raw per-example results (JSON) here")
    p.add_argument("--reuse", type=Path, default=None,
                   help="JSON from an earlier run with the same data, n and seed: its methods are not rerun "
                        "(their times then come from that run)")
    a = p.parse_args(argv)
    try:
        crops, names, desc = load_clean_crops(a.images, size=a.size, bin_factor=a.bin)
        if a.bin > 1 or a.size != SIZE:
            desc += f"; binned {a.bin}x, {a.size}x{a.size} crops"
        n = a.n or (3 if a.quick else len(crops))
        if n < 1:
            raise InputError("--n must be >= 1")
        names_sel = a.methods.split(",") if a.methods else available_baselines()
        if a.quick and not a.methods:
            names_sel = [m for m in names_sel if m not in ("bm3d", "nl_means")]
        unknown = [m for m in names_sel if m not in BASELINES]
        if unknown:
            raise InputError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
        methods = {m: BASELINES[m] for m in names_sel}
        model_names: list[str] = []
        if a.model != "none":
            import torch

            from .model import Denoiser

            if a.threads:
                torch.set_num_threads(a.threads)
            for spec in a.model.split(","):
                den = Denoiser.pretrained(spec) if "/" not in spec else Denoiser.load(Path(spec))
                den.predict(np.random.default_rng(0).random((64, 64)))  # warm-up
                name = f"model:{den.card_.get('name', spec)}"
                if name in methods:
                    name = f"model:{spec}"
                methods[name] = den.predict
                model_names.append(name)
                if a.tta:
                    methods[name + "+tta"] = (lambda d: (lambda x: d.predict(x, tta=True)))(den)
                    model_names.append(name + "+tta")
        print(f"denoise benchmark: {desc}; {n} examples per dose; seed {a.seed}", file=sys.stderr)
        old = {}
        if a.reuse:
            import json

            prev = json.loads(Path(a.reuse).read_text())
            if prev.get("desc") != desc or prev.get("n") != n or prev.get("seed") != a.seed:
                raise InputError(f"--reuse {a.reuse}: made with other data, n or seed")
            old = {m: prev["results"] for m in list(methods) if m in prev["results"]["low"]
                   and not m.startswith("model:")}
            for m in old:
                methods.pop(m)
        res = run_benchmark(crops, methods, n, a.seed, {"bm3d": a.max_slow})
        for m, r in old.items():
            for dose in ("low", "high"):
                res[dose][m] = r[dose][m]
        order = ["unfiltered", *[m for m in BASELINES if m in res["low"]], *[m for m in res["low"] if m.startswith("model:")]]
        res = {d: {m: res[d][m] for m in order if m in res[d]} for d in res}
        if a.json:
            import json

            from ..._fileutil import atomic_output

            with atomic_output(a.json, overwrite=True) as tmp:
                tmp.write_text(json.dumps({"desc": desc, "n": n, "seed": a.seed, "names": names, "results": res}))
    except ScopenetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_table(res, model_names)
    header = (f"Data: {desc}. Crops {a.size}x{a.size}; Ede ch. 6 dose noise, seed {a.seed}; "
              f"outputs clipped to [0,1]; mean ± sd over examples.")
    print(header)
    print(table)
    if a.out:
        from ..._fileutil import atomic_output

        with atomic_output(a.out, overwrite=True) as tmp:
            tmp.write_text(header + "\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
