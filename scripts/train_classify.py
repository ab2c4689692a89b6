"""Cross-validate tip-state classifiers and make their simulated training data (CPU; run with `nice`).

    python scripts/train_classify.py cv      --size 32 --epochs 20 --folds 5 [--sim sim.npz --sim-n 2000 --sim-weight 0.3] --out cv.json
    python scripts/train_classify.py simdata --n 6000 --seed 100 --out sim.npz

`cv` trains one TipNet per session-held-out fold of gordon-hsi (folds from ``session_folds(k, seed=0)``)
and records per-category ROC AUC (``--repeats N``: N seeds per fold, their mean logits an ensemble; the
per-seed logits go to ``<out>.logits.npz``). `simdata` writes simulated images with exact labels.

Training the shipped classifiers is ``scopenet train classify --config recipes/<model>.yaml`` (the former
``final``, ``goodbad`` and ``simsix`` commands of this script; ``kind: gordon-hsi`` or ``kind: simulated``
data, with ``aux`` and ``teacher`` options); `scopenet bench classify` cross-validates the hsi-six recipe.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("cv",):
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
    cv.add_argument("--sim", default=None)
    cv.add_argument("--sim-n", type=int, default=None)
    cv.add_argument("--sim-weight", type=float, default=1.0,
                    help="loss weight of each simulated image (real images weigh 1)")
    sd = sub.add_parser("simdata")
    sd.add_argument("--n", type=int, default=2000)
    sd.add_argument("--size", type=int, default=64)
    sd.add_argument("--seed", type=int, default=100)
    sd.add_argument("--surfaces", default=None)
    sd.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    {"cv": cmd_cv, "simdata": cmd_simdata}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
