"""``scopenet bench autopilot``: actions to a good tip, trained agent vs random actions vs the best fixed sequence.

Every policy conditions the same seeded episodes on the simulated microscope (each starts with a
random bad tip, :func:`~scopenet.simulate.spm.probe.random_bad_apex`); an episode ends when the judge's
good-tip probability reaches 0.9 or after 100 actions (counted as 100). The **best fixed sequence** is
chosen among the twelve single actions repeated and the pulse/dip pairs alternated, by successive
halving on separate selection episodes (seeds disjoint from the benchmark's), then run on the
benchmark episodes like the others. Targets (issue 23): agent median <= 0.7 x random median, and
below the best fixed sequence's median.

``--json`` with no file prints one JSON object on stdout (nothing else); ``--json FILE`` writes the
harness's JSON report there as every bench does.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ..tasks._bench import BenchSpec, Report, Table

EPISODE_SEED_BASE = 1_000_000      # benchmark episodes: 1,000,000 + 10,000 * seed + i
SELECT_SEED_BASE = 2_000_000       # selection episodes of the fixed sequences


def _candidates() -> list[list[int]]:
    singles = [[a] for a in range(12)]
    pairs = [[p, d] for p in (2, 4) for d in (6, 7, 8, 9, 10)]
    return singles + pairs


def _episodes(agent, seeds, judge, max_actions: int = 100) -> list[dict]:
    from .sim import SimMicroscope
    from .supervisor import run_episode

    out = []
    for s in seeds:
        mic = SimMicroscope(seed=int(s))
        r = run_episode(mic, judge, agent, max_actions=max_actions)
        out.append(r)
    return out


def _stats(name: str, eps: list[dict]) -> dict:
    n = np.array([e["actions"] for e in eps], float)
    bins = [1, 2, 3, 5, 10, 20, 50, 100]
    counts, lo = [], 0
    for b in bins:
        counts.append(int(np.sum((n > lo) & (n <= b))))
        lo = b
    return {"policy": name, "median": float(np.median(n)), "mean": float(n.mean()),
            "p25": float(np.percentile(n, 25)), "p75": float(np.percentile(n, 75)), "p90": float(np.percentile(n, 90)),
            "success": float(np.mean([e["success"] for e in eps])),
            "true_good_at_end": float(np.mean([bool(e["tip_good"]) for e in eps])),
            "crashes_per_episode": float(np.mean([e["crashes"] for e in eps])),
            "histogram": dict(zip(["1", "2", "3", "4-5", "6-10", "11-20", "21-50", "51-100"], counts)),
            "actions": [int(x) for x in n]}


def select_fixed(judge, n_select: int, seed: int, log=print) -> tuple[list[int], list[dict]]:
    """Successive halving over :func:`_candidates` on selection episodes; returns the winner and the rounds."""
    from .agent import FixedSequenceAgent

    cands = _candidates()
    rounds = []
    base = SELECT_SEED_BASE + 10_000 * seed
    used = 0
    scores: dict[tuple, list[int]] = {tuple(c): [] for c in cands}
    k = max(4, n_select // 3)
    while True:
        seeds = range(base + used, base + used + k)
        for c in cands:
            scores[tuple(c)] += [e["actions"] for e in _episodes(FixedSequenceAgent(c), seeds, judge)]
        used += k
        ranked = sorted(cands, key=lambda c: (np.median(scores[tuple(c)]), np.mean(scores[tuple(c)])))
        rounds.append({"episodes": used, "kept": [FixedSequenceAgent(c).name for c in ranked[:max(1, len(cands) // 3)]]})
        log(f"  fixed-sequence selection: {len(cands)} candidates on {used} episodes; best so far "
            f"{FixedSequenceAgent(ranked[0]).name} (median {np.median(scores[tuple(ranked[0])]):.1f})")
        if len(cands) <= 2 or used >= n_select:
            return ranked[0], rounds
        cands = ranked[:max(2, len(cands) // 3)]


def _run(a: argparse.Namespace, rep: Report) -> int:
    from .agent import FixedSequenceAgent, QAgent, RandomAgent
    from .judge import Judge

    quiet = getattr(a, "_json_stdout", False)
    say = (lambda *x, **k: None) if quiet else rep.line
    n = 40 if a.quick and a.episodes is None else (a.episodes or 200)
    n_sel = a.select_episodes or (12 if a.quick else 36)
    judge = Judge()
    agent = QAgent.load(a.agent) if a.agent else QAgent.pretrained("default")
    seeds = [EPISODE_SEED_BASE + 10_000 * a.seed + i for i in range(n)]
    t0 = time.time()
    say(f"autopilot bench: {n} episodes (seeds {seeds[0]}..{seeds[-1]}), judge good-bad p >= 0.9, cap 100 actions")
    best, rounds = select_fixed(judge, n_sel, a.seed, say)
    res = {}
    for name, pol in [("agent", agent), ("random", RandomAgent(a.seed)), ("best_fixed", FixedSequenceAgent(best))]:
        t = time.time()
        res[name] = _stats(getattr(pol, "name", name), _episodes(pol, seeds, judge))
        say(f"  {name}: median {res[name]['median']:.1f} actions ({time.time() - t:.0f} s)")
    ratio = res["agent"]["median"] / res["random"]["median"]
    out = {"episodes": n, "seed": a.seed, "agent": res["agent"]["policy"],
           "agent_median_actions": res["agent"]["median"], "random_median_actions": res["random"]["median"],
           "best_fixed_median_actions": res["best_fixed"]["median"], "best_fixed_sequence": res["best_fixed"]["policy"],
           "agent_over_random": ratio,
           "target_agent_le_0.7_random": bool(ratio <= 0.7),
           "target_agent_below_best_fixed": bool(res["agent"]["median"] < res["best_fixed"]["median"]),
           "selection": {"episodes": n_sel, "rounds": rounds},
           "distributions": {k: v for k, v in res.items()}, "wall_s": round(time.time() - t0, 1)}
    rep.data.update(out)
    cols = ["policy", "median", "mean", "p25", "p75", "p90", "success", "true_good_at_end", "crashes_per_episode"]
    tab = Table(cols, title="Actions to a good tip (fewer is better)")
    for k in ("agent", "random", "best_fixed"):
        tab.add(*[res[k][c] for c in cols])
    tab.notes.append(f"agent / random median = {ratio:.2f} (target <= 0.70); best fixed sequence chosen on "
                     f"{n_sel} separate episodes")
    hist = Table(["policy", *res["agent"]["histogram"]], title="Distribution of actions per episode (episode counts)")
    for k in ("agent", "random", "best_fixed"):
        hist.add(res[k]["policy"], *res[k]["histogram"].values())
    if not quiet:
        rep.table(tab)
        rep.table(hist)
    else:
        rep.parts += [tab, hist]
    return 0


def _options(g) -> None:
    g.add_argument("--episodes", type=int, default=None, help="benchmark episodes (default 200; --quick 40)")
    g.add_argument("--select-episodes", type=int, default=None,
                   help="selection episodes per surviving fixed sequence (default 36; --quick 12)")
    g.add_argument("--agent", default=None, help="saved agent stem (default: the shipped autopilot-default)")


SPEC = BenchSpec("autopilot", __doc__, _run, _options, quick="40 episodes, 12 selection episodes", seed=0,
                 threads=1)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; a bare ``--json`` (no file after it) prints one JSON object on stdout instead of tables."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--json" in argv:
        i = argv.index("--json")
        if i == len(argv) - 1 or argv[i + 1].startswith("-"):
            argv.pop(i)
            a = SPEC.parser().parse_args(argv)
            a._json_stdout = True
            import torch

            torch.set_num_threads(a.threads or 1)
            rep = Report("autopilot", echo=False)
            rc = _run(a, rep)
            print(json.dumps(rep.data))
            return rc
    return SPEC.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
