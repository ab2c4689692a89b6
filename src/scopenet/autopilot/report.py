"""The HTML report of a supervised run: totals, a timeline of tip quality and actions, sample images.

Built from the run folder alone (``log.jsonl``, ``images/``), so it can be redrawn at any time, also
for a run still in progress or interrupted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_log", "summarise", "write_report"]


def read_log(run_dir: str | Path) -> list[dict]:
    """The events of ``run_dir/log.jsonl`` (a final half-written line is skipped)."""
    from ..errors import ReadError

    p = Path(run_dir) / "log.jsonl"
    if not p.exists():
        raise ReadError(p, "no autopilot log here (run `scopenet autopilot ... -o DIR` first)")
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def summarise(events: list[dict]) -> dict:
    """Totals from the log: images (good/bad/unknown/abandoned), actions, episodes and their lengths, crashes."""
    end = next((e for e in reversed(events) if e["event"] == "end"), None)
    images = [e for e in events if e["event"] in ("image", "action")]
    ep = [e for e in events if e["event"] == "episode_end"]
    s = {"events": len(events), "images": len(images),
         "good_images": sum(1 for e in events if e["event"] == "image" and e.get("decision") == "good"),
         "actions": sum(1 for e in events if e["event"] == "action"),
         "crashes": sum(1 for e in events if e["event"] == "action" and e.get("crashed")),
         "episodes_succeeded": sum(1 for e in ep if e.get("success")),
         "episode_actions_median": float(np.median([e["actions"] for e in ep if e.get("success")]))
         if any(e.get("success") for e in ep) else None,
         "instrument_hours": (events[-1]["t_s"] / 3600) if events else 0.0, "finished": end is not None}
    if end is not None:
        s["totals"] = end["totals"]
    return s


def _timeline_png(events: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import fig_to_png

    img = [e for e in events if e["event"] in ("image", "action")]
    t = np.array([e["t_s"] for e in img]) / 3600
    p = np.array([e["judge"]["p_good"] for e in img])
    fig, ax = plt.subplots(2, 1, figsize=(11, 4.2), sharex=True, dpi=100, height_ratios=[3, 1])
    imaging = np.array([e["event"] == "image" for e in img])
    ax[0].scatter(t[imaging], p[imaging], s=4, c="tab:blue", label="imaging: judge p(good)")
    ax[0].scatter(t[~imaging], p[~imaging], s=4, c="tab:orange", label="after a conditioning action")
    truth = [e.get("tip_good") for e in img]
    if all(v is not None for v in truth) and truth:
        tg = np.array(truth, float)
        ax[1].fill_between(t, 0, tg, step="post", color="tab:green", alpha=0.6, label="tip good (simulator truth)")
    acts = [e for e in events if e["event"] == "action"]
    if acts:
        ax[1].vlines([e["t_s"] / 3600 for e in acts], 1.05, 1.35, color="tab:orange", lw=0.5, label="actions")
    crashes = [e["t_s"] / 3600 for e in acts if e.get("crashed")]
    if crashes:
        ax[1].plot(crashes, [1.2] * len(crashes), "rx", label="crash")
    ax[0].axhline(0.9, color="k", lw=0.5, ls="--")
    ax[0].set_ylabel("p(good tip)")
    ax[0].legend(loc="lower right", fontsize=7, markerscale=3)
    ax[1].set_yticks([])
    ax[1].set_xlabel("instrument time (h)")
    ax[1].legend(loc="upper right", fontsize=7, ncols=3)
    fig.tight_layout()
    try:
        return fig_to_png(fig)
    finally:
        plt.close(fig)


def write_report(run_dir: str | Path, path: str | Path | None = None, overwrite: bool = True) -> Path:
    """Write ``run_dir/report.html`` (or ``path``): totals, the timeline, up to 24 sample images."""
    from ..image import Axis, Micrograph
    from ..report import Report

    run_dir = Path(run_dir)
    events = read_log(run_dir)
    s = summarise(events)
    start = next((e for e in events if e["event"] == "start"), {})
    rep = Report(f"scopenet autopilot: {start.get('backend', '?')} backend, agent {start.get('agent', '?')}")
    tot = s.get("totals") or {}
    rows = [{"quantity": "instrument time (h)", "value": round(s["instrument_hours"], 3)},
            {"quantity": "images", "value": s["images"]},
            {"quantity": "good images", "value": s["good_images"]},
            {"quantity": "conditioning actions", "value": s["actions"]},
            {"quantity": "episodes ended with a good tip", "value": s["episodes_succeeded"]},
            {"quantity": "median actions per successful episode", "value": s["episode_actions_median"]},
            {"quantity": "crashes", "value": s["crashes"]}]
    if tot:
        rows.append({"quantity": "time with a good tip, by the judge", "value": round(tot["good_time_fraction"], 4)})
        if tot.get("true_good_time_fraction") is not None:
            rows.append({"quantity": "time with a good tip, simulator truth",
                         "value": round(tot["true_good_time_fraction"], 4)})
    sec = rep.section("Summary", "Run finished." if s["finished"] else "Run not finished (interrupted or going on).")
    sec.table(rows)
    if any(e["event"] in ("image", "action") for e in events):
        rep.section("Timeline", "Judge scores of every image, conditioning actions, crashes and (simulator) the "
                    "true tip state.").figure(_timeline_png(events), "tip quality and actions over instrument time")
    files = [(e, run_dir / e["file"]) for e in events if e.get("file")]
    files = [(e, f) for e, f in files if f.exists()][:24]
    if files:
        imgs, titles = [], []
        for e, f in files:
            z = np.load(f)
            imgs.append(Micrograph(z, axes=[Axis("y", z.shape[0], 8 / z.shape[0], 0, "nm"),
                                            Axis("x", z.shape[1], 8 / z.shape[1], 0, "nm")],
                                   signal="height", signal_unit="m", modality="STM"))
            what = e.get("action", e.get("decision", ""))
            titles.append(f"{e['t_s'] / 3600:.2f} h {what} p={e['judge']['p_good']:.2f}")
        rep.section("Sample images", "The first images of the run with the judge's probability.").images(imgs, titles)
    out = Path(path) if path is not None else run_dir / "report.html"
    return rep.write(out, overwrite=overwrite)
