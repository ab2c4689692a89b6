"""Train and evaluate the shipped tip-state classifiers (CPU; run with `nice`).

    python scripts/train_classify.py cv     --size 32 --epochs 20 --folds 5 [--sim sim.npz --sim-n 2000 --sim-weight 0.3] --out cv.json
    python scripts/train_classify.py final  --size 32 --epochs 20 [--sim sim.npz ...] --cv cv.json
    python scripts/train_classify.py simdata --n 6000 --seed 100 --out sim.npz
    python scripts/train_classify.py goodbad --sim sim.npz --test sim_test.npz [--size 64 --stem-stride 2 --good-weight 2]
    python scripts/train_classify.py simsix --sim sim.npz --test sim_test.npz --size 64 --stem-stride 2

`cv` trains one TipNet per session-held-out fold of gordon-hsi (folds from ``session_folds(k, seed=0)``)
and records per-category ROC AUC (``--repeats N``: N seeds per fold, their mean logits an ensemble; the
per-seed logits go to ``<out>.logits.npz``); `final` trains on all of gordon-hsi and writes
``src/scopenet/weights/classify-hsi-six`` with the CV figure in its card.

The shipped ``classify-hsi-six`` (v2, 2026-11-24) is an ensemble of four TipNets 16-32-32-64-128 at 64 px,
stem stride 2: two from random weights, two fine-tuned from the simulation-trained
``classify-hsi-six-sim-fast``::

    python scripts/train_classify.py simsix --sim sim64-s1{00..19}-n5000.npz --test sim64-s999-n2000.npz \
        --size 64 --stem-stride 2 --channels 16,32,32,64,128 --epochs 10 --batch 128 --out classify-hsi-six-sim-fast
    python scripts/train_classify.py final --size 64 --stem-stride 2 --channels 16,32,32,64,128 --epochs 20 \
        --ensemble 4 --member-init none,none,classify-hsi-six-sim-fast,classify-hsi-six-sim-fast

`scopenet bench classify` cross-validates exactly that recipe (it reads the members' starts from the card);
its printed figures were copied into the card's metrics.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gordon-hsi"
WEIGHTS = ROOT / "src" / "scopenet" / "weights"


def _hsi(size: int):
    from scopenet.tasks.classify.data import load_gordon_hsi
    from scopenet.tasks.classify.preprocess import prepare

    d = load_gordon_hsi(DATA)
    cache = Path(f"/tmp/scopenet-hsi{size}.npy")
    if cache.exists():
        X = np.load(cache)
    else:
        X = prepare(d.images, size)
        np.save(cache, X)
    return d, X


def _sim(path: str | None, size: int, n: int | None = None):
    if not path:
        return None, None
    from scopenet.tasks.classify.preprocess import prepare

    z = np.load(path)
    X = prepare(z["images"], size)
    Y = z["labels6"].astype(np.float32)
    if n:
        X, Y = X[:n], Y[:n]
    return X, Y


def _with_sim(X, Y, Xs, Ys, sim_weight: float):
    """Append simulated images (loss weight ``sim_weight`` each; real images weigh 1) to a training set."""
    if Xs is None:
        return X, Y, None
    W = np.concatenate([np.ones(len(X), np.float32), np.full(len(Xs), sim_weight, np.float32)])
    return np.concatenate([X, Xs]), np.concatenate([Y, Ys]), W


def _aucs(y, p):
    from sklearn.metrics import roc_auc_score

    return [float(roc_auc_score(y[:, k], p[:, k])) if 0 < y[:, k].sum() < len(y) else float("nan")
            for k in range(y.shape[1])]


def cmd_cv(a):
    from scopenet.tasks.classify import TipClassifier
    from scopenet.tasks.classify.data import session_folds

    d, X = _hsi(a.size)
    Xs, Ys = _sim(a.sim, a.size, a.sim_n)
    folds = session_folds(d.sessions, a.folds, 0)
    res = {"size": a.size, "epochs": a.epochs, "lr": a.lr, "stem_stride": a.stem_stride, "init": a.init,
           "repeats": a.repeats,
           "channels": a.channels, "sim": a.sim, "sim_n": a.sim_n, "sim_weight": a.sim_weight,
           "folds": []}
    logits: dict = {}
    for fi, (tr, te) in enumerate(folds):
        if a.only is not None and fi not in a.only:
            continue
        t = time.time()
        Xtr, Ytr, W = _with_sim(X[tr], d.soft[tr], Xs, Ys, a.sim_weight)
        ps, ps_tta = [], []
        for r in range(a.repeats):  # independent seeds (as ClassifierConfig.ensemble: seed + 100 r)
            clf = TipClassifier(size=a.size, epochs=a.epochs, seed=fi + 100 * r, threads=a.threads, lr=a.lr,
                                **_arch(a))
            clf.fit(Xtr, Ytr, sample_weight=W, inputs_prepared=True, init=a.init)
            ps_tta.append(clf.predict_logits(X[te], inputs_prepared=True, tta=True))
            ps.append(clf.predict_logits(X[te], inputs_prepared=True))
        single = [float(np.nanmean(_aucs(d.hard[te], q))) for q in ps]
        logits[f"fold{fi}_test_index"], logits[f"fold{fi}_logits"] = te, np.stack(ps)
        p, p0 = np.mean(ps_tta, 0), np.mean(ps, 0)  # the ensemble averages logits (AUC needs only the order)
        auc, auc0 = _aucs(d.hard[te], p), _aucs(d.hard[te], p0)
        res["folds"].append({"fold": fi, "n_test": len(te), "auc_tta": auc, "auc": auc0,
                             "macro_tta": float(np.nanmean(auc)), "macro": float(np.nanmean(auc0)),
                             "macro_single_seeds": single, "time_s": time.time() - t})
        print(fi, np.round(auc0, 3), "macro", round(float(np.nanmean(auc0)), 3), "tta",
              round(float(np.nanmean(auc)), 3), "single seeds", np.round(single, 3), f"{time.time() - t:.0f}s",
              flush=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
        np.savez_compressed(Path(a.out).with_suffix(".logits.npz"), **logits)  # per seed, for ensemble studies
    m = [f["macro"] for f in res["folds"]]
    print("macro mean", np.mean(m).round(4), "sd", np.std(m, ddof=1).round(3) if len(m) > 1 else "",
          "tta", np.mean([f["macro_tta"] for f in res["folds"]]).round(4),
          "single-seed mean", np.mean([f["macro_single_seeds"] for f in res["folds"]]).round(4))


def cmd_final(a):
    from scopenet.tasks.classify import TipClassifier

    d, X = _hsi(a.size)
    Xs, Ys = _sim(a.sim, a.size, a.sim_n)
    Xtr, Ytr, W = _with_sim(X, d.soft, Xs, Ys, a.sim_weight)
    t = time.time()
    metrics = {}
    if a.cv:
        cv = json.loads(Path(a.cv).read_text())
        if cv.get("repeats", 1) != a.ensemble:  # the CV figure must describe the model shipped
            sys.exit(f"--cv {a.cv} averaged {cv.get('repeats', 1)} seeds per fold; use --ensemble {cv.get('repeats', 1)}")
        differ = [k for k in ("size", "epochs", "lr", "channels", "stem_stride", "init", "sim", "sim_n", "sim_weight")
                  if k in cv and cv[k] != getattr(a, k)]
        if differ:
            sys.exit(f"--cv {a.cv} was run with other settings: " + ", ".join(f"{k}={cv[k]!r}" for k in differ))
    clf = TipClassifier(size=a.size, epochs=a.epochs, seed=0, threads=a.threads, lr=a.lr, ensemble=a.ensemble,
                        **_arch(a))
    init = a.init
    if a.member_init:  # one start per member: a model name/path or 'none' (random)
        init = [None if m.lower() == "none" else m for m in a.member_init.split(",")]
    clf.fit(Xtr, Ytr, sample_weight=W, inputs_prepared=True, progress=True, init=init)
    if a.cv:
        per = np.array([f["auc"] for f in cv["folds"]])
        macro = per.mean(1)
        metrics = {"cv_sessions_folds": len(per), "cv_macro_auc_mean": float(macro.mean()),
                   "cv_macro_auc_sd": float(macro.std(ddof=1)) if len(per) > 1 else None,
                   "cv_auc_per_category_mean": dict(zip(clf.categories, per.mean(0).round(4).tolist()))}
    clf.card_ = {"training_data": "gordon-hsi (3,271 images, 23 sessions, soft labels)"
                                  + (f" + {len(Xs)} simulate.spm images" if Xs is not None else ""),
                 **({"init": clf.card_["init"]} if "init" in clf.card_ else {}),
                 "metrics": metrics, "training_time_s": round(time.time() - t, 1),
                 "evaluation": "5-fold session-held-out CV on gordon-hsi (session_folds seed 0), "
                               "AUC per category on hard labels (mean score >= 0.5)"}
    print(clf.save(Path(a.out) if a.out else WEIGHTS / "classify-hsi-six", overwrite=True))


def cmd_simdata(a):
    from scopenet.simulate.spm import simulate_batch

    t = time.time()
    s = simulate_batch(a.n, a.size, seed=a.seed, surfaces=json.loads(a.surfaces) if a.surfaces else None) \
        if a.surfaces else simulate_batch(a.n, a.size, seed=a.seed)
    from scopenet.simulate.spm.labels import good_tip, shape_defect

    # the verdict without the visibility test of apex defects (the rule before 2026-11), for comparison
    strict = np.array([good_tip(lab, p["ready"], p["max_ghost_weight"], p["elongation"])
                       for lab, p in zip(s["labels6"], s["params"])])
    defect = np.array([shape_defect(p["max_ghost_weight"], p["elongation"]) for p in s["params"]])
    np.savez_compressed(a.out, images=s["images"], labels6=s["labels6"], good=s["good"], good_strict=strict,
                        artefact_visible=np.array([p["artefact_visible"] for p in s["params"]], np.float32),
                        shape_defect=defect)
    print(f"{a.n} images in {time.time() - t:.0f}s; good fraction {s['good'].mean():.3f}; "
          f"label means {np.round(s['labels6'].mean(0), 3)}")


def _arch(a) -> dict:
    """Network choice from ``--arch`` / ``--channels`` (defaults: the config's TipNet 8-16-16-32-64)."""
    out = {"arch": a.arch, "stem_stride": a.stem_stride}
    if a.channels:
        out["channels"] = [int(c) for c in a.channels.split(",")]
    if a.line_k:
        out["line_k"] = a.line_k
    return out


def cmd_goodbad(a):
    from scopenet.tasks.classify import TipClassifier
    from scopenet.tasks.classify.preprocess import prepare

    tr = [np.load(p) for p in a.sim]
    X = np.concatenate([prepare(z["images"], a.size) for z in tr])
    g = np.concatenate([z["good"] for z in tr]).astype(int)
    if a.soft_width > 0:  # soft verdict: doubt near the rule's cuts is not punished (labels.good_tip_score)
        from scopenet.simulate.spm.labels import good_tip_score

        missing = [p for p, z in zip(a.sim, tr) if "shape_defect" not in z.files]
        if missing:
            raise SystemExit(f"--soft-width needs files written by this script's simdata (shape_defect): {missing}")
        gs = np.concatenate([good_tip_score(z["labels6"], z["shape_defect"], z["artefact_visible"], a.soft_width)
                             for z in tr])
        if not np.array_equal(gs > 0.5, g.astype(bool)):
            print(f"note: soft verdict and hard rule disagree on {int(((gs > 0.5) != g).sum())} ties", flush=True)
        g = np.stack([1 - gs, gs], 1)
    te = np.load(a.test)
    Xt, gt, L6t = prepare(te["images"], a.size), te["good"].astype(int), te["labels6"]
    t = time.time()
    gb = TipClassifier(size=a.size, epochs=a.epochs, mode="single", categories=["bad", "good"],
                       threads=a.threads, lr=a.lr, batch_size=a.batch, seed=a.seed, ensemble=a.ensemble,
                       pos_weight=[1.0, a.good_weight], line_aug_p=a.line_aug, **_arch(a))
    aux = None
    if a.aux:  # the quantities the verdict is made of, as auxiliary targets
        aux = np.concatenate([np.concatenate([z["labels6"], z["artefact_visible"][:, None]], 1) for z in tr])
    gb.fit(X, g, inputs_prepared=True, progress=True, aux=aux, aux_weight=a.aux_weight, init=a.init)
    pred = gb.predict(Xt, inputs_prepared=True)
    acc = float((pred == gt).mean())
    cm = [[int(((gt == i) & (pred == j)).sum()) for j in (0, 1)] for i in (0, 1)]
    print(f"good/bad held-out simulated accuracy {acc:.4f} (n={len(gt)}; majority {max(gt.mean(), 1 - gt.mean()):.3f}); "
          f"confusion [[bad->bad, bad->good], [good->bad, good->good]] {cm}; {time.time() - t:.0f}s", flush=True)
    val = {}
    if a.val:  # a second held-out seed, for choosing between recipes without touching the test set
        zv = np.load(a.val)
        val = {"sim_val_accuracy": float((gb.predict(prepare(zv["images"], a.size), inputs_prepared=True)
                                          == zv["good"].astype(int)).mean()), "sim_val_n": len(zv["good"])}
        print(f"good/bad validation accuracy {val['sim_val_accuracy']:.4f} ({a.val})", flush=True)
    target = f"soft verdict labels.good_tip_score (width {a.soft_width})" if a.soft_width > 0 else "hard good_tip rule"
    gb.card_ = {"training_data": f"{len(X)} simulate.spm images (default config, seeds {a.seeds}); targets: {target}",
                **({"init": gb.card_["init"]} if "init" in gb.card_ else {}),
                "metrics": {**val, "sim_heldout_accuracy": acc, "sim_heldout_n": len(gt),
                            "sim_heldout_majority_accuracy": float(max(gt.mean(), 1 - gt.mean())),
                            "sim_heldout_confusion_bad_good": cm},
                "training_time_s": round(time.time() - t, 1)}
    gb.save(Path(a.out) if a.out else WEIGHTS / "classify-good-bad", overwrite=True)
    if a.six:
        from scopenet.tasks.classify import TipClassifier as T

        six = T.load(WEIGHTS / "classify-hsi-six")
        p = six.predict_proba(Xt if six.config.size == a.size else prepare(te["images"], six.config.size),
                              inputs_prepared=True)
        auc = _aucs((L6t >= 0.5).astype(int), p)
        print("hsi-six on held-out simulated: per-category", np.round(auc, 3), "macro", np.nanmean(auc).round(3))


def cmd_simsix(a):
    """Six-category model trained on simulate.spm data; AUC on held-out sim data and on all of gordon-hsi."""
    from scopenet.tasks.classify import TipClassifier
    from scopenet.tasks.classify.data import load_gordon_hsi
    from scopenet.tasks.classify.preprocess import prepare

    tr = [np.load(p) for p in a.sim]
    X = np.concatenate([prepare(z["images"], a.size) for z in tr])
    Y = np.concatenate([z["labels6"] for z in tr]).astype(np.float32)
    te = np.load(a.test)
    Xt, Yt = prepare(te["images"], a.size), (te["labels6"] >= 0.5).astype(int)
    t = time.time()
    target = "the simulation's soft labels"
    if a.teacher:  # distillation: mix the labels with a teacher's flip/rotation-averaged probabilities
        teacher = TipClassifier.pretrained(a.teacher)
        Xs = X if teacher.config.size == a.size else np.concatenate([prepare(z["images"], teacher.config.size)
                                                                      for z in tr])
        P = teacher.predict_proba(Xs, tta=a.teacher_tta, inputs_prepared=True).astype(np.float32)
        Y = (1 - a.teacher_weight) * Y + a.teacher_weight * P
        target = (f"{1 - a.teacher_weight:g} x the simulation's soft labels + {a.teacher_weight:g} x the probabilities "
                  f"of {a.teacher}{' (8 flips/rotations averaged)' if a.teacher_tta else ''}")
        print(f"teacher {a.teacher} on {len(X)} training images: {time.time() - t:.0f}s", flush=True)
        t = time.time()
    clf = TipClassifier(size=a.size, epochs=a.epochs, threads=a.threads, lr=a.lr, batch_size=a.batch,
                        balance=True, **_arch(a))
    clf.fit(X, Y, inputs_prepared=True, progress=True, init=a.init)
    auc = _aucs(Yt, clf.predict_proba(Xt, inputs_prepared=True))
    print("sim held-out per-category", np.round(auc, 3), "macro", round(float(np.nanmean(auc)), 4), flush=True)
    val = {}
    if a.val:  # a second held-out seed, for choosing between recipes without touching the test set
        zv = np.load(a.val)
        va = _aucs((zv["labels6"] >= 0.5).astype(int),
                   clf.predict_proba(prepare(zv["images"], a.size), inputs_prepared=True))
        val = {"sim_val_macro_auc": float(np.nanmean(va)), "sim_val_n": len(zv["images"])}
        print("sim validation per-category", np.round(va, 3), "macro", round(val["sim_val_macro_auc"], 4), flush=True)
    d = load_gordon_hsi(DATA)
    real = _aucs(d.hard, clf.predict_proba(prepare(d.images, a.size), inputs_prepared=True))
    print("all gordon-hsi (never seen in training) per-category", np.round(real, 3), "macro",
          round(float(np.nanmean(real)), 4), flush=True)
    clf.card_ = {"training_data": f"{len(X)} simulate.spm images (default config, seeds {a.seeds}); no real data; "
                                  f"targets: {target}",
                 **({"init": clf.card_["init"]} if "init" in clf.card_ else {}),
                 "metrics": {**val, "sim_heldout_macro_auc": float(np.nanmean(auc)), "sim_heldout_n": len(Yt),
                             "sim_heldout_auc_per_category": dict(zip(clf.categories, np.round(auc, 4).tolist())),
                             "gordon_hsi_all_macro_auc": float(np.nanmean(real)),
                             "gordon_hsi_all_auc_per_category": dict(zip(clf.categories, np.round(real, 4).tolist()))},
                 "evaluation": "AUC on hard labels (score >= 0.5); sim test seed never used in training; "
                               "gordon-hsi: all 3,271 images (none used in training)",
                 "training_time_s": round(time.time() - t, 1)}
    clf.save(Path(a.out) if a.out else WEIGHTS / "classify-hsi-six-sim", overwrite=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("cv", "final", "goodbad", "simsix"):
        p = sub.add_parser(name)
        p.add_argument("--size", type=int, default=32)
        p.add_argument("--epochs", type=int, default=20)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--lr", type=float, default=3e-3)
        p.add_argument("--stem-stride", type=int, default=1)
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--arch", choices=["tipnet", "tipresnet"], default="tipnet")
        p.add_argument("--channels", default="", help="comma-separated widths, e.g. 16,32,64,128")
        p.add_argument("--line-k", type=int, default=0, help="TipNet scan-line branch: strongest lines kept (0: none)")
        p.add_argument("--out", default=None)
        p.add_argument("--init", default=None, help="fine-tune: start from this saved model (path stem or name)")
    cv = sub.choices["cv"]
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--only", type=int, nargs="*")
    cv.add_argument("--repeats", type=int, default=1, help="models per fold (seeds); their mean is an ensemble")
    cv.set_defaults(out="/tmp/classify-cv.json")
    for p in (cv, sub.choices["final"]):
        p.add_argument("--sim", default=None)
        p.add_argument("--sim-n", type=int, default=None)
        p.add_argument("--sim-weight", type=float, default=1.0,
                       help="loss weight of each simulated image (real images weigh 1)")
    sub.choices["final"].add_argument("--cv", default=None)
    sub.choices["final"].add_argument("--ensemble", type=int, default=1, help="independently seeded nets averaged")
    sub.choices["final"].add_argument("--member-init", default="",
                                      help="comma-separated start per ensemble member: model name/path or none")
    gb = sub.choices["goodbad"]
    gb.add_argument("--sim", nargs="+", required=True)
    gb.add_argument("--test", required=True)
    gb.add_argument("--seeds", default="")
    gb.add_argument("--six", action="store_true")
    gb.add_argument("--good-weight", type=float, default=1.0, help="loss weight of the rare 'good' class")
    gb.add_argument("--aux", action="store_true",
                    help="also learn the six category scores and the apex-defect visibility (auxiliary outputs)")
    gb.add_argument("--aux-weight", type=float, default=1.0)
    gb.add_argument("--soft-width", type=float, default=0.0,
                    help="train on the soft verdict labels.good_tip_score of this width (0: the hard rule)")
    gb.add_argument("--seed", type=int, default=0, help="training seed (member i of an ensemble adds 100 i)")
    gb.add_argument("--ensemble", type=int, default=1, help="independently seeded nets averaged")
    gb.add_argument("--line-aug", type=float, default=0.5,
                    help="fraction given scan-line artefacts (0 for good/bad: artefacts can change the verdict)")
    ss = sub.choices["simsix"]
    ss.add_argument("--sim", nargs="+", required=True)
    ss.add_argument("--test", required=True)
    ss.add_argument("--seeds", default="")
    ss.add_argument("--teacher", default=None,
                    help="distil: model (name or path stem) whose probabilities are mixed into the targets")
    ss.add_argument("--teacher-weight", type=float, default=0.5, help="weight of the teacher in the targets")
    ss.add_argument("--teacher-tta", action=argparse.BooleanOptionalAction, default=True,
                    help="average the teacher over the 8 flips/rotations (default on)")
    for p in (gb, ss):
        p.add_argument("--val", default=None, help="validation file (another held-out seed) for choosing recipes")
    sd = sub.add_parser("simdata")
    sd.add_argument("--n", type=int, default=2000)
    sd.add_argument("--size", type=int, default=64)
    sd.add_argument("--seed", type=int, default=100)
    sd.add_argument("--surfaces", default=None)
    sd.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    {"cv": cmd_cv, "final": cmd_final, "simdata": cmd_simdata, "goodbad": cmd_goodbad, "simsix": cmd_simsix}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
