"""Throughput of the synthetic-data generators: images (or masks) per second, single process.

Run: ``scopenet bench simulate [--n-spm 200] [--n-em 20] [--n-mask 20] [--quick]`` (from a checkout)

Rows: 128x128 SPM (``scopenet.simulate.spm``), 512x512 EM per kind (clean image with labels, and with
Ede low-dose noise added), 512x512 masks per kind. Target (issue 3): training never waits on data
(>= 200 SPM 128x128 images/s on 2 cores). Timings depend on the machine's load: quote them with it.
"""
from __future__ import annotations

import os
import time

import numpy as np

from scopenet.tasks._bench import BenchSpec, Report, Table


def _rate(fn, n: int) -> tuple[float, float, float]:
    """(items per wall second, wall ms per item, CPU ms per item) for ``fn(i)`` called ``n`` times.

    CPU time (this process) is what the generator costs; wall time also counts waiting for a core on
    a loaded machine.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return n / dt, 1000 * dt / n, 1000 * dc / n


def _options(ap) -> None:
    ap.add_argument("--n-spm", type=int, default=None, help="SPM images timed (default 200; quick 40)")
    ap.add_argument("--n-em", type=int, default=None, help="EM images per kind (default 20; quick 4)")
    ap.add_argument("--n-mask", type=int, default=None, help="masks per kind (default 20; quick 4)")
    ap.add_argument("--size-em", type=int, default=512)


def run(args, report: Report) -> int:
    """Time each generator; ``--seed`` is not used (fixed seeds, as the training streams use)."""
    n_spm = args.n_spm or (40 if args.quick else 200)
    n_em = args.n_em or (4 if args.quick else 20)
    n_mask = args.n_mask or (4 if args.quick else 20)
    rows: list[tuple[str, str, float, float, float]] = []
    try:
        from scopenet.simulate import spm

        spm.simulate_batch(4, size=128, seed=99)  # warm up
        r = _rate(lambda i: spm.simulate_batch(1, size=128, seed=0, start=i), n_spm)
        rows.append(("SPM", "128x128 (simulate_batch)", *r))
    except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the tree
        report.line(f"[bench] SPM skipped: {exc}")

    from scopenet.simulate import em, scans
    from scopenet.simulate.em.noise import ede_noisy_pair

    s = args.size_em
    em.structure_library()  # built once per process (ASE), not counted
    for kind in ("stem", "hrtem", "meso", "mixed"):
        em.simulate_image(np.random.default_rng(999), s, kind)  # warm up
        r = _rate(lambda i, k=kind: em.simulate_image(np.random.default_rng(i), s, k), n_em)
        rows.append(("EM", f"{s}x{s} {kind}", *r))
    rng = np.random.default_rng(0)
    clean = em.simulate_image(rng, s, "stem").image
    r = _rate(lambda i: ede_noisy_pair(clean, rng, "low"), n_em)
    rows.append(("EM", f"{s}x{s} Ede low-dose pair only", *r))

    for kind in scans.MASK_KINDS:
        if kind == "spiral":  # calibration is cached per coverage: time fresh coverages
            cov = [1 / 20 + 1e-4 * i for i in range(n_mask)]
            r = _rate(lambda i, cov=cov: scans.make_mask("spiral", 512, cov[i]), min(n_mask, 5))
            rows.append(("mask", "512x512 spiral (calibrated, uncached)", *r))
            r = _rate(lambda i: scans.spiral_mask(512, 1 / 16), n_mask)
            rows.append(("mask", "512x512 spiral (cached)", *r))
            continue
        r = _rate(lambda i, k=kind: scans.make_mask(k, 512, 1 / 20, np.random.default_rng(i)), n_mask)
        rows.append(("mask", f"512x512 {kind}", *r))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t = Table(["generator", "what", "items/s", "wall ms", "CPU ms", "CPU items/s"], float_format="{:.1f}",
              title=f"Synthetic data throughput (1 process, load average {load:.1f}, {os.cpu_count()} CPUs)")
    for g, w, r, ms, cpu in rows:
        t.add(g, w, r, ms, cpu, 1000 / max(cpu, 1e-3))
    report.data["rows"] = [dict(zip(t.columns, row)) for row in t.rows]
    report.line()
    report.table(t)
    return 0


SPEC = BenchSpec("simulate", __doc__.splitlines()[0], run, _options, seed=None,
                 quick="40 SPM images, 4 EM images and 4 masks per kind",
                 images="not used (the generators are timed)")


def main(argv=None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
