"""Throughput of the SPM simulator: CPU cost per image and wall-clock images/s with 1 and N workers.

Run: ``scopenet bench simulate-spm [--n 400] [--workers 2] [--sizes 128 256] [--quick]`` (from a checkout)

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

import os
import time

from scopenet.tasks._bench import BenchSpec, Report, Table


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


def _options(ap) -> None:
    ap.add_argument("--n", type=int, default=None, help="images per measurement at 128x128 (default 400; quick 64)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="image sides (default 128 256; quick 128)")
    ap.add_argument("--no-dataloader", action="store_true")


def run(args, report: Report) -> int:
    """Time the simulator in one process, a warm pool and a DataLoader (``--seed`` is not used)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)                                   # one core per process, like the workers
    except Exception:
        pass
    n0 = args.n or (64 if args.quick else 400)
    sizes = args.sizes or ([128] if args.quick else [128, 256])
    w = args.workers
    t = Table(["size", "n", "CPU ms/img (1 proc)", "img per CPU-s", "wall img/s, 1 proc", f"wall img/s, {w} workers",
               f"DataLoader img/s ({w} workers)", "load avg (1/5/15 min)"],
              title=f"SPM simulator throughput ({os.cpu_count()} CPUs visible, {w} workers, "
                    f"load average {_load()} at start)")
    for size in sizes:
        n = n0 if size <= 128 else max(50, n0 // 4)
        cpu_ms, single = bench_single(size, n)
        pooled = bench_stream(size, n, w) if w > 1 else single
        dl = float("nan") if args.no_dataloader else bench_dataloader(size, n, w)
        t.add(size, n, f"{cpu_ms:.2f}", f"{1e3 / cpu_ms:.0f}", f"{single:.1f}", f"{pooled:.1f}",
              "nan" if dl != dl else f"{dl:.1f}", _load())
    t.notes.append(f"'img per CPU-s' = 1000 / (CPU ms/img): the rate of one idle core; {w} idle cores would give "
                   f"about {w} x that (an extrapolation, not a measurement). Wall rates are measured on the shared, "
                   f"loaded machine.")
    report.data["rows"] = [dict(zip(t.columns, row)) for row in t.rows]
    report.table(t)
    return 0


SPEC = BenchSpec("simulate-spm", __doc__.splitlines()[0], run, _options, seed=None,
                 quick="64 images at 128x128 only", images="not used (the simulator is timed)")


def main(argv=None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
