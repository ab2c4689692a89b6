"""``scopenet bench denoise``: Ede & Beanland's Table 1 protocol (thesis ch. 6) on data no model saw.

Protocol, per example: a clean 512 x 512 crop is min-max scaled to [0, 1]; its dose scale is drawn
from the low-dose (25 + Exp(mean 75)) or the high-dose (Uniform(200, 2500)) distribution;
``noisy = minmax(Poisson(clean * scale))`` and the truth is the clean crop rescaled to the noisy
mean (:func:`scopenet.simulate.em.noise.ede_noisy_pair`). Every method's output is clipped to
[0, 1] (as in the chapter) and scored against the truth: MSE, PSNR (data range 1) and SSIM
(data range 1). Times are wall-clock per 512 x 512 image on this machine, medians.

Data: by default the held-out real micrographs of ``../shared/data/em-real`` (one centre 512 x 512
crop each; 256 px images are upsampled 2x), else held-out simulated images (seeds never used for
training); ``--images DIR`` scores any folder of files scopenet reads; ``--bin 2`` bins every image
2x2 first (cleaner references, other feature scale). Noise seeds are fixed.

``--degradation physical``: instead of Ede's dose noise, each crop is acquired with a random physical
degradation of one modality (:mod:`scopenet.simulate.em.degrade`: Poisson-Gaussian detector with gain
and offset, read noise, row-line noise, fast-scan lag, scan jitter, line shifts, flyback, drift, MTF,
X-ray spikes, dead pixels, SEM charging), one table column group per modality (TEM, STEM, SEM). Clean
crops: simulated HRTEM (TEM), STEM lattices (STEM) and mesoscale textures (SEM) made at another setting
than any training pool (512 px images, seeds 9100-9102; the training pool uses 256 px, seeds 1000+),
or ``--images``. Noisy and truth are mapped by the noisy image's robust percentiles (0.1, 99.9) and
clipped to [0, 1]; every method gets that input.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ...errors import InputError, ScopenetError
from ...image.scaling import unit_scale
from .._bench import BenchSpec, Report, Table, card_field, compare_with_best, image_scores, mean_sd, timed_loop

__all__ = ["main", "SPEC", "load_clean_crops", "load_modality_crops", "run_benchmark", "run_physical", "build_tables",
           "build_modality_table", "format_table"]

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
    return unit_scale(a[y:y + size, x:x + size])[0]


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


#: clean content per modality for the physical protocol (simulated kind)
MODALITY_KINDS = {"tem": "hrtem", "stem": "stem", "sem": "meso"}


def load_modality_crops(n_per_kind: int = 4, size: int = SIZE, bin_factor: int = 1, images=None
                        ) -> tuple[dict, str]:
    """Clean crops for the physical protocol: ``({modality: [crops]}, description)``.

    Held-out simulated images at a setting no training pool uses (``size`` px images; seeds 9100-9102),
    or with ``images`` the same folder for every modality.
    """
    if images is not None:
        crops, _, desc = load_clean_crops(images, size=size, bin_factor=bin_factor)
        return {m: crops for m in MODALITY_KINDS}, desc
    from ...simulate.em import simulate_batch

    out = {}
    for j, (mod, kind) in enumerate(MODALITY_KINDS.items()):
        b = simulate_batch(n_per_kind, size=size * bin_factor, seed=9100 + j, kind=kind)
        out[mod] = [_centre_crop(a, size, bin_factor) for a in b["images"]]
    return out, (f"held-out simulated images ({n_per_kind} per modality: HRTEM->TEM, STEM->STEM, meso->SEM; "
                 f"{size * bin_factor} px, seeds 9100-9102)")


def run_physical(crops: dict, methods: dict, n: int, seed: int = 0, max_slow: dict | None = None,
                 progress: bool = True) -> dict:
    """Score ``methods`` on ``n`` physically degraded examples per modality.

    Example ``i`` of modality ``m`` (index ``k``) uses crop ``i % len(crops[m])`` and the degradation and
    noise of ``SeedSequence([seed, 100 + k, i])``.

    Returns
    -------
    dict ``{modality: {method: {"mse": [...], "psnr": [...], "ssim": [...], "time": [...]}}}``
    """
    from .pairs import physical_pair

    todo = {"unfiltered": lambda x: x, **methods}
    res: dict = {}
    for k, mod in enumerate(crops):
        def examples(k=k, mod=mod):
            for i in range(n):
                rng = np.random.default_rng(np.random.SeedSequence([seed, 100 + k, i]))
                yield physical_pair(crops[mod][i % len(crops[mod])], rng, mod)

        def report(i, _ex, _todo, mod=mod):
            if progress:
                print(f"  {mod}: example {i + 1}/{n} done", file=sys.stderr, flush=True)

        res[mod] = timed_loop(examples(), todo, _score, limits=max_slow,
                              results={m: {"mse": [], "psnr": [], "ssim": [], "time": []} for m in todo},
                              progress=report)
    return res


def build_modality_table(res: dict, model_names: list[str]) -> Table:
    """Per-modality MSE/SSIM of every method, and notes comparing each model with the best classical
    filter (and the unfiltered input) in each modality, plus the time ratio to BM3D."""
    mods = list(res)
    methods = list(res[mods[0]])
    cols = ["method"] + [c for m in mods for c in (f"{m.upper()} MSE ×1e3", f"{m.upper()} SSIM")] + [
        "median time (ms)"]
    t = Table(cols)
    for meth in methods:
        row = [meth]
        for m in mods:
            r = res[m][meth]
            row += [mean_sd(r["mse"], 1e3), mean_sd(r["ssim"])]
        row.append(f"{np.median([x for m in mods for x in res[m][meth]['time']]) * 1e3:.1f}")
        t.add(*row)
    for model in model_names:
        t.notes += ([""] if t.notes else []) + [f"**{model}**:"]
        for m in mods:
            r = res[m]
            n_all = len(r[model]["mse"])
            full = [x for x in r if not _is_model(x) and len(r[x]["mse"]) == n_all]
            mse = {x: float(np.mean(r[x]["mse"])) for x in [*full, model]}
            filters = {x: v for x, v in mse.items() if x != "unfiltered" and not _is_model(x)}
            best = min(filters, key=filters.get) if filters else None
            line = f"- {m.upper()}, {n_all} examples: " + compare_with_best(model, mse, "MSE", scale=1e3, unit="e-3")
            if best:
                line += f"; ratio to the best classical filter ({best}): {mse[model] / filters[best]:.3f}"
            t.notes.append(line)
            if "bm3d" in r and 0 < len(r["bm3d"]["mse"]) < n_all:
                kk = len(r["bm3d"]["mse"])
                a, b = float(np.mean(r[model]["mse"][:kk])), float(np.mean(r["bm3d"]["mse"][:kk]))
                t.notes.append(f"- {m.upper()} vs bm3d on its first {kk} examples: ratio {a / b:.3f}")
        tm = np.median([x for m in mods for x in res[m][model]["time"]])
        tb = [x for m in mods for x in res[m].get("bm3d", {}).get("time", [])]
        if tb:
            t.notes.append(f"- time: model {tm * 1e3:.0f} ms vs BM3D {np.median(tb) * 1e3:.0f} ms per image "
                           f"(ratio {tm / np.median(tb):.3f})")
    return t


def _score(out: np.ndarray, ex) -> dict[str, float]:
    return image_scores(ex[1], out, ("mse", "psnr", "ssim"), data_range=1.0, clip=(0.0, 1.0))


def run_benchmark(crops: list[np.ndarray], methods: dict, n: int, seed: int = 0, max_slow: dict | None = None,
                  progress: bool = True, dose_methods: dict | None = None) -> dict:
    """Score ``methods`` (name -> ``fn(noisy) -> denoised``) on ``n`` examples per dose.

    Example ``i`` of dose ``d`` uses crop ``i % len(crops)`` and noise from
    ``SeedSequence([seed, d, i])``. ``max_slow`` caps how many examples a slow method gets. The
    noisy input itself is scored as the row ``unfiltered`` (the identity method). ``dose_methods``
    (name -> ``fn(noisy, dose) -> denoised``) are also told the example's mean counts per pixel (the
    drawn scale times the mean of the [0, 1] clean crop), as a user who knows the dose would.

    Returns
    -------
    dict ``{dose: {method: {"mse": [...], "psnr": [...], "ssim": [...], "time": [...]}}}``
    """
    from ...simulate.em.noise import ede_noisy_pair

    todo = {"unfiltered": lambda x: x, **methods}
    dose_methods = dose_methods or {}

    def with_dose(_i, ex):
        return {**todo, **{k: (lambda x, f=f, c=ex[2]: f(x, c)) for k, f in dose_methods.items()}}

    res: dict = {}
    for d, dose in enumerate(("low", "high")):
        def examples(d=d, dose=dose):
            for i in range(n):
                rng = np.random.default_rng(np.random.SeedSequence([seed, d, i]))
                crop = crops[i % len(crops)]
                noisy, truth, scale = ede_noisy_pair(crop, rng, dose, return_scale=True)
                yield noisy, truth, float(scale * np.mean(unit_scale(crop)[0]))

        def report(i, _ex, _todo, dose=dose):
            if progress:
                print(f"  {dose} dose: example {i + 1}/{n} done", file=sys.stderr, flush=True)

        res[dose] = timed_loop(examples(), with_dose, _score, limits=max_slow,
                               results={m: {"mse": [], "psnr": [], "ssim": [], "time": []}
                                        for m in [*todo, *dose_methods]},
                               progress=report)
    return res


def _is_model(m: str) -> bool:
    return m.startswith("model:")


def build_tables(res: dict, model_name: str | list[str] | None = None) -> Table:
    """The chapter's Table 1 (every method, the noisy input as ``unfiltered``) with, as notes, each
    model compared with the best of all other rows: the filters *and* the unfiltered input."""
    models = [model_name] if isinstance(model_name, str) else list(model_name or [])
    methods = list(res["low"])
    t = Table(["method", "n (low/high)", "low MSE ×1e3", "low PSNR (dB)", "low SSIM", "high MSE ×1e3",
               "high PSNR (dB)", "high SSIM", "median time (ms)"])
    for m in methods:
        lo, hi = res["low"][m], res["high"][m]
        t.add(m, f"{len(lo['mse'])}/{len(hi['mse'])}", mean_sd(lo["mse"], 1e3), mean_sd(lo["psnr"], fmt="{:.2f}"),
              mean_sd(lo["ssim"]), mean_sd(hi["mse"], 1e3), mean_sd(hi["psnr"], fmt="{:.2f}"), mean_sd(hi["ssim"]),
              f"{np.median(lo['time'] + hi['time']) * 1e3:.1f}")
    for model in (m for m in models if m in methods):
        t.notes += ([""] if t.notes else []) + [f"**{model}**:"]
        others = [m for m in methods if not _is_model(m)]  # the noisy input and every baseline
        for dose in ("low", "high"):
            r = res[dose]
            n_all = len(r[model]["mse"])
            full = [m for m in others if len(r[m]["mse"]) == n_all]
            if full:
                mse = {m: float(np.mean(r[m]["mse"])) for m in [*full, model]}
                ssim = {m: float(np.mean(r[m]["ssim"])) for m in [*full, model]}
                t.notes.append(f"- {dose} dose, all {n_all} examples: "
                               + compare_with_best(model, mse, "MSE", scale=1e3, unit="e-3")
                               + "; " + compare_with_best(model, ssim, "SSIM", lower_is_better=False))
            for m in others:
                k = len(r[m]["mse"])
                if 0 < k < n_all:
                    a, b = float(np.mean(r[model]["mse"][:k])), float(np.mean(r[m]["mse"][:k]))
                    t.notes.append(f"- {dose} dose vs {m} on its first {k} examples: model MSE {a * 1e3:.3f}e-3 vs "
                                   f"{b * 1e3:.3f}e-3, ratio {a / b:.3f}; SSIM "
                                   f"{np.mean(r[model]['ssim'][:k]):.3f} vs {np.mean(r[m]['ssim'][:k]):.3f}")
        tm = np.median(res["low"][model]["time"] + res["high"][model]["time"])
        if "bm3d" in methods and res["low"]["bm3d"]["time"]:
            tb = np.median(res["low"]["bm3d"]["time"] + res["high"]["bm3d"]["time"])
            t.notes.append(f"- time: model {tm * 1e3:.0f} ms vs BM3D {tb * 1e3:.0f} ms per image "
                           f"(ratio {tm / tb:.3f})")
    return t


def format_table(res: dict, model_name: str | list[str] | None = None) -> str:
    """:func:`build_tables` as markdown."""
    return build_tables(res, model_name).markdown()


def _options(p) -> None:
    p.add_argument("--n", type=int, default=None, help="examples per dose (default: one per image)")
    p.add_argument("--model", default="auto", help="denoiser(s) to score, comma-separated: 'auto' (dose-routed "
                                                   "pair), installed names or saved paths; 'none' for baselines only")
    p.add_argument("--methods", default=None, help="comma-separated baselines (default: all available)")
    p.add_argument("--max-slow", type=int, default=4, help="examples per dose for BM3D (slow)")
    p.add_argument("--tta", action="store_true", help="also score the model with 8-fold TTA")
    p.add_argument("--dose-known", action="store_true",
                   help="poisson protocol: also score each model told the example's mean counts per pixel "
                        "(predict(dose=...): it removes no more than that shot noise)")
    p.add_argument("--size", type=int, default=SIZE, help="crop side, px (512 as in the chapter)")
    p.add_argument("--bin", type=int, default=1, help="bin images by this factor before cropping (Ede binned 2x)")
    p.add_argument("--degradation", choices=("poisson", "physical"), default="poisson",
                   help="poisson: Ede's dose protocol (low/high dose); physical: random TEM/STEM/SEM acquisitions "
                        "(scopenet.simulate.em.degrade), one column group per modality")
    p.add_argument("--reuse", type=Path, default=None,
                   help="JSON from an earlier run with the same data, n and seed: its methods are not rerun "
                        "(their times then come from that run)")


def run(a, report: Report) -> int:
    """``scopenet bench denoise`` on the harness: prints the table and the model-vs-best summary."""
    from .baselines import BASELINES, available_baselines

    physical = a.degradation == "physical"
    if physical:
        mcrops, desc = load_modality_crops(2 if a.quick else 4, a.size, a.bin, a.images)
        crops, names = [], list(mcrops)
    else:
        crops, names, desc = load_clean_crops(a.images, size=a.size, bin_factor=a.bin)
    if a.bin > 1 or a.size != SIZE:
        desc += f"; binned {a.bin}x, {a.size}x{a.size} crops"
    n = a.n or (3 if a.quick else (6 if physical else len(crops)))
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
    dose_methods: dict = {}
    if a.model != "none":
        from .fusion import load_denoiser

        for spec in a.model.split(","):
            den = load_denoiser(spec)  # a fusion card gives a FusionDenoiser
            den.predict(np.random.default_rng(0).random((64, 64)))  # warm-up
            name = f"model:{card_field(den, 'name', spec)}"
            if name in methods:
                name = f"model:{spec}"
            methods[name] = den.predict
            model_names.append(name)
            if a.tta:
                methods[name + "+tta"] = (lambda d: (lambda x: d.predict(x, tta=8)))(den)
                model_names.append(name + "+tta")
            if a.dose_known and not physical:
                dose_methods[name + ", dose given"] = (lambda d: (lambda x, c: d.predict(x, dose=c)))(den)
                model_names.append(name + ", dose given")
    if physical:
        print(f"denoise benchmark (physical): {desc}; {n} examples per modality; seed {a.seed}", file=sys.stderr)
        old = {}
        if a.reuse:
            prev = json.loads(Path(a.reuse).read_text())
            if prev.get("desc") != desc or prev.get("n") != n or prev.get("seed") != a.seed \
                    or prev.get("degradation") != "physical":
                raise InputError(f"--reuse {a.reuse}: made with other data, n, seed or degradation")
            first = next(iter(prev["results"].values()))
            old = {m: prev["results"] for m in list(methods) if m in first and not _is_model(m)}
            for m in old:
                methods.pop(m)
        res = run_physical(mcrops, methods, n, a.seed, {"bm3d": a.max_slow})
        for m, r in old.items():
            for mod in res:
                res[mod][m] = r[mod][m]
        order = ["unfiltered", *[m for m in BASELINES if m in res[next(iter(res))]], *model_names]
        res = {d: {m: res[d][m] for m in order if m in res[d]} for d in res}
        report.data.update({"desc": desc, "n": n, "seed": a.seed, "degradation": "physical", "results": res})
        report.line(f"Data: {desc}. Crops {a.size}x{a.size}; physical degradation (scopenet.simulate.em.degrade."
                    f"random_degradation per modality), seed {a.seed}; noisy and truth mapped by the noisy image's "
                    f"robust percentiles (0.1, 99.9) and clipped to [0,1]; outputs clipped to [0,1]; mean ± sd.")
        report.table(build_modality_table(res, model_names))
        return 0
    print(f"denoise benchmark: {desc}; {n} examples per dose; seed {a.seed}", file=sys.stderr)
    old = {}
    if a.reuse:
        prev = json.loads(Path(a.reuse).read_text())
        if prev.get("desc") != desc or prev.get("n") != n or prev.get("seed") != a.seed:
            raise InputError(f"--reuse {a.reuse}: made with other data, n or seed")
        old = {m: prev["results"] for m in list(methods) if m in prev["results"]["low"] and not _is_model(m)}
        for m in old:
            methods.pop(m)
    res = run_benchmark(crops, methods, n, a.seed, {"bm3d": a.max_slow}, dose_methods=dose_methods)
    for m, r in old.items():
        for dose in ("low", "high"):
            res[dose][m] = r[dose][m]
    order = ["unfiltered", *[m for m in BASELINES if m in res["low"]], *[m for m in res["low"] if _is_model(m)]]
    res = {d: {m: res[d][m] for m in order if m in res[d]} for d in res}
    report.data.update({"desc": desc, "n": n, "seed": a.seed, "names": names, "results": res})
    report.line(f"Data: {desc}. Crops {a.size}x{a.size}; Ede ch. 6 dose noise, seed {a.seed}; "
                f"outputs clipped to [0,1]; mean ± sd over examples.")
    report.table(build_tables(res, model_names))
    return 0


SPEC = BenchSpec("denoise", __doc__, run, _options, quick="3 examples per dose, no BM3D / NL-means",
                 images="folder of micrographs (any format scopenet reads) instead of em-real held-out",
                 json_help="also write the raw per-example results (JSON: desc, n, seed, names, results) here")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench denoise``; prints the table and returns an exit code."""
    return SPEC.main(argv)


if __name__ == "__main__":
    sys.exit(main())
