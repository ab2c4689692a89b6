"""Throughput of the SPM simulator: synthetic images per second, one process and a 2-process pool.

Run: ``nice python benchmarks/bench_simulate_spm.py [--n 400] [--workers 2]``

Target (issue 3): >= 200 images/s at 128x128 on 2 cores, so training never waits on data.
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor


def _run(args):
    n, size, seed, start = args
    from scopenet.simulate.spm import simulate_batch

    simulate_batch(n, size=size, seed=seed, start=start)
    return n


def bench(size: int, n: int, workers: int) -> tuple[float, float, float]:
    from scopenet.simulate.spm import simulate_batch

    simulate_batch(4, size=size, seed=99)                     # warm up imports and FFT plans
    t0, c0 = time.perf_counter(), time.process_time()
    simulate_batch(n, size=size, seed=0)
    single = n / (time.perf_counter() - t0)
    per_cpu = n / (time.process_time() - c0)                   # robust to other users of the machine
    pooled = float("nan")
    if workers > 1:
        chunk = max(1, n // (4 * workers))
        jobs = [(min(chunk, n - s), size, 0, s) for s in range(0, n, chunk)]
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(_run, [(2, size, 99, 0)] * workers))  # warm the workers
            t0 = time.perf_counter()
            done = sum(ex.map(_run, jobs))
            pooled = done / (time.perf_counter() - t0)
    return single, per_cpu, pooled


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 256])
    args = ap.parse_args(argv)
    print(f"SPM simulator throughput ({os.cpu_count()} CPUs visible, {args.workers} workers)")
    print(f"{'size':>6} {'n':>6} {'1 process (img/s)':>18} {'per CPU-second':>15} "
          f"{f'{args.workers} processes (img/s)':>20}")
    for size in args.sizes:
        n = args.n if size <= 128 else max(50, args.n // 4)
        single, per_cpu, pooled = bench(size, n, args.workers)
        print(f"{size:>6} {n:>6} {single:>18.1f} {per_cpu:>15.1f} {pooled:>20.1f}")
    print("(wall-clock rates depend on the machine's load; 'per CPU-second' is images per second of "
          "CPU time of one process, i.e. the rate of one idle core)")


if __name__ == "__main__":
    main()
