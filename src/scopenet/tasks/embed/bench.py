"""``scopenet bench embed``: the micrograph search engine on held-out simulated and real images.

Methods: the VAE (codes = latent means) as ``sn.embed`` runs it by default (each input in its canonical
view, one network pass), without the canonical view (``orient none``) and with the 8 flips/rotations
averaged (``tta 8``, 8 passes), against two classical 64-number codes, 8x8 area-averaged pixels and 64 PCA
components (fitted on the simulated training seeds), all with Euclidean nearest-neighbour search. Sets (none of them seen in training):

- **simulated**: ``simulate.em`` STEM/HRTEM/meso micrographs (192 px, seed :data:`BENCH_SIM_SEED`, 70 %
  with realistic noise) and ``simulate.spm`` STM images of the five surfaces (128 px, seed
  :data:`BENCH_SIM_SEED` + 1); the labels are the simulator's (8 categories);
- **real**: the em-real held-out split, gordon-hsi STM images of the held-out session fold 0, and the
  readable images of ``../shared/fixtures`` (instrument files the model never saw); labels are
  modalities (STEM, TEM, HRTEM, SEM, STM/SPM).

Figures, per set and method:

- *self rank-1*: each image re-embedded alone is its own nearest neighbour in the gallery embedded in
  batches (strictly nearer than every other image);
- *copy in top 5*: a rotated (90, 180 or 270 degrees), flipped (left-right or up-down) or re-noised
  (Poisson noise at 300 counts at the image maximum, on top of its own noise) copy finds the
  original among its 5 nearest gallery images;
- *purity@5*: the fraction of each image's 5 nearest other images with its label (and the chance level).

Then embedding throughput on the CPU (96x96 inputs: the default ``sn.embed`` path on a stack and on a
list of arrays, the network alone, ``tta 8``; with one thread and with torch's default threads) and
search latency on a synthetic index of 1,000,000 codes (exact numpy; the usearch HNSW backend on
100,000 of them with its build time, and latency and recall@5 against exact at four
``expansion_search`` settings).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError
from .._bench import BenchSpec, Report, Table

BENCH_SIM_SEED = 1021  # training uses TRAIN_SIM_SEED (21, 22)
FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures"
TRANSFORMS = ("rot90", "rot180", "rot270", "flip-lr", "flip-ud", "renoise")
#: usearch ``expansion_search`` settings timed besides the index default
EXPANSION_ROWS = (128, 512, 2048)


# ------------------------------------------------------------------------------------------ data
def sim_set(n_em: int, n_spm: int, seed: int = BENCH_SIM_SEED) -> tuple[list[np.ndarray], list[str]]:
    """Held-out simulated images (``n_em`` per EM kind, ``n_spm`` STM) and their simulator labels."""
    from .data import sim_em, sim_spm

    im, lab, _ = sim_em(n_em, seed) if n_em else ([], [], [])
    im2, lab2, _ = sim_spm(n_spm, seed + 1) if n_spm else ([], [], [])
    return im + im2, lab + lab2


def real_set(n_hsi: int, fixtures: bool = True) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Held-out real images: em-real held-out, gordon-hsi fold 0 (``n_hsi``), the fixtures; with labels
    (modality) and names."""
    import warnings

    from .data import HOLDOUT_FOLD, HSI_DIR
    from .index import iter_image_files, read_frames

    imgs, labels, names = [], [], []
    from ...training.em_real import default_folder, load_em_real

    if default_folder() is not None:
        for r in load_em_real(split="heldout"):
            imgs.append(r.image)
            labels.append(r.modality)
            names.append("em-real/" + r.id)
    if n_hsi and (HSI_DIR / "images.npz").exists():
        from ..classify.data import load_gordon_hsi, session_folds

        ds = load_gordon_hsi(HSI_DIR)
        te = session_folds(ds.sessions, k=5, seed=0)[HOLDOUT_FOLD][1]
        pick = np.sort(np.random.default_rng(1).permutation(te)[:n_hsi])
        for i in pick:
            imgs.append(np.asarray(ds.images[i], np.float32))
            labels.append("STM")
            names.append("gordon-hsi/" + str(ds.names[i]))
    if fixtures and FIXTURES.is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for p in iter_image_files(FIXTURES):
                if "partial_scan" in p.name or p.name.startswith("mask-"):
                    continue  # derived from the truth images beside them
                try:
                    frames = read_frames(p)
                except Exception:  # the fixtures include files every reader must reject
                    continue
                for _fi, mg, info in frames[:1]:
                    a = np.asarray(mg.data, np.float32)
                    if min(a.shape) < 32 or not np.isfinite(a).any() or np.nanmax(a) == np.nanmin(a):
                        continue
                    mod = info["modality"].upper()
                    mod = {"SPM": "STM", "AFM": "AFM"}.get(mod, mod)
                    imgs.append(a)
                    labels.append("STEM" if "partial-stem" in str(p) else mod)
                    names.append("fixtures/" + str(p.relative_to(FIXTURES)))
    return imgs, labels, names


def transformed(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A rotated, flipped or re-noised copy of a 2-D image (see the module docstring)."""
    from .preprocess import minmax

    a = np.asarray(img, np.float32)
    if kind.startswith("rot"):
        return np.ascontiguousarray(np.rot90(a, int(kind[3:]) // 90))
    if kind == "flip-lr":
        return np.ascontiguousarray(a[:, ::-1])
    if kind == "flip-ud":
        return np.ascontiguousarray(a[::-1])
    if kind == "renoise":
        from ...image.scaling import fill_nonfinite
        from ...simulate.em.noise import poisson_dose

        return minmax(poisson_dose(minmax(fill_nonfinite(a)), 300.0, rng))
    raise InputError(f"unknown transform {kind!r}; choose from {', '.join(TRANSFORMS)}")


# ------------------------------------------------------------------------------------------ metrics
def _d2(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    g = np.asarray(g, np.float64)
    return ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)


def retrieval_scores(embed_one, embed_many, images: list[np.ndarray], labels: list[str], rng) -> dict:
    """Self rank-1, copy-in-top-5 (per transform) and purity@5 of one method on one image set.

    ``embed_many(list) -> (N, d)`` embeds the gallery (in batches); ``embed_one(image) -> (d,)`` embeds a
    query alone.
    """
    g = np.asarray(embed_many(images), np.float64)
    n = len(images)
    self_ok = []
    for i, im in enumerate(images):
        d = _d2(embed_one(im)[None], g)[0]
        self_ok.append(bool(np.all(np.delete(d, i) > d[i])))
    copies = {}
    for t in TRANSFORMS:
        hits = []
        for i, im in enumerate(images):
            d = _d2(embed_one(transformed(im, t, rng))[None], g)[0]
            hits.append(i in np.argsort(d, kind="stable")[:5])
        copies[t] = float(np.mean(hits))
    D = _d2(g, g)
    np.fill_diagonal(D, np.inf)
    nn = np.argsort(D, 1, kind="stable")[:, :5]
    lab = np.asarray(labels)
    purity = float(np.mean(lab[nn] == lab[:, None]))
    _, counts = np.unique(lab, return_counts=True)
    chance = float(((counts * (counts - 1)).sum()) / (n * (n - 1))) if n > 1 else float("nan")
    return {"self_rank1": float(np.mean(self_ok)), "copy_top5": float(np.mean(list(copies.values()))),
            "copy_top5_by_transform": copies, "purity5": purity, "purity5_chance": chance, "n": n}


def throughput(est, n: int, batch: int = 256, threads: int | None = None) -> dict:
    """Images per second of 96x96 arrays through the default ``predict`` path (canonical view, one pass;
    an ``(n, 96, 96)`` stack and a list of 2-D arrays), the network alone on prepared inputs (no canonical
    view) and ``tta=8``; per wall-clock second and per CPU second of this process (all its threads; the
    latter does not count time the process waited for a core on a loaded machine). ``threads``: torch
    threads while measuring (default: as set)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        x = np.random.default_rng(0).random((n, est.size, est.size)).astype(np.float32)
        est.config.batch_size = batch
        est.predict(x[:batch])  # warm-up (builds the fast CPU path)
        out = {"n": n, "batch": batch, "threads": torch.get_num_threads(),
               "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
        n8 = max(batch, n // 8)
        cases = (("predict", n, lambda: est.predict(x)), ("predict_list", n, lambda: est.predict(list(x))),
                 ("net", n, lambda: est.encode_inputs(x, orient="none")),
                 ("tta8", n8, lambda: est.predict(x[:n8], tta=8)))
        for key, m, fn in cases:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            out[f"{key}_img_s"] = m / (time.perf_counter() - t0)
            out[f"{key}_img_cpu_s"] = m / max(time.process_time() - c0, 1e-9)
        out["load_avg_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    finally:
        torch.set_num_threads(before)
    return out


def _timed_queries(idx, qs, k, backend, **kw):
    wall, cpu, rows = [], [], []
    for q in qs:
        t0, c0 = time.perf_counter(), time.process_time()
        r = idx.search(q, k, backend=backend, **kw)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        rows.append(set(r["row"]))
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu)), rows, 1e3 * float(np.min(wall))


def search_latency(n: int, latent: int = 64, queries: int = 20, k: int = 5, usearch_n: int | None = 100_000,
                   seed: int = 0, expansion_search: Sequence[int] | None = None, usearch_queries: int = 100,
                   threads: int = 0) -> dict:
    """Median latency (ms, wall and CPU) of one top-``k`` query on ``n`` synthetic codes (normal, sd 2.5 per
    dimension, as encoding-normalised codes) with exact numpy search; and the usearch backend (HNSW graph
    with the default build settings, candidates re-ranked exactly) on the first ``usearch_n`` of them:
    build time (``threads``, 0: all cores) and, per ``expansion_search`` setting (default: the index
    default, then :data:`EXPANSION_ROWS`), latency and recall@k against exact search on the same codes
    over ``usearch_queries`` queries.

    The keys ``usearch_ms, usearch_cpu_ms, usearch_min_ms, usearch_recall`` are those of the default
    setting; ``usearch_runs`` lists every setting.
    """
    from .index import USEARCH_DEFAULTS, Index

    rng = np.random.default_rng(seed)
    codes = (2.5 * rng.standard_normal((n, latent))).astype(np.float32)
    idx = Index.from_codes(codes)
    qs = codes[rng.choice(n, queries, replace=False)] + 0.5 * rng.standard_normal((queries, latent)).astype(np.float32)
    idx.search(qs[0], k)  # norms computed once, outside the timing
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    wall, cpu, _, best = _timed_queries(idx, qs, k, "exact")
    out = {"n": n, "latent": latent, "k": k, "queries": queries, "exact_ms": wall, "exact_cpu_ms": cpu,
           "exact_min_ms": best, "load_avg": load}
    if usearch_n:
        default = USEARCH_DEFAULTS["expansion_search"]
        efs = list(expansion_search) if expansion_search else [default] + [e for e in EXPANSION_ROWS if e != default]
        m = min(int(usearch_n), n)
        sub = Index.from_codes(codes[:m])
        nq = max(int(usearch_queries), 1)
        qs2 = codes[rng.choice(m, nq, replace=False)] + 0.5 * rng.standard_normal((nq, latent)).astype(np.float32)
        sub.search(qs2[0], k)
        _, _, truth, _ = _timed_queries(sub, qs2, k, "exact")
        out["usearch_load_avg"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        t0, c0 = time.perf_counter(), time.process_time()
        sub.build_usearch(threads=threads)
        out["usearch_n"] = m
        out["usearch_build_s"] = time.perf_counter() - t0
        out["usearch_build_cpu_s"] = time.process_time() - c0
        out["usearch_threads"] = threads or os.cpu_count()
        out["usearch_settings"] = dict(sub.usearch_settings)
        out["usearch_queries"] = nq
        runs = []
        for ef in efs:
            sub.search(qs2[0], k, backend="usearch", expansion_search=ef)  # warm-up
            wall, cpu, rows, best = _timed_queries(sub, qs2, k, "usearch", expansion_search=ef)
            runs.append({"expansion_search": int(ef), "ms": wall, "cpu_ms": cpu, "min_ms": best,
                         "recall": float(np.mean([len(a & b) / k for a, b in zip(rows, truth)]))})
        out["usearch_runs"] = runs
        r0 = runs[0]
        out["usearch_expansion_search"] = r0["expansion_search"]
        out["usearch_ms"], out["usearch_cpu_ms"], out["usearch_min_ms"] = r0["ms"], r0["cpu_ms"], r0["min_ms"]
        out["usearch_recall"] = r0["recall"]
    return out


# ------------------------------------------------------------------------------------------ run
def _options(p) -> None:
    p.add_argument("--model", default="default", help="installed model name or path stem (default embed-default)")
    p.add_argument("--compare", default=None, help="another embedding model to score beside it (e.g. a KL-VAE)")
    p.add_argument("--n-em", type=int, default=None, help="simulated EM images per kind (default 40, quick 12)")
    p.add_argument("--n-spm", type=int, default=None, help="simulated STM images (default 100, quick 30)")
    p.add_argument("--n-hsi", type=int, default=None, help="real gordon-hsi images (default 60, quick 20)")
    p.add_argument("--index-size", type=int, default=None,
                   help="synthetic codes in the latency index (default 1000000, quick 100000)")
    p.add_argument("--parts", default="retrieval,throughput,search",
                   help="comma-separated parts to run: retrieval, throughput, search (default all)")
    p.add_argument("--usearch-size", type=int, default=None,
                   help="codes in the usearch HNSW graph (default 100000, quick 20000; 0: skip usearch)")
    p.add_argument("--expansion-search", default=None,
                   help="comma-separated usearch expansion_search settings to time (default: the index default "
                        "1024, then 128, 512 and 2048)")


def _methods(est, other, pca, pixels, names=None):
    from .baselines import inputs_of

    # the compared model is labelled as given (--compare runs/embed-kl/model); the main one by its name, or
    # as given too when both were saved under the same stem (runs/a/model, runs/b/model)
    ne, no = est.name, getattr(other, "name", "")
    if names and other is not None:
        no = str(names[1])
        ne = str(names[0]) if other.name == est.name else ne

    def vae(e, tta):
        return (lambda im: e.predict(im, tta=tta)[0]), (lambda ims: e.predict(list(ims), tta=tta))

    def plain(e):
        return (lambda im: e.predict(im, orient="none")[0]), (lambda ims: e.predict(list(ims), orient="none"))

    m = {f"VAE {ne} (default: canonical view)": vae(est, 1), f"VAE {ne}, orient none": plain(est),
         f"VAE {ne}, tta 8": vae(est, 8)}
    if other is not None:
        m[f"VAE {no} (canonical view)"] = vae(other, 1)
        m[f"VAE {no}, orient none"] = plain(other)
    m["PCA 64"] = (lambda im: pca.predict_inputs(inputs_of(im))[0], lambda ims: pca.predict_inputs(inputs_of(list(ims))))
    m["pixels 8x8"] = (lambda im: pixels.predict(im)[0], lambda ims: pixels.predict(list(ims)))
    return m


def run(a, report: Report) -> int:
    """``scopenet bench embed`` on the harness."""
    import torch

    from .model import Embedder

    q = a.quick
    n_em = a.n_em if a.n_em is not None else (12 if q else 40)
    n_spm = a.n_spm if a.n_spm is not None else (30 if q else 100)
    n_hsi = a.n_hsi if a.n_hsi is not None else (20 if q else 60)
    n_index = a.index_size if a.index_size is not None else (100_000 if q else 1_000_000)
    n_us = a.usearch_size if a.usearch_size is not None else (20_000 if q else 100_000)
    seed = BENCH_SIM_SEED if a.seed is None else int(a.seed)
    parts = {p.strip() for p in a.parts.split(",") if p.strip()}
    if not parts or parts - {"retrieval", "throughput", "search"}:
        raise InputError(f"--parts takes retrieval, throughput, search; got {a.parts!r}")
    est = Embedder.pretrained(a.model)
    other = Embedder.pretrained(a.compare) if a.compare else None
    report.line(f"model {est.name}; torch threads {torch.get_num_threads()}; held-out sets (never in training)")
    if "retrieval" in parts:
        _retrieval(a, report, est, other, seed, n_em, n_spm, n_hsi)
    if "throughput" in parts:
        _throughput(a, report, est)
    if "search" in parts:
        try:
            efs = [int(v) for v in a.expansion_search.split(",") if v.strip()] if a.expansion_search else None
        except ValueError:
            raise InputError(f"--expansion-search takes comma-separated integers, got {a.expansion_search!r}") from None
        _search(report, est, n_index, n_us, efs)
    return 0


def _retrieval(a, report: Report, est, other, seed: int, n_em: int, n_spm: int, n_hsi: int) -> None:
    from .baselines import PCACodes, PixelCodes, inputs_of

    q = a.quick
    # PCA: fitted on simulated images of the training seeds (the held-out seeds differ)
    from .data import TRAIN_SIM_SEED

    fit_imgs, _ = sim_set(30 if q else 100, 150 if q else 500, TRAIN_SIM_SEED)
    pca = PCACodes().fit_inputs(inputs_of(fit_imgs))
    methods = _methods(est, other, pca, PixelCodes(), names=(a.model, a.compare))
    sets = []
    if a.images is not None:
        from .index import iter_image_files, read_frames

        imgs, labs = [], []
        for p in iter_image_files(a.images):
            for _, mg, info in read_frames(p)[:1]:
                imgs.append(np.asarray(mg.data, np.float32))
                labs.append(info["modality"])
        sets.append((f"images in {a.images}", imgs, labs))
    else:
        si, sl = sim_set(n_em, n_spm, seed)
        sets.append((f"held-out simulated ({len(si)}: {n_em} per EM kind, {n_spm} STM; 8 simulator labels)", si, sl))
        ri, rl, _ = real_set(n_hsi)
        if ri:
            sets.append((f"held-out real ({len(ri)}: em-real held-out, gordon-hsi fold 0, fixtures; modality labels)",
                         ri, rl))
        else:
            report.line("no real images found (../shared/data, ../shared/fixtures): real set skipped")
    results = {}
    for title, imgs, labs in sets:
        t = Table(["method", "self rank-1", "copy in top 5", "rot90", "rot180", "rot270", "flip-lr", "flip-ud",
                   "re-noised", "purity@5"], title=title)
        res = {}
        for name, (one, many) in methods.items():
            r = retrieval_scores(one, many, imgs, labs, np.random.default_rng(seed))
            res[name] = r
            c = r["copy_top5_by_transform"]
            t.add(name, f"{100 * r['self_rank1']:.1f} %", f"{100 * r['copy_top5']:.1f} %",
                  *[f"{100 * c[k]:.0f} %" for k in TRANSFORMS], f"{100 * r['purity5']:.1f} %")
        chance = next(iter(res.values()))["purity5_chance"]
        t.notes.append(f"purity@5 by chance (label frequencies): {100 * chance:.1f} %. Targets: self rank-1 100 %, "
                       "copy in top 5 >= 90 %.")
        report.table(t)
        results[title] = res
    report.data["retrieval"] = results


def _throughput(a, report: Report, est) -> None:
    import torch

    n = 512 if a.quick else 2048
    runs = [throughput(est, n, threads=t) for t in sorted({1, max(1, os.cpu_count() or 1)})]
    t = Table(["what", "threads", "images/s (wall)", "images per CPU-second", "load avg before/after"],
              title="embedding throughput, CPU, 96x96 (batch 256)")
    rows = (("predict", "sn.embed default path, (N, 96, 96) stack (canonical view, 1 pass)"),
            ("predict_list", "sn.embed default path, list of 2-D arrays"),
            ("net", "network alone (prepared inputs, no canonical view)"),
            ("tta8", "tta 8 (8 views averaged)"))
    for key, label in rows:
        for tp in runs:
            load = "/".join(f"{v:.1f}" if v is not None else "?" for v in (tp["load_avg"], tp["load_avg_after"]))
            t.add(label, tp["threads"], f"{tp[f'{key}_img_s']:.0f}", f"{tp[f'{key}_img_cpu_s']:.0f}", load)
    t.notes.append(f"target >= 500 images/s. {os.cpu_count()} CPU cores on this machine (torch's default: "
                   f"{os.cpu_count()} threads; this bench runs at {torch.get_num_threads()} otherwise). The wall-clock "
                   "rate counts the time this process waited for a core on a shared machine; images per CPU-second "
                   "(CPU time of all its threads) do not. tta 8 on n/8 images.")
    report.table(t)
    report.data["throughput"] = runs


def _search(report: Report, est, n_index: int, n_us: int, expansion_search: Sequence[int] | None = None) -> None:
    sl = search_latency(n_index, est.latent, usearch_n=n_us, expansion_search=expansion_search)
    t = Table(["backend", "codes", "expansion_search", "median ms / query (wall)", "fastest ms (wall)",
               "median CPU ms / query", "build s", "recall@5 vs exact"],
              title="search latency, synthetic 64-d codes, top 5, one query at a time")
    t.add("exact (numpy)", f"{sl['n']:,}", "-", f"{sl['exact_ms']:.1f}", f"{sl['exact_min_ms']:.1f}",
          f"{sl['exact_cpu_ms']:.1f}", "-", "1.000")
    for i, r in enumerate(sl.get("usearch_runs", [])):
        name = "usearch HNSW" if i == 0 else f"usearch HNSW, expansion_search {r['expansion_search']}"
        t.add(name, f"{sl['usearch_n']:,}", r["expansion_search"], f"{r['ms']:.2f}", f"{r['min_ms']:.2f}",
              f"{r['cpu_ms']:.2f}", f"{sl['usearch_build_s']:.0f}" if i == 0 else "(same graph)", f"{r['recall']:.3f}")
    load = f"{sl['load_avg']:.1f}" if sl.get("load_avg") is not None else "unknown"
    t.notes.append(f"target < 50 ms per query on 1,000,000 codes; 1-minute load average {load} on "
                   f"{os.cpu_count()} cores when the exact queries started.")
    if "usearch_runs" in sl:
        st = sl["usearch_settings"]
        uload = f"{sl['usearch_load_avg']:.1f}" if sl.get("usearch_load_avg") is not None else "unknown"
        sub = ("" if sl["usearch_n"] >= sl["n"] else
               " The graph is built on the first codes only (--usearch-size; its build, not its queries, is what "
               "a loaded 2-core machine cannot afford at 1,000,000).")
        t.notes.append(f"usearch: the default row is the index default (expansion_search {sl['usearch_runs'][0]['expansion_search']}); "
                       f"graph built with connectivity {st['connectivity']}, expansion_add {st['expansion_add']}, "
                       f"{st['dtype']}, {sl['usearch_threads']} threads: {sl['usearch_build_s']:.0f} s wall, "
                       f"{sl['usearch_build_cpu_s']:.0f} CPU s (load {uload} before). 4k graph candidates re-ranked "
                       f"by exact distance; recall@5 over {sl['usearch_queries']} queries.{sub}")
    report.table(t)
    report.data["search"] = sl


SPEC = BenchSpec("embed", __doc__, run, _options, seed=None, threads=1,
                 quick="12 simulated images per EM kind, 30 STM, 20 gordon-hsi, a 100,000-code latency index",
                 images="folder of images (any format scopenet reads) to score instead of the default sets "
                        "(labels: the modality)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench embed``."""
    return SPEC.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
