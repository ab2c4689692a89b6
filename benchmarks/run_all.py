"""``make bench``: run every benchmark in turn and print its table.

Each benchmark is also runnable on its own (``scopenet bench TASK --help``). By default each runs in
its ``--quick`` mode where it has one; ``python -m benchmarks.run_all --full`` runs the full protocols
(hours on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time

BENCHES = [
    # (name, module, quick arguments, full arguments)
    ("simulate", "benchmarks.bench_simulate", [], []),
    ("simulate-spm", "benchmarks.bench_simulate_spm", [], []),
    ("alrc", "benchmarks.bench_alrc", ["--quick"], []),
    ("denoise", "scopenet.tasks.denoise.bench", ["--quick"], []),
    ("inpaint", "scopenet.tasks.inpaint.bench", ["--quick"], []),
    ("classify", "scopenet.tasks.classify.bench", ["--quick"], []),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full protocols instead of --quick")
    ap.add_argument("--only", nargs="*", help="names to run: " + ", ".join(b[0] for b in BENCHES))
    args = ap.parse_args(argv)
    failed = []
    for name, mod, quick, full in BENCHES:
        if args.only and name not in args.only:
            continue
        print(f"\n===== {name} =====", flush=True)
        t0 = time.perf_counter()
        try:
            rc = importlib.import_module(mod).main(full if args.full else quick)
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
