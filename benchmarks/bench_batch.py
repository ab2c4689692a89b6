"""Benchmark (issue #22, first slice): images/s of ``scopenet.scale.run_batch`` with 1 and 2 Dask workers.

Denoise (``denoise-default``, one thread per worker) over ``--n`` simulated 512x512 low-dose micrographs,
each run into a fresh output folder; the time includes starting the LocalCluster and loading the model
once per worker, as a user's run does. Target: 2 workers >= 1.7x the images/s of 1 worker.

    python benchmarks/bench_batch.py [--n 16] [--size 512]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args(argv)

    import numpy as np

    import scopenet as sn
    from scopenet.scale import run_batch
    from scopenet.simulate.em.api import simulate_batch
    from scopenet.simulate.em.noise import ede_noisy_pair

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        rng = np.random.default_rng(0)
        for i, img in enumerate(simulate_batch(a.n, a.size, seed=5, kind="stem")["images"]):
            sn.write(sn.Micrograph(ede_noisy_pair(img, rng, "low")[0]), src / f"img{i:03d}.tif")
        rows = []
        for w in a.workers:
            t0 = time.perf_counter()
            rep = run_batch("denoise", src, Path(tmp) / f"out{w}", model="default", n_workers=w)
            wall = time.perf_counter() - t0
            assert rep.done == a.n, rep.summary()
            rows.append((w, wall, a.n / wall))
    print(f"| workers | seconds ({a.n} images, {a.size}x{a.size}, cluster start included) | images/s | x 1 worker |")
    print("|---|---|---|---|")
    for w, wall, ips in rows:
        print(f"| {w} | {wall:.1f} | {ips:.2f} | {ips / rows[0][2]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
