"""Benchmark: particle tracking and drift correction on simulated movies with known trajectories.

Movies from :func:`scopenet.simulate.em.movies.simulate_movie` (256 px frames, Brownian steps of 1 px
rms per axis per frame, stage drift of about 0.5 px per frame with a random walk, a static support
texture, Poisson noise) at several particle densities. :func:`scopenet.tasks.track.track` corrects the
drift (phase correlation), finds the particles (trackpy) and links them; every detection is assigned to
the true particle within 2 px of it. A link (two consecutive detections of one track) is correct when
both ends belong to the same true particle::

    scopenet bench track [--densities 20 50 100] [--frames 20] [--movies 3]

Columns: link precision (correct links / links made, the issue's "links correct"), link recall
(correct frame-to-frame links / true ones), detections matched, and the drift error (px, rms and max
over frames, against the true drift at each frame's mean row time). A scanned case (rows recorded over 90 % of
the frame interval, a common flow of (0.3, 0.5) px per frame) compares the mean velocity error with and
without the line time.
"""
from __future__ import annotations

import numpy as np

from .._bench import BenchSpec, Report, Table, mean_sd

EVAL_SEED = 4242


def _options(p) -> None:
    p.add_argument("--densities", type=int, nargs="+", default=None,
                   help="particles per 256x256 frame (default 20 50 100; --quick 20 100)")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--movies", type=int, default=None, help="movies per density (default 3; --quick 1)")
    p.add_argument("--size", type=int, default=256)


def link_scores(df, movie, radius: float = 2.0) -> dict[str, float]:
    """Link precision and recall, detection recall and drift error of one tracked movie against its truth."""

    T, N = movie.positions.shape[:2]
    truth = np.full(len(df), -1)
    fr = df["frame"].to_numpy()
    yx = df[["y_raw", "x_raw"]].to_numpy()
    for i in range(len(df)):  # the truth when the detection's row was recorded
        if N == 0:
            break
        d = np.hypot(*(movie.observed_at(int(fr[i]), yx[i, 0]) - yx[i]).T)
        j = int(np.argmin(d))
        truth[i] = j if d[j] <= radius else -1
    s = df.assign(truth=truth).sort_values(["particle", "frame"])
    same = s["particle"].to_numpy()[1:] == s["particle"].to_numpy()[:-1]
    a, b = s["truth"].to_numpy()[:-1][same], s["truth"].to_numpy()[1:][same]
    dfr = (s["frame"].to_numpy()[1:] - s["frame"].to_numpy()[:-1])[same]
    correct = (a == b) & (a >= 0)
    n_true_links = N * (T - 1)
    # the phase correlation sees a scanned frame's mean row time: compare there
    h = movie.frames.shape[1]
    mid = movie.line_time * (h - 1) / 2
    true_d = movie.drift + mid * (np.vstack([movie.drift[1:], movie.end_drift[None]]) - movie.drift)
    true_d = true_d - true_d[0]  # estimated relative to the first frame
    drift = np.asarray(df.attrs["drift"]) - true_d
    err = np.hypot(drift[:, 0], drift[:, 1])
    return {"precision": float(correct.mean()) if len(a) else float("nan"),
            "recall": float((correct & (dfr == 1)).sum() / n_true_links) if n_true_links else float("nan"),
            "detected": float((truth >= 0).sum() / (N * T)) if N else float("nan"),
            "drift_rms": float(np.sqrt((err ** 2).mean())), "drift_max": float(err.max())}


def run(a, report: Report) -> int:
    import time

    from ...simulate.em.movies import simulate_movie
    from .tracking import track

    dens = a.densities or ([20, 100] if a.quick else [20, 50, 100])
    n_mov = a.movies or (1 if a.quick else 3)
    seed = EVAL_SEED if a.seed is None else a.seed
    t = Table(["particles / frame", "links correct (precision)", "link recall", "detections matched",
               "drift error rms (px)", "drift error max (px)", "s / movie"],
              title=f"simulated movies ({a.frames} frames of {a.size} px, {n_mov} per density, seed {seed})")
    res = report.data.setdefault("results", {})
    for k, n in enumerate(dens):
        rows = []
        for i in range(n_mov):
            m = simulate_movie(a.frames, a.size, n, seed=seed + 100 * k + i)
            t0 = time.perf_counter()
            df = track(m.frames)
            sc = link_scores(df, m)
            sc["time"] = time.perf_counter() - t0
            rows.append(sc)
        res[str(n)] = rows
        col = lambda key, rows=rows: [r[key] for r in rows]  # noqa: E731
        t.add(n, mean_sd(col("precision")), mean_sd(col("recall")), mean_sd(col("detected")),
              mean_sd(col("drift_rms")), mean_sd(col("drift_max")), f"{np.mean(col('time')):.1f}")
    t.notes.append("target: >= 95 % of links correct at every density")
    report.table(t)
    # scanned frames: the line time matters for velocities
    m = simulate_movie(a.frames, a.size, 30, scan_fraction=0.9, velocity=(0.3, 0.5), drift=(1.0, -0.8),
                       seed=seed + 999)
    s = Table(["line time given", "links correct", "vx error (px/frame)", "vy error (px/frame)",
               "drift error rms (px)"], title="scanned movie (rows over 90 % of the frame interval, flow (vy, vx) "
                                               "= (0.3, 0.5) px/frame, 30 particles)")
    for lt in (m.line_time, 0.0):
        df = track(m.frames, line_time=lt)
        sc = link_scores(df, m)
        s.add("yes" if lt else "no", f"{sc['precision']:.3f}", f"{np.nanmean(df.vx) - 0.5:+.3f}",
              f"{np.nanmean(df.vy) - 0.3:+.3f}", f"{sc['drift_rms']:.3f}")
        res[f"scanned_line_time_{bool(lt)}"] = sc
    report.line()
    report.table(s)
    return 0


SPEC = BenchSpec("track", __doc__, run, _options, seed=None, threads=1,
                 quick="densities 20 and 100, one movie each")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench track``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
