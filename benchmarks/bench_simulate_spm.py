"""Throughput of the SPM simulator: CPU cost per image and wall-clock images/s with 1 and N workers.

Run: ``nice python benchmarks/bench_simulate_spm.py [--n 400] [--workers 2] [--sizes 128 256]``

Target (issue 3): >= 200 images/s at 128x128 on 2 cores, so training never waits on data.

Columns
-------
- ``CPU ms/img``: CPU time (``time.process_time``) per image of one process, robust to other
  users of the machine; ``1000 / (CPU ms/img)`` is the rate of one idle core.
- ``wall img/s, 1 proc``: ``simulate_batch`` in this process.
- ``wall img/s, N workers``: :func:`stream_batches` with a warm pool of N ``spawn`` processes
  (pool start-up excluded, it is paid once per training run).
- ``DataLoader img/s``: :class:`SPMStream` through ``torch.utils.data.DataLoader(num_workers=N)``,
  first batch (worker start-up) excluded.
Wall-clock rates depend on the machine's load, so the 1-minute load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import time


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bench_single(size: int, n: int) -> tuple[float, float]:
    """(CPU ms per image, wall images/s) of ``simulate_batch`` in this process."""
    from scopenet.simulate.spm import simulate_batch

    simulate_batch(4, size=size, seed=99)                     # warm up imports and caches
    t0, c0 = time.perf_counter(), time.process_time()
    simulate_batch(n, size=size, seed=0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return 1e3 * cpu / n, n / wall


def bench_stream(size: int, n: int, workers: int, batch: int = 32) -> float:
    """Wall images/s of ``stream_batches`` with ``workers`` warm processes."""
    from scopenet.simulate.spm import stream_batches

    n_batches = max(2, n // batch)
    it = stream_batches(batch, size=size, seed=0, workers=workers, n_batches=n_batches + 1)
    next(it)                                                  # pool start-up and first batch
    t0 = time.perf_counter()
    done = sum(len(b["images"]) for b in it)
    rate = done / (time.perf_counter() - t0)
    it.close()
    return rate


def bench_dataloader(size: int, n: int, workers: int, batch: int = 32) -> float:
    """Wall images/s of ``SPMStream`` through a DataLoader with ``workers`` worker processes."""
    from torch.utils.data import DataLoader

    from scopenet.simulate.spm import SPMStream

    loader = DataLoader(SPMStream(n=n + batch * workers, size=size, seed=0), batch_size=batch,
                        num_workers=workers, persistent_workers=False)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    done = sum(len(b["index"]) for b in it)
    return done / (time.perf_counter() - t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="images per measurement at 128x128")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 256])
    ap.add_argument("--no-dataloader", action="store_true")
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)                                   # one core per process, like the workers
    except Exception:
        pass
    w = args.workers
    print(f"SPM simulator throughput ({os.cpu_count()} CPUs visible, {w} workers, "
          f"load average {_load()} at start)")
    hdr = (f"| size | n | CPU ms/img (1 proc) | img per CPU-s | wall img/s, 1 proc | wall img/s, {w} workers "
           f"| DataLoader img/s ({w} workers) | load avg (1/5/15 min) |")
    print(hdr)
    print("|" + "|".join(["---"] * (hdr.count("|") - 1)) + "|")
    for size in args.sizes:
        n = args.n if size <= 128 else max(50, args.n // 4)
        cpu_ms, single = bench_single(size, n)
        pooled = bench_stream(size, n, w) if w > 1 else single
        dl = float("nan") if args.no_dataloader else bench_dataloader(size, n, w)
        print(f"| {size} | {n} | {cpu_ms:.2f} | {1e3 / cpu_ms:.0f} | {single:.1f} | {pooled:.1f} | {dl:.1f} "
              f"| {_load()} |")
    print(f"\n'img per CPU-s' = 1000 / (CPU ms/img): the rate of one idle core; {w} idle cores would give "
          f"about {w} x that (an extrapolation, not a measurement). Wall rates are measured on the shared, "
          f"loaded machine.")


if __name__ == "__main__":
    main()
