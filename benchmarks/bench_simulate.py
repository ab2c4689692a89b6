"""Throughput of the synthetic-data generators: images (or masks) per second, single process.

Run: ``nice python benchmarks/bench_simulate.py [--n-spm 200] [--n-em 20] [--n-mask 20]``

Rows: 128x128 SPM (``scopenet.simulate.spm``), 512x512 EM per kind (clean image with labels, and with
Ede low-dose noise added), 512x512 masks per kind. Target (issue 3): training never waits on data
(>= 200 SPM 128x128 images/s on 2 cores). Timings depend on the machine's load: quote them with it.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-spm", type=int, default=200)
    ap.add_argument("--n-em", type=int, default=20)
    ap.add_argument("--n-mask", type=int, default=20)
    ap.add_argument("--size-em", type=int, default=512)
    args = ap.parse_args(argv)

    rows: list[tuple[str, str, float, float, float]] = []
    try:
        from scopenet.simulate import spm

        spm.simulate_batch(4, size=128, seed=99)  # warm up
        r = _rate(lambda i: spm.simulate_batch(1, size=128, seed=0, start=i), args.n_spm)
        rows.append(("SPM", "128x128 (simulate_batch)", *r))
    except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the tree
        print(f"[bench] SPM skipped: {exc}")

    from scopenet.simulate import em, scans
    from scopenet.simulate.em.noise import ede_noisy_pair

    s = args.size_em
    em.structure_library()  # built once per process (ASE), not counted
    for kind in ("stem", "hrtem", "meso", "mixed"):
        em.simulate_image(np.random.default_rng(999), s, kind)  # warm up
        r = _rate(lambda i, k=kind: em.simulate_image(np.random.default_rng(i), s, k), args.n_em)
        rows.append(("EM", f"{s}x{s} {kind}", *r))
    rng = np.random.default_rng(0)
    clean = em.simulate_image(rng, s, "stem").image
    r = _rate(lambda i: ede_noisy_pair(clean, rng, "low"), args.n_em)
    rows.append(("EM", f"{s}x{s} Ede low-dose pair only", *r))

    for kind in scans.MASK_KINDS:
        if kind == "spiral":  # calibration is cached per coverage: time fresh coverages
            cov = [1 / 20 + 1e-4 * i for i in range(args.n_mask)]
            r = _rate(lambda i, cov=cov: scans.make_mask("spiral", 512, cov[i]), min(args.n_mask, 5))
            rows.append(("mask", "512x512 spiral (calibrated, uncached)", *r))
            r = _rate(lambda i: scans.spiral_mask(512, 1 / 16), args.n_mask)
            rows.append(("mask", "512x512 spiral (cached)", *r))
            continue
        r = _rate(lambda i, k=kind: scans.make_mask(k, 512, 1 / 20, np.random.default_rng(i)), args.n_mask)
        rows.append(("mask", f"512x512 {kind}", *r))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nSynthetic data throughput (1 process, load average {load:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'generator':<10}{'what':<40}{'items/s':>10}{'wall ms':>10}{'CPU ms':>10}{'CPU items/s':>13}")
    for g, w, r, ms, cpu in rows:
        print(f"{g:<10}{w:<40}{r:>10.1f}{ms:>10.1f}{cpu:>10.1f}{1000 / max(cpu, 1e-3):>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
