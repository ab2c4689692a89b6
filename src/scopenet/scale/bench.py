"""Batch throughput with 1 and 2 Dask workers, and peak memory per worker on one huge image.

Run: ``scopenet bench batch [--quick] [--json PATH] [--n 16] [--size 512] [--huge 16384] [--block 2048]``

1. Throughput: ``--n`` simulated low-dose STEM images of ``--size`` px (Ede's noise) denoised by
   :func:`scopenet.scale.run_batch` (``denoise-default``, one thread per worker) on a LocalCluster of 1, then
   2 worker processes. Each cluster is started and its workers load the model (a warm-up file) before the
   clock starts; the time of the start is reported apart. Target (issue #22): 2 workers >= 1.7x 1 worker.
2. Memory: one ``--huge`` x ``--huge`` float32 image (16,384 px: 1 GiB) written as an uncompressed TIFF,
   denoised block by block (``--tile``, ``--block`` px blocks) by 2 workers into zarr while the resident
   memory (RSS) of each worker process is sampled every 0.2 s with psutil. Target: peak <= 1.5 GiB per
   worker. With ``--check`` (default for ``--huge`` <= 4096) the result is compared with the in-memory
   ``Denoiser.predict`` of the whole image on a 512 px crop at the centre and one at a corner.

Timings depend on the machine and its load (the load average is printed with each table); on a shared
machine, with fewer free cores than workers, two workers cannot run twice as fast.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..tasks._bench import BenchSpec, Report, Table


def _options(ap) -> None:
    ap.add_argument("--n", type=int, default=None, help="images timed per worker count (default 24; quick 8)")
    ap.add_argument("--size", type=int, default=512, help="image side for the throughput part (px)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts timed")
    ap.add_argument("--huge", type=int, default=None,
                    help="side of the memory part's image (default 16384; quick 2048; 0 skips it)")
    ap.add_argument("--block", type=int, default=2048, help="block side (px) of block-wise processing")
    ap.add_argument("--check", action="store_true", default=None,
                    help="compare with the in-memory result (default only for --huge <= 4096)")
    ap.add_argument("--model", default="default", help="denoiser (default denoise-default)")
    ap.add_argument("--blocks", type=int, default=None,
                    help="process only the first N blocks of the huge image after the full statistics pass "
                         "(peak memory per worker without the hours of a full CPU run; no comparison)")
    ap.add_argument("--skip-throughput", action="store_true", help="only the memory part")


def _cluster(n: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return cluster, Client(cluster)


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _throughput(args, report: Report, tmp: Path) -> None:
    import psutil

    import scopenet as sn

    from ..simulate.em.api import simulate_batch
    from ..simulate.em.noise import ede_noisy_pair
    from .batch import run_batch

    n = args.n or (8 if args.quick else 24)
    src = tmp / "in"
    src.mkdir()
    rng = np.random.default_rng(args.seed)
    for i, img in enumerate(simulate_batch(n, args.size, seed=5, kind="stem")["images"]):
        sn.write(sn.Micrograph(ede_noisy_pair(img, rng, "low")[0]), src / f"img{i:03d}.tif")
    warm = tmp / "warm"
    warm.mkdir()
    for i in range(max(args.workers)):
        sn.write(sn.read(src / "img000.tif"), warm / f"w{i}.tif")
    rows = []
    for w in args.workers:
        t0 = time.perf_counter()
        cluster, client = _cluster(w)
        try:
            run_batch("denoise", warm, tmp / f"warm{w}", model=args.model, client=client)  # model on every worker
            start = time.perf_counter() - t0
            load0 = _load()
            procs = [psutil.Process(p) for p in client.run(os.getpid).values()]
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
            t1 = time.perf_counter()
            rep = run_batch("denoise", src, tmp / f"out{w}", model=args.model, client=client)
            wall = time.perf_counter() - t1
            cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
        finally:
            client.close()
            cluster.close()
        if rep.done != n:
            raise RuntimeError(rep.summary())
        rows.append((w, start, wall, n / wall, cpu / n, (load0 + _load()) / 2))
    t = Table(["workers", "start + model load (s)", f"seconds ({n} images)", "images/s", "x 1 worker",
               "worker CPU s per image", "load average"], float_format="{:.2f}",
              title=f"Batch denoise throughput ({args.size}x{args.size}, {args.model}, one thread per worker, "
                    f"{os.cpu_count()} CPUs)")
    for w, start, wall, ips, cpu, load in rows:
        t.add(w, start, wall, ips, ips / rows[0][3], cpu, load)
    t.notes.append("Target: 2 workers >= 1.7x the images/s of 1 worker. The machine's load average is the mean "
                   "of its values before and after the timed run. Worker CPU s per image (user + system time "
                   "of the worker processes during the run, over the images) stays flat when the work splits "
                   "cleanly: then the wall-clock gain is set by the free cores, not by the batch code.")
    report.data["throughput"] = [dict(zip(t.columns, r)) for r in t.rows]
    report.table(t)


class _RssSampler:
    """Peak resident memory of some processes, sampled every ``dt`` seconds in a thread."""

    def __init__(self, pids: dict[str, int], dt: float = 0.2):
        import psutil

        self.procs = {a: psutil.Process(p) for a, p in pids.items()}
        self.peak = {a: 0 for a in pids}
        self.peak_anon = {a: 0 for a in pids}  # RSS less file-backed/shared pages (memory maps of the input)
        self.dt = dt
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for a, p in self.procs.items():
                try:
                    m = p.memory_info()
                    self.peak[a] = max(self.peak[a], m.rss)
                    self.peak_anon[a] = max(self.peak_anon[a], m.rss - getattr(m, "shared", 0))
                except Exception:  # noqa: BLE001 - a process that went away
                    pass
            self._stop.wait(self.dt)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _memory(args, report: Report, tmp: Path) -> None:
    import tifffile

    import scopenet as sn

    from .batch import run_batch
    from .tiled import blocks_of

    size = args.huge if args.huge is not None else (2048 if args.quick else 16384)
    if size <= 0:
        return
    check = args.check if args.check is not None else size <= 4096
    src = tmp / "huge"
    src.mkdir()
    path = src / "huge.tif"
    rng = np.random.default_rng(args.seed)
    # a smooth field with Poisson noise, written row band by row band (never whole in this process either)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        def bands():
            for y0 in range(0, size, 256):
                yy = np.arange(y0, min(y0 + 256, size))[:, None]
                xx = np.arange(size)[None, :]
                lam = 20 + 15 * np.sin(yy / 37.0) * np.cos(xx / 53.0)
                yield rng.poisson(lam).astype(np.float32)
        tw.write(bands(), shape=(size, size), dtype=np.float32, rowsperstrip=256)
    import psutil

    cluster, client = _cluster(2)
    try:
        pids = client.run(os.getpid)
        base = {a: psutil.Process(p).memory_info().rss for a, p in pids.items()}
        t0 = time.perf_counter()
        with _RssSampler(pids) as sampler:
            if args.blocks:
                n_blocks, total_blocks = _some_blocks(client, args, path, tmp / "part.zarr")
            else:
                rep = run_batch("denoise", src, tmp / "huge-out", model=args.model, client=client, tile=True,
                                block=args.block)
                if rep.done != 1:
                    raise RuntimeError(rep.summary())
                n_blocks = total_blocks = len(blocks_of((size, size), args.block))
        wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    if args.blocks:
        check = False
    out = tmp / "huge-out" / "huge-denoised.zarr"
    diff = None
    if check:
        from ..tasks.denoise import Denoiser

        ref = Denoiser.pretrained(args.model).predict(sn.read(path))
        got = sn.read(out, lazy=True)
        c = size // 2
        diffs = []
        for y0, x0 in ((max(0, c - 256), max(0, c - 256)), (0, 0)):
            a = np.asarray(got.data[y0:y0 + 512, x0:x0 + 512].compute())
            diffs.append(float(np.nanmax(np.abs(a - ref.data[y0:y0 + 512, x0:x0 + 512]))))
        diff = max(diffs)
    gib = 2.0**30
    what = "all" if n_blocks == total_blocks else f"the statistics pass over all {total_blocks}, then {n_blocks}"
    t = Table(["worker", "RSS before (GiB)", "peak RSS (GiB)", "peak RSS less file-backed (GiB)", "image (GiB)",
               "blocks", "seconds",
               "max |tiled - in memory|"], float_format="{:.3g}",
              title=f"Peak memory per worker: {size}x{size} float32 denoised block by block ({args.block} px blocks: "
                    f"{what}; 2 workers, load average {_load():.1f}, {os.cpu_count()} CPUs)")
    for i, a in enumerate(sorted(pids)):
        t.add(i, base[a] / gib, sampler.peak[a] / gib, sampler.peak_anon[a] / gib, size * size * 4 / gib,
              f"{n_blocks}/{total_blocks}", wall,
              "not checked" if diff is None else f"{diff:.2g}")
    t.notes.append("Target: peak <= 1.5 GiB per worker, result equal to the in-memory result to 1e-5. RSS sampled "
                   "every 0.2 s with psutil (a shorter peak can be missed); RSS counts the pages of the memory-"
                   "mapped input a worker has touched, which the kernel can drop at any time: the column beside it "
                   "leaves file-backed pages out. The in-memory comparison needs the "
                   "whole image in this process: it runs by default only up to 4096 px (--check forces it).")
    report.data["memory"] = {"size": size, "block": args.block, "seconds": wall, "max_abs_diff": diff,
                             "blocks": n_blocks, "total_blocks": total_blocks,
                             "peak_rss_gib": {str(i): sampler.peak[a] / gib for i, a in enumerate(sorted(pids))},
                             "peak_rss_less_file_gib": {str(i): sampler.peak_anon[a] / gib
                                                        for i, a in enumerate(sorted(pids))}}
    report.table(t)


def _some_blocks(client, args, path: Path, store: Path) -> tuple[int, int]:
    """The block-wise run of :func:`run_batch` cut short: the statistics pass over every block, then only the
    first ``args.blocks`` blocks (the same worker functions). Returns (blocks processed, blocks in all)."""
    from distributed import wait

    import scopenet as sn

    from ..io.zarr_io import create_array
    from .batch import _tiled_block, _tiled_context, _tiled_stats
    from .tiled import blocks_of, combine_stats

    shape = tuple(sn.read(path, lazy=True).shape)
    blocks = blocks_of(shape, args.block)
    parts = client.gather([client.submit(_tiled_stats, "denoise", args.model, str(path), b, pure=False)
                           for b in blocks])
    ctx = client.submit(_tiled_context, "denoise", args.model, str(path), combine_stats(parts, 1), {},
                        pure=False).result()
    create_array(store, shape, (args.block, args.block))
    some = blocks[:args.blocks]
    futs = [client.submit(_tiled_block, "denoise", args.model, str(path), str(store), b, ctx, 2, pure=False)
            for b in some]
    wait(futs)
    [f.result() for f in futs]
    return len(some), len(blocks)


def run(args, report: Report) -> int:
    with tempfile.TemporaryDirectory(prefix="scopenet-bench-batch-") as tmp:
        tmp = Path(tmp)
        if not args.skip_throughput:
            _throughput(args, report, tmp)
        _memory(args, report, tmp)
    return 0


SPEC = BenchSpec("batch", __doc__.splitlines()[0], run, _options,
                 quick="8 images for the throughput, a 2048 px image for the memory part (compared in memory)",
                 images="not used (simulated images)")


def main(argv=None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
