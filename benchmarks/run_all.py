"""``make bench``: run every registered benchmark in turn and print its table.

The benchmarks are those of :data:`scopenet.tasks._bench.REGISTRY`, the registry ``scopenet bench``
reads too, so each is also runnable on its own (``scopenet bench NAME --help``). By default each runs
in its ``--quick`` mode; ``python -m benchmarks.run_all --full`` runs the full protocols (hours on a
2-core CPU). ``--out DIR`` also writes each benchmark's markdown report to ``DIR/NAME.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scopenet.tasks._bench import REGISTRY, load_bench

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full protocols instead of --quick")
    ap.add_argument("--only", nargs="*", help="names to run: " + ", ".join(REGISTRY))
    ap.add_argument("--out", type=Path, default=None, help="folder for each benchmark's markdown report")
    args = ap.parse_args(argv)
    unknown = [n for n in args.only or [] if n not in REGISTRY]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    failed = []
    for name, entry in REGISTRY.items():
        if args.only and name not in args.only:
            continue
        print(f"\n===== {name} =====", flush=True)
        bench_args = list(entry.full if args.full else entry.quick)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            bench_args += ["--out", str(args.out / f"{name}.md")]
        t0 = time.perf_counter()
        try:
            rc = load_bench(name, ROOT).main(bench_args)
        except Exception as exc:  # keep going; report at the end
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
        print(f"===== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
