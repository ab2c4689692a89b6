"""``scopenet bench autopilot``: actions to a good tip, trained agent vs random actions vs the best fixed sequence.

Every policy conditions the same seeded episodes on the simulated microscope (each starts with a
random bad tip, :func:`~scopenet.simulate.spm.probe.random_bad_apex`); an episode ends when the judge's
good-tip probability reaches 0.9 or after 100 actions (counted as 100). The **best fixed sequence** is
chosen among the twelve single actions repeated and the pulse/dip pairs alternated, by successive
halving on separate selection episodes (seeds disjoint from the benchmark's), then run on the
benchmark episodes like the others. The **oracle** (:class:`~.agent.OracleAgent`) reads the
simulator's latent apex and takes the action most likely to leave a good apex: not a usable policy, but
a bound on what observing the tip can buy over a fixed sequence. Each episode uses the judge the agent
was trained with (its card's ``predict.judge``: model, auxiliary scores, image statistics). Targets (issue 23): agent median <= 0.7 x random median, and
below the best fixed sequence's median.

``--real`` also scores each judge against the simulator's truth on ``--sim-frames`` frames of the
simulated microscope (:func:`sim_frames`: half good apexes, half random bad ones after random
conditioning actions; seeds disjoint from the episodes' and from the tip judge's training frames), with
the fraction of each kind of bad tip called good.

``--json`` with no file prints one JSON object on stdout (nothing else); ``--json FILE`` writes the
harness's JSON report there as every bench does.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..tasks._bench import BenchSpec, Report, Table
from .judge_train import sim_frames  # noqa: F401 - part of this module's API (judge_on_sim, tests)

EPISODE_SEED_BASE = 1_000_000      # benchmark episodes: 1,000,000 + 10,000 * seed + i
SELECT_SEED_BASE = 2_000_000       # selection episodes of the fixed sequences
SIM_FRAMES_SEED_BASE = 3_000_000   # --real's simulated-microscope frames: 3,000,000 + 10,000 * seed + i
                                   # (the tip judge trains on sim_frames seeds 100,000..101,499)


def _candidates() -> list[list[int]]:
    singles = [[a] for a in range(12)]
    pairs = [[p, d] for p in (2, 4) for d in (6, 7, 8, 9, 10)]
    return singles + pairs


def _episodes(agent, seeds, judge, max_actions: int = 100) -> list[dict]:
    """Run ``agent`` on one simulated episode per seed (the oracle is bound to each microscope)."""
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


#: tip verdicts by eye on crops of the real STM fixtures (file, channel, crop, surface, label, reason)
REAL_LABELS = Path(__file__).resolve().parents[3] / "benchmarks" / "autopilot-real-labels.csv"


def _read_fixture(shared: Path, rel: str, channel: int) -> np.ndarray:
    if rel.endswith(".dat"):             # SPIEPy demo: two uint32 (shape) then float64 heights, C order
        raw = (shared / "fixtures" / rel).read_bytes()
        h, w = np.frombuffer(raw[:8], "<u4")
        return np.frombuffer(raw[8:], "<f8").reshape(int(h), int(w)).astype(np.float32)
    from ..io import read_all

    z = np.asarray(read_all(shared / "fixtures" / rel)[int(channel)].data, np.float32)
    return z[0] if z.ndim == 3 else z


def _read_fixture_image(shared: Path, rel: str, channel: int):
    """A fixture channel as a Micrograph (pixel size kept, so the judge can tell a coarse frame), or an array."""
    if rel.endswith(".dat"):
        return _read_fixture(shared, rel, channel)
    from ..io import read_all

    m = read_all(shared / "fixtures" / rel)[int(channel)]
    return m[0] if np.asarray(m.data).ndim == 3 else m


def _crop(img, y: int, x: int, n: int):
    if hasattr(img, "crop"):
        return img.crop(y, y + n, x, x + n)
    return img[y:y + n, x:x + n]


def _verdict_stats(res, truth: np.ndarray) -> dict:
    pred = np.array([r.verdict == "good" for r in res])
    pred05 = np.array([r.p_good >= 0.5 for r in res])
    inside = np.array([r.verdict != "unknown" for r in res])

    def acc(pr, m):
        return round(float((pr == truth)[m].mean()), 4) if m.any() else None

    judged = np.array([r.verdict in ("good", "bad") for r in res])
    return {"images": int(len(truth)), "good_fraction": round(float(truth.mean()), 4),
            "unknown_fraction": round(float(1 - inside.mean()), 4),
            "coverage": round(float(judged.mean()), 4), "accuracy_judged": acc(pred, judged),
            "majority_accuracy_judged": (round(float(max(truth[judged].mean(), 1 - truth[judged].mean())), 4)
                                         if judged.any() else None),
            "accuracy_in_domain_p0.9": acc(pred, inside), "accuracy_in_domain_p0.5": acc(pred05, inside),
            "accuracy_all_p0.5": acc(pred05, np.ones(len(truth), bool)),
            "majority_accuracy": round(float(max(truth.mean(), 1 - truth.mean())), 4),
            "majority_accuracy_in_domain": (round(float(max(truth[inside].mean(), 1 - truth[inside].mean())), 4)
                                            if inside.any() else None),
            "true_positive_rate_p0.9": acc(pred, inside & truth) if (inside & truth).any() else None,
            "true_negative_rate_p0.9": acc(pred, inside & ~truth) if (inside & ~truth).any() else None}


def crowd_rule_out_of_fold(logits_npz, shared, thresholds=(0.3, 0.5, 0.7, 0.9)) -> dict:
    """Accuracy of the crowd rule (:func:`~.judge.hsi_crowd_rule`) on out-of-fold gordon-hsi predictions.

    ``logits_npz`` is the ``<out>.logits.npz`` of ``scripts/train_classify.py cv`` (session-held-out
    folds: ``fold<i>_test_index`` and ``fold<i>_logits`` [seeds, n, 6], averaged over seeds). Every image
    is judged by a model that never saw its session; no domain check (the fold models are not kept).
    """
    from ..tasks.classify.data import CATEGORIES
    from .judge import hsi_crowd_rule
    from .replay import load_recorded

    z = np.load(logits_npz)
    folds = sorted(k.split("_")[0] for k in z.files if k.endswith("_test_index"))
    idx = np.concatenate([z[f"{f}_test_index"] for f in folds])
    _, recs = load_recorded(Path(shared) / "data" / "gordon-hsi", limit=int(idx.max()) + 1)
    truth_all = np.array([r.get("recorded_good", False) for r in recs])
    P = np.concatenate([1 / (1 + np.exp(-z[f"{f}_logits"].mean(0))) for f in folds])
    p, t = hsi_crowd_rule(P, CATEGORIES), truth_all[idx]
    out = {"folds": len(folds), "images": int(len(idx)), "good_fraction": round(float(t.mean()), 4),
           "majority_accuracy": round(float(max(t.mean(), 1 - t.mean())), 4)}
    for th in thresholds:
        pr = p >= th
        out[f"accuracy_p{th}"] = round(float((pr == t).mean()), 4)
        out[f"true_positive_rate_p{th}"] = round(float(pr[t].mean()), 4)
        out[f"true_negative_rate_p{th}"] = round(float((~pr)[~t].mean()), 4)
    return out


def judge_name(judge) -> str:
    """A short name for a judge: its model's name (``good-bad``, ``hsi-six``...)."""
    card = getattr(getattr(judge, "clf", None), "card_", None)
    return str(getattr(card, "name", "judge")).removeprefix("classify-")


def judge_on_real(judge, shared, n_hsi: int | None = None, labels: Path | None = None) -> dict:
    """The judge on real STM images, per surface.

    H:Si(100): gordon-hsi (good = the crowd verdict of :mod:`~.replay`: no blur, no tip change, atoms or
    dimers seen by half the volunteers). Other surfaces: crops of the fixtures labelled by eye in
    ``benchmarks/autopilot-real-labels.csv`` (``none`` rows: no verdict possible, the judge should say
    ``unknown``). Accuracy is reported on the images the judge did not call unknown, beside the
    majority-class accuracy and the unknown fraction.
    """
    import csv

    from .replay import load_recorded

    shared = Path(shared)
    out: dict = {}
    src = shared / "data" / "gordon-hsi"
    if (src / "images.npz").exists():
        imgs, recs = load_recorded(src, limit=n_hsi)
        res = judge.judge_many(imgs)
        truth = np.array([lab.get("recorded_good", False) for lab in recs])
        out["H:Si(100) gordon-hsi"] = _verdict_stats(res, truth)
    labels = Path(labels or REAL_LABELS)
    if labels.exists() and (shared / "fixtures").exists():
        rows = list(csv.DictReader(line for line in labels.read_text().splitlines() if not line.startswith("#")))
        by_surface: dict = {}
        none_res = []
        for r in rows:
            try:
                z = _read_fixture_image(shared, r["file"], int(r["channel"]))
            except Exception as e:  # noqa: BLE001 - a missing reader is reported, not fatal
                out.setdefault("errors", []).append(f"{r['file']}: {str(e)[:100]}")
                continue
            n = int(r["size_px"])
            if n:
                z = _crop(z, int(r["y0"]), int(r["x0"]), n)
            res = judge(z)
            if r["label"] == "none":
                none_res.append({"file": r["file"], "channel": int(r["channel"]), "verdict": res.verdict,
                                 "reason": getattr(res, "reason", ""), "p_good": round(res.p_good, 3)})
            else:
                by_surface.setdefault(r["surface"], []).append((res, r["label"] == "good"))
        for surf, items in by_surface.items():
            out[surf] = _verdict_stats([i[0] for i in items], np.array([i[1] for i in items]))
        if none_res:
            out["no_verdict_possible"] = {"images": len(none_res),
                                          "unknown_fraction": float(np.mean([r["verdict"] == "unknown"
                                                                             for r in none_res])),
                                          "items": none_res}
    return out


def judge_on_sim(judge, n: int, seed: int) -> dict:
    """The judge against the simulated microscope's truth on ``n`` frames of :func:`sim_frames`
    (seeds ``SIM_FRAMES_SEED_BASE + 10,000 * seed + i``): :func:`_verdict_stats`, plus per defect kind the
    frames with it and the fraction called good (``called_good``) and unknown."""
    imgs, truth, defects = sim_frames(n, SIM_FRAMES_SEED_BASE + 10_000 * int(seed))
    res = judge.judge_many(imgs)
    out = _verdict_stats(res, truth)
    v = np.array([r.verdict for r in res])
    kinds = {}
    for k in ("blunt", "double", "asymmetric", "adsorbate", "unstable"):
        m = np.array([k in d for d in defects])
        if m.any():
            kinds[k] = {"frames": int(m.sum()), "called_good": round(float((v[m] == "good").mean()), 4),
                        "unknown": round(float((v[m] == "unknown").mean()), 4)}
    out["by_defect"] = kinds
    out["good_tips_called_good"] = round(float((v[truth] == "good").mean()), 4) if truth.any() else None
    return out


def real_crop_evidence(judge, shared, labels: Path | None = None) -> dict[str, dict]:
    """What a :class:`~.judge.TipJudge` reads from the labelled fixture crops, by surface.

    Returns ``{surface: {"F": [N, 10], "flags": [N, 3], "y": [N] bool}}`` (:meth:`~.judge.TipJudge.image_evidence`)
    for the ``good``/``bad`` rows of ``labels`` (default ``benchmarks/autopilot-real-labels.csv``), and
    ``"no_verdict_possible"`` for the ``none`` rows (``y`` all false). Unreadable files are skipped.
    """
    import csv

    labels = Path(labels or REAL_LABELS)
    out: dict = {}
    if not (labels.exists() and (Path(shared) / "fixtures").exists()):
        return out
    rows = list(csv.DictReader(line for line in labels.read_text().splitlines() if not line.startswith("#")))
    groups: dict = {}
    for r in rows:
        try:
            z = _read_fixture_image(Path(shared), r["file"], int(r["channel"]))
        except Exception:  # noqa: BLE001 - a missing reader: the crop is skipped (judge_on_real reports it)
            continue
        n = int(r["size_px"])
        if n:
            z = _crop(z, int(r["y0"]), int(r["x0"]), n)
        key = "no_verdict_possible" if r["label"] == "none" else r["surface"]
        groups.setdefault(key, []).append((z, r["label"] == "good"))
    for key, items in groups.items():
        F, flags = judge.image_evidence([i[0] for i in items])
        out[key] = {"F": F, "flags": flags, "y": np.array([i[1] for i in items], bool)}
    return out


def _rule_stats(params: dict, F: np.ndarray, flags: np.ndarray, y: np.ndarray) -> dict:
    """A tip judge's verdicts on feature rows without and with the familiarity rule: coverage (share judged),
    accuracy on the judged, majority-class accuracy (of all and of the judged), share turned unknown by it."""
    from .judge import TipJudge

    j = TipJudge(params)
    res = j.judge_features(F, flags)
    j.reference = None
    res0 = j.judge_features(F, flags)
    out = {"images": int(len(y)), "good_fraction": round(float(y.mean()), 4) if len(y) else None,
           "majority_accuracy": round(float(max(y.mean(), 1 - y.mean())), 4) if len(y) else None}
    for tag, rr in (("", res0), ("familiar_", res)):
        judged = np.array([r.verdict in ("good", "bad") for r in rr])
        pred = np.array([r.verdict == "good" for r in rr])
        out[f"{tag}coverage"] = round(float(judged.mean()), 4) if len(y) else None
        out[f"{tag}accuracy_judged"] = round(float((pred == y)[judged].mean()), 4) if judged.any() else None
        out[f"{tag}majority_judged"] = (round(float(max(y[judged].mean(), 1 - y[judged].mean())), 4)
                                        if judged.any() else None)
        out[f"{tag}unknown"] = round(float(1 - judged.mean()), 4) if len(y) else None
    unf = np.array([r.reason == "unfamiliar" for r in res])
    out["turned_unfamiliar"] = round(float(unf.mean()), 4) if len(y) else None
    # ensemble agreement (not a shipped rule; measured): judged and every member on the same side of 0.5
    P = j.member_proba(F) if len(y) else np.zeros((1, 0))
    agree = np.array([r.verdict in ("good", "bad") for r in res]) & ((P >= j.threshold).all(0) | (P < j.threshold).all(0))
    pred = np.array([r.verdict == "good" for r in res])
    out["members"] = int(len(P))
    out["agree_coverage"] = round(float(agree.mean()), 4) if len(y) else None
    out["agree_accuracy_judged"] = round(float((pred == y)[agree].mean()), 4) if agree.any() else None
    return out


def judge_loso(shared, cache_dir: Path | None = None, config: dict | None = None, seeds: int = 1, log=print) -> dict:
    """Leave-one-surface-out validation of the tip judge's recipe (issue 23).

    For each family of :data:`~.judge_train.SURFACE_FAMILIES`, the recipe (default: the shipped
    ``autopilot-judge`` card's training config) is re-fitted without the family's training sources and scored
    on the family's real images (gordon-hsi crowd verdicts; labelled fixture crops) and simulated scans, with
    and without the familiarity rule (:class:`~.judge.TipJudge`, ``unfamiliar``). ``"all surfaces"`` rows
    score the full recipe (nothing held out; gordon-hsi in-sample) to show what the rule costs in domain.
    Feature rows are cached (:func:`~.judge_train.training_sources`). With ``seeds > 1`` the MLP is also fitted
    with seeds ``seed + 1 ..`` and each row gets the accuracy on the judged of every seed
    (``accuracy_judged_seeds``, ``familiar_accuracy_judged_seeds``): the fit is chaotic enough that a few dozen
    crops of one frame move by several points between seeds.
    """
    from .judge import TipJudge
    from .judge_train import DEFAULTS, SURFACE_FAMILIES, fit, stack, training_sources

    shipped = TipJudge("autopilot-judge")
    cfg = {**DEFAULTS, **(config or shipped.card.get("training", {}).get("config", {}))}
    cfg.setdefault("familiarity_k", DEFAULTS["familiarity_k"])
    t0 = time.time()
    src = training_sources(cfg, Path(shared), cache_dir, log=log)
    real = real_crop_evidence(shipped, shared)
    if "gordon" in src:
        from .replay import load_recorded

        him, _ = load_recorded(Path(shared) / "data" / "gordon-hsi")
        real["gordon"] = {"F": src["gordon"]["F"], "flags": shipped.image_flags(him), "y": src["gordon"]["y"]}
    out: dict = {"config": {k: cfg.get(k) for k in ("familiarity_k", "familiarity_quantile", "familiarity_reference",
                                                    "ensemble")},
                 "families": {}}
    families = dict(SURFACE_FAMILIES)
    families["all surfaces (nothing held out)"] = {"drop": [], "real": [k for k in real if k != "no_verdict_possible"],
                                                   "sim": []}
    fitted: dict = {}
    out["seeds"] = [int(cfg["seed"]) + i for i in range(max(1, int(seeds)))]
    for fam, spec in families.items():
        keep = tuple(n for n in src if n not in spec["drop"])
        for sd in out["seeds"]:
            if (keep, sd) not in fitted:
                t = time.time()
                fitted[keep, sd] = fit(*stack(src, keep), cfg, sd)
                log(f"  fitted without {spec['drop'] or 'nothing'} (seed {sd}) in {time.time() - t:.0f} s")
        rows = {}
        sets = {("gordon-hsi H:Si(100) (real)" if name == "gordon" else f"{name} (real crops)"):
                (real[name]["F"], real[name]["flags"], real[name]["y"]) for name in spec["real"] if name in real}
        sets.update({f"{name} (simulated scans)": (src[name]["F"], None, src[name]["y"]) for name in spec["sim"]})
        if not spec["drop"] and "no_verdict_possible" in real:
            v = real["no_verdict_possible"]
            sets["no verdict possible (expect unknown)"] = (v["F"], v["flags"], v["y"])
        for name, (F, flags, y) in sets.items():
            per = [_rule_stats(fitted[keep, sd], F, flags, y) for sd in out["seeds"]]
            rows[name] = {**per[0], "accuracy_judged_seeds": [r["accuracy_judged"] for r in per],
                          "familiar_accuracy_judged_seeds": [r["familiar_accuracy_judged"] for r in per],
                          "coverage_seeds": [r["coverage"] for r in per]}
        params = fitted[keep, out["seeds"][0]]
        out["families"][fam] = {"held_out_sources": list(spec["drop"]), "familiarity_threshold":
                                round(float(params.get("familiarity_threshold", np.nan)), 4), "scored": rows}
    out["wall_s"] = round(time.time() - t0, 1)
    return out


def _span(values) -> str:
    v = [x for x in values if x is not None]
    return "" if len(values) < 2 or not v else f"{min(v):.3f}-{max(v):.3f}"


def _loso_table(lo: dict) -> Table:
    tab = Table(["held-out family", "scored on", "images", "majority (all)", "judged", "accuracy (judged)",
                 "majority (judged)", "judged + familiarity", "accuracy (judged + familiarity)",
                 "turned unknown by familiarity", "judged + familiarity + members agree",
                 "accuracy (judged + familiarity + members agree)", "accuracy (judged), seeds min-max"],
                title="Tip judge, leave one surface family out: trained without it, scored on it")
    for fam, v in lo["families"].items():
        for name, r in v["scored"].items():
            tab.add(fam, name, r["images"], r["majority_accuracy"], r["coverage"], r["accuracy_judged"],
                    r["majority_judged"], r["familiar_coverage"], r["familiar_accuracy_judged"],
                    r["turned_unfamiliar"], r["agree_coverage"], r["agree_accuracy_judged"],
                    _span(r["accuracy_judged_seeds"]))
    c = lo["config"]
    tab.notes.append(f"judged = share not answered unknown by the shipped rules (not a topograph, coarse, blank, noise, "
                     f"Mahalanobis out of domain, |p - 0.5| < 0.1); + familiarity: also unknown when the "
                     f"{c['familiarity_k']}-NN distance to (a {c['familiarity_reference']}-row sample of) the training "
                     f"features exceeds its {c['familiarity_quantile']} leave-one-out quantile. 'all surfaces' rows: "
                     f"the full recipe (gordon-hsi in-sample there); 'no verdict possible': the share judged should be 0; "
                     f"members agree: also unknown unless every MLP of the ensemble is on the same side of 0.5 (measured, "
                     f"not a shipped rule); columns before the last: seed {lo['seeds'][0]}; last: the recipe fitted with "
                     f"seeds {lo['seeds']}")
    return tab


#: key of the simulated-microscope row in ``judge_real``
SIM_TRUTH = "simulated microscope (simulator truth)"


def _real_table(real: dict) -> Table:
    """Per judge and surface: images, coverage (fraction not unknown), accuracy on the judged, majority class."""
    tab = Table(["judge", "surface", "images", "good fraction", "coverage", "accuracy (judged)",
                 "majority (judged)", "accuracy p>=0.5 (all)", "majority (all)"],
                title="Tip verdicts on real STM images and on the simulated microscope (unknown answers excluded from accuracy)")
    for key, per in real.items():
        if key == "crowd_rule_out_of_fold":
            continue
        for surf, v in per.items():
            if not isinstance(v, dict):
                continue
            if surf == "held_out_validation":
                for name, w in v.items():
                    tab.add(key, f"H:Si(100) gordon-hsi, {name} (card, held out)", w["images"], w["good_fraction"],
                            w["coverage"], w["accuracy_judged"], "", w["accuracy_all"], w["majority_accuracy"])
                continue
            if surf == "no_verdict_possible":
                tab.add(key, "none rows (expect unknown)", v["images"], "", round(v["unknown_fraction"], 4),
                        "", "", "", "")
                continue
            tab.add(key, surf, v["images"], v["good_fraction"], v.get("coverage"), v.get("accuracy_judged"),
                    v.get("majority_accuracy_judged"), v.get("accuracy_all_p0.5"), v["majority_accuracy"])
    tab.notes.append("coverage on the none rows = fraction answered unknown; H:Si good = crowd verdict; other "
                     "surfaces: benchmarks/autopilot-real-labels.csv (labelled by eye). A judge trained on "
                     "gordon-hsi (hsi-six, autopilot-judge) is scored in-sample on it here; the autopilot-judge's "
                     "held-out H:Si row comes from its card (5-fold CV with sessions held out); surfaces left out "
                     "of training altogether: --loso")
    return tab


def _run(a: argparse.Namespace, rep: Report) -> int:
    from .agent import FixedSequenceAgent, OracleAgent, QAgent, RandomAgent
    from .judge import judge_from_card, make_judge

    quiet = getattr(a, "_json_stdout", False)
    say = (lambda *x, **k: None) if quiet else rep.line
    n = 40 if a.quick and a.episodes is None else (200 if a.episodes is None else a.episodes)
    n_sel = a.select_episodes or (12 if a.quick else 36)
    agent = QAgent.load(a.agent) if a.agent else QAgent.pretrained("default")
    judge = judge_from_card(agent.card)
    if a.real:
        import os

        shared = Path(os.environ.get("SCOPENET_SHARED", Path.cwd().parent / "shared"))
        names = [m.strip() for m in (a.judge or "").split(",") if m.strip()]
        real = {}
        for jm in names or [None]:
            j = judge if jm is None else make_judge(jm)
            key = jm or judge_name(judge)
            real[key] = judge_on_real(j, shared, a.hsi_limit)
            if a.sim_frames:
                real[key][SIM_TRUTH] = judge_on_sim(j, a.sim_frames, a.seed)
            val = (getattr(j, "card", None) or {}).get("metrics", {}).get("validation", {})
            if val:   # the tip judge trains on gordon-hsi: its held-out H:Si figures come from its card
                real[key]["held_out_validation"] = {k: v for k, v in val.items() if k.startswith("real_")}
            for surf, v in real[key].items():
                if isinstance(v, dict):
                    say(f"judge {key} on {surf}: " + json.dumps({k: x for k, x in v.items() if k != "items"}))
        tab = _real_table(real)
        if quiet:
            rep.parts.append(tab)
        else:
            rep.table(tab)
        if a.cv_logits:
            real["crowd_rule_out_of_fold"] = crowd_rule_out_of_fold(a.cv_logits, shared)
            say("crowd rule on out-of-fold gordon-hsi predictions: " + json.dumps(real["crowd_rule_out_of_fold"]))
        rep.data["judge_real"] = real
    if a.loso:
        import os

        shared = Path(os.environ.get("SCOPENET_SHARED", Path.cwd().parent / "shared"))
        cfg = None
        if a.loso_ensemble:
            from .judge import TipJudge

            cfg = {**TipJudge("autopilot-judge").card["training"]["config"], "ensemble": int(a.loso_ensemble)}
        lo = judge_loso(shared, Path(a.loso_cache), config=cfg, seeds=a.loso_seeds, log=say)
        tab = _loso_table(lo)
        if quiet:
            rep.parts.append(tab)
        else:
            rep.table(tab)
        rep.data["judge_loso"] = lo
    if (a.real or a.loso) and n == 0:
        return 0
    seeds = [EPISODE_SEED_BASE + 10_000 * a.seed + i for i in range(n)]
    t0 = time.time()
    say(f"autopilot bench: {n} episodes (seeds {seeds[0]}..{seeds[-1]}), judge {judge_name(judge)} p >= "
        f"{judge.threshold:g}, cap 100 actions")
    best, rounds = select_fixed(judge, n_sel, a.seed, say)
    res = {}
    pols = [("agent", agent), ("random", RandomAgent(a.seed)), ("best_fixed", FixedSequenceAgent(best))]
    if not a.no_oracle:
        pols.append(("oracle", OracleAgent(a.seed)))
    for name, pol in pols:
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
           **{f"{k}_{stat}_actions": res[k][stat] for k in res for stat in ("mean", "p90")},
           **({"oracle_median_actions": res["oracle"]["median"]} if "oracle" in res else {}),
           "selection": {"episodes": n_sel, "rounds": rounds},
           "distributions": {k: v for k, v in res.items()}, "wall_s": round(time.time() - t0, 1)}
    rep.data.update(out)
    cols = ["policy", "median", "mean", "p25", "p75", "p90", "success", "true_good_at_end", "crashes_per_episode"]
    tab = Table(cols, title="Actions to a good tip (fewer is better)")
    for k in res:
        tab.add(*[res[k][c] for c in cols])
    tab.notes.append(f"agent / random median = {ratio:.2f} (target <= 0.70); best fixed sequence chosen on "
                     f"{n_sel} separate episodes" + ("; the oracle reads the simulator's latent tip (a bound, not a policy)"
                                               if "oracle" in res else ""))
    hist = Table(["policy", *res["agent"]["histogram"]], title="Distribution of actions per episode (episode counts)")
    for k in res:
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
    g.add_argument("--no-oracle", action="store_true", help="skip the oracle row (it reads the simulator's latent tip)")
    g.add_argument("--judge", default=None,
                   help="with --real: judges to score on real images, comma-separated: classify models "
                        "(good-bad, hsi-six...) or tip-feature judges (autopilot-judge) (default: the agent's judge)")
    g.add_argument("--cv-logits", default=None,
                   help="with --real: also score the crowd rule on out-of-fold predictions (the .logits.npz of "
                        "scripts/train_classify.py cv)")
    g.add_argument("--hsi-limit", type=int, default=None, help="with --real: first N gordon-hsi images (default all)")
    g.add_argument("--sim-frames", type=int, default=400,
                   help="with --real: also score each judge on this many simulated-microscope frames against the "
                        "simulator's truth (0: skip)")
    g.add_argument("--loso", action="store_true",
                   help="also validate the tip judge's recipe leaving one surface family out (re-fitted without "
                        "it, scored on its real images), with and without the familiarity rule; with --episodes 0 "
                        "only the judge benches")
    g.add_argument("--loso-cache", default="runs/autopilot-judge",
                   help="with --loso: folder of cached training feature rows (computed on first use, ~4 min)")
    g.add_argument("--loso-seeds", type=int, default=1,
                   help="with --loso: fit each held-out model with this many seeds (accuracy range reported)")
    g.add_argument("--loso-ensemble", type=int, default=None,
                   help="with --loso: MLPs per judge (default: the shipped recipe's ensemble; 1: a single MLP)")
    g.add_argument("--real", action="store_true",
                   help="also score the judge on real STM images (../shared: gordon-hsi crowd labels, fixtures); "
                        "with --episodes 0 only that")


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
