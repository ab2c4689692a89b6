"""Benchmark: ``scopenet bench classify [--folds 5] [--quick] [--sim-n 1000]``.

Prints, as tables:

1. session-held-out cross-validation on ``gordon-hsi`` (whole sessions per fold): per-category and
   macro ROC AUC of the CNN (retrained per fold with the shipped model's settings) against the pixel
   baselines (logistic regression, random forest on 32x32 pixels) on the *same* folds;
2. per-category precision / recall / F1 and 2x2 confusion matrices of the CNN over all folds (threshold 0.5),
   and the F1-optimal per-category thresholds of those out-of-fold predictions;
3. held-out simulated data (``simulate.spm``, a seed never used in training): good/bad accuracy and
   confusion matrix of ``good-bad``, six-category macro AUC of ``hsi-six``;
4. CPU inference throughput (images/s) at 64x64, batch inference under ``torch.inference_mode``.

Each table's notes compare the model with the best other row (pixel baselines, the majority class).
``--roc DIR`` also writes ROC-curve PNGs.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._bench import BenchSpec, Report, Table, card_field, compare_with_best

DEFAULT_DATA = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "gordon-hsi"


def _table(report: Report, title: str, header: list[str], rows: list[list], notes: list[str] | None = None) -> Table:
    return report.table(Table(list(header), [list(r) for r in rows], title=title, notes=list(notes or [])))


def _aucs(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    from ...metrics.classification import roc_auc

    out = []
    for k in range(y.shape[1]):
        out.append(float(roc_auc(y[:, k], p[:, k], average=None)) if 0 < y[:, k].sum() < len(y) else np.nan)
    return np.array(out)


def session_cv(data_dir, folds: int = 5, limit: int | None = None, epochs: int | None = None,
               baselines: bool = True, seed: int = 0, views: tuple[int, ...] = ()) -> dict:
    """Per-fold AUCs of the CNN and the pixel baselines on session-held-out folds of gordon-hsi.

    The CNN predicts as the shipped model does (its card's number of flip/rotation views); ``views``
    adds, under ``res["views"][n]``, the per-fold AUCs of the same networks averaged over ``n`` views.
    """
    from .baselines import PixelBaseline
    from .data import load_gordon_hsi, session_folds
    from .model import TipClassifier
    from .preprocess import prepare

    d = load_gordon_hsi(data_dir)
    shipped = TipClassifier.pretrained("hsi-six")
    ship = shipped.config
    cfg = ship.model_copy(update={"epochs": epochs or ship.epochs})
    # the shipped recipe: members fine-tuned from the (shipped, simulation-trained) models named in its card
    init = card_field(shipped, "init")
    if init is not None:
        init = [None if n is None else TipClassifier.pretrained(n) for n in init]
    X = prepare(d.images, cfg.size, cfg.flatten)
    n_ship = len(shipped.views(None))
    res: dict = {"cnn": [], "logreg": [], "forest": [], "y": [], "p": [], "n_test": [],
                 "card_thresholds": shipped.thresholds, "shipped_views": n_ship, "views": {n: [] for n in views}}
    for fi, (tr, te) in enumerate(session_folds(d.sessions, folds, seed)[:limit]):
        y = d.hard[te]
        clf = TipClassifier(cfg.model_copy(update={"seed": fi})).fit(X[tr], d.soft[tr], inputs_prepared=True,
                                                                      init=init)
        p = clf.predict_proba(X[te], inputs_prepared=True, tta=n_ship)
        res["cnn"].append(_aucs(y, p))
        for n in views:
            res["views"][n].append(_aucs(y, clf.predict_proba(X[te], inputs_prepared=True, tta=n)))
        res["y"].append(y)
        res["p"].append(p)
        res["n_test"].append(len(te))
        if baselines:
            for kind in ("logreg", "forest"):
                b = PixelBaseline(kind, seed=fi).fit(d.images[tr], d.soft[tr])
                res[kind].append(_aucs(y, b.predict_proba(d.images[te])))
        print(f"fold {fi}: {len(te)} test images, CNN macro AUC {np.nanmean(res['cnn'][-1]):.3f}", flush=True)
    return res


def throughput(clf, n: int = 4096, size: int = 64, batch: int = 1024, threads: int | None = None,
               tta: bool | int | None = None) -> tuple[float, float]:
    """Throughput of ``clf`` on already prepared ``size`` x ``size`` inputs (CPU, inference mode).

    Returns
    -------
    (wall, cpu) : images per wall-clock second, and images per CPU-second of this process
        (``time.process_time``; robust to other jobs on a shared machine; with ``threads`` > 1 it
        sums the threads' time, so it is the cost per core).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    x = np.random.default_rng(0).normal(size=(n, 1, size, size)).astype(np.float32)
    clf.predict_proba(x[:batch], inputs_prepared=True, batch_size=batch, tta=tta)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    clf.predict_proba(x, inputs_prepared=True, batch_size=batch, tta=tta)
    return n / (time.perf_counter() - t), n / max(time.process_time() - c, 1e-9)


def _installed() -> set[str]:
    from ...weights import list_models

    try:
        return {m if isinstance(m, str) else getattr(m, "name", str(m)) for m in list_models()}
    except Exception:  # noqa: BLE001 - an unreadable weights folder just means "none extra"
        return set()


def _options(ap) -> None:
    ap.add_argument("--data", default=None, help="gordon-hsi folder (same as --images; default ../shared/data/gordon-hsi)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="evaluate only the first N folds")
    ap.add_argument("--epochs", type=int, default=None, help="CNN epochs per fold (default: the shipped model's)")
    ap.add_argument("--sim-n", type=int, default=1000, help="held-out simulated images")
    ap.add_argument("--sim-seed", type=int, default=999)
    ap.add_argument("--no-cv", action="store_true", help="skip the gordon-hsi cross-validation")
    ap.add_argument("--roc", default=None, help="folder for ROC-curve PNGs")
    ap.add_argument("--tta", action="store_true",
                    help="also score and time hsi-six-sim on 1 view and with all 8 flips/rotations averaged")


def _main(a, report: Report) -> int:
    """``scopenet bench classify`` on the harness."""
    from .data import CATEGORIES
    from .model import TipClassifier

    if a.quick:
        a.limit, a.epochs, a.sim_n = a.limit or 2, a.epochs or 5, min(a.sim_n, 300)
    data = Path(a.images or a.data or DEFAULT_DATA)
    report.data.update({"folds": a.folds, "limit": a.limit, "epochs": a.epochs, "sim_n": a.sim_n,
                        "sim_seed": a.sim_seed, "seed": a.seed})

    # 1-2. real data, session-held-out
    if not a.no_cv:
        if not data.is_dir():
            report.line(f"gordon-hsi not found at {data}: skipping the cross-validation")
        else:
            from ...metrics.classification import multilabel_confusion_matrix, multilabel_precision_recall_f1

            r = session_cv(data, a.folds, a.limit, a.epochs, seed=a.seed, views=(1, 2, 8) if a.tta else ())
            rows, macros = [], {}
            for name in ("cnn", "forest", "logreg"):
                per = np.array(r[name])
                macro = np.nanmean(per, 1)
                macros[name] = float(macro.mean())
                rows.append([name, *np.nanmean(per, 0).tolist(), float(macro.mean()),
                             float(macro.std(ddof=1)) if len(macro) > 1 else 0.0])
            report.data["cv"] = {"per_fold_auc": {k: np.array(r[k]).tolist() for k in ("cnn", "forest", "logreg")},
                                 "n_test": r["n_test"]}
            _table(report, f"gordon-hsi session-held-out ROC AUC ({len(r['cnn'])} of {a.folds} folds; mean over folds)",
                   ["model", *CATEGORIES, "macro", "sd"], rows,
                   ["- " + compare_with_best("cnn", macros, "macro AUC", lower_is_better=False)])
            if r["views"]:
                vrows = []
                for n, per in r["views"].items():
                    m = np.nanmean(np.array(per), 1)
                    vrows.append([n, *np.nanmean(per, 0).tolist(), float(m.mean()),
                                  " ".join(f"{v:.3f}" for v in m)])
                _table(report, f"CNN by flip/rotation views averaged (the shipped model uses {r['shipped_views']})",
                       ["views", *CATEGORIES, "macro", "folds"], vrows)
            y, p = np.concatenate(r["y"]), np.concatenate(r["p"])
            s = multilabel_precision_recall_f1(y, p)
            cm = multilabel_confusion_matrix(y, p)
            _table(report, "CNN per category over all held-out folds (threshold 0.5)",
                   ["category", "precision", "recall", "F1", "TN", "FP", "FN", "TP"],
                   [[c, float(s.precision[k]), float(s.recall[k]), float(s.f1[k]), *cm[k].ravel().tolist()]
                    for k, c in enumerate(CATEGORIES)])
            from ...metrics.classification import f1_optimal_thresholds

            thr = f1_optimal_thresholds(y, p)
            s2 = multilabel_precision_recall_f1(y, p, threshold=thr)
            card_thr = r["card_thresholds"]
            _table(report, "CNN per category at F1-optimal thresholds of these out-of-fold predictions (chosen on "
                   "them, so optimistic; the shipped card's thresholds beside them)",
                   ["category", "threshold", "card threshold", "precision", "recall", "F1"],
                   [[c, float(thr[k]), float(card_thr[k]), float(s2.precision[k]), float(s2.recall[k]),
                     float(s2.f1[k])] for k, c in enumerate(CATEGORIES)])
            if a.roc:
                _roc_png(y, p, CATEGORIES, Path(a.roc) / "roc-gordon-hsi.png")

    # 3. simulated, held out
    from ...metrics.classification import confusion_matrix
    from ...simulate.spm import simulate_batch

    sim = simulate_batch(a.sim_n, 64, seed=a.sim_seed)
    gb = TipClassifier.pretrained("good-bad")
    six = TipClassifier.pretrained("hsi-six")
    pred = gb.predict(sim["images"])
    g = sim["good"].astype(int)
    acc = float((pred == g).mean())
    cmg = confusion_matrix(g, pred, n_classes=2)
    y6 = (sim["labels6"] >= 0.5).astype(int)
    auc6 = _aucs(y6, six.predict_proba(sim["images"]))
    majority = float(max(g.mean(), 1 - g.mean()))
    extra = []
    sim_macros = {"hsi-six": float(np.nanmean(auc6))}
    if "classify-hsi-six-sim" in _installed():
        six_sim = TipClassifier.pretrained("hsi-six-sim")
        n_views = len(six_sim.views(None))
        auc6s = _aucs(y6, six_sim.predict_proba(sim["images"]))
        sim_macros["hsi-six-sim"] = float(np.nanmean(auc6s))
        extra = [*[[f"hsi-six-sim AUC {c}", float(v)] for c, v in zip(CATEGORIES, auc6s)],
                 [f"hsi-six-sim macro AUC ({n_views} view{'s' * (n_views > 1)}, the card's default)",
                  float(np.nanmean(auc6s))]]
        for n in ((1, 8) if a.tta else ()):
            if n != n_views:
                auc = _aucs(y6, six_sim.predict_proba(sim["images"], tta=n))
                extra.append([f"hsi-six-sim macro AUC, {n} view{'s' * (n > 1)}", float(np.nanmean(auc))])
    sim_rows = [["good/bad accuracy", acc], ["good/bad confusion [[bad->bad, bad->good], [good->bad, good->good]]",
                                            str(cmg.tolist())],
                ["good fraction (majority baseline)", majority],
                *[[f"hsi-six AUC {c}", float(v)] for c, v in zip(CATEGORIES, auc6)],
                ["hsi-six macro AUC", float(np.nanmean(auc6))], *extra]
    report.data["simulated"] = {str(k): v for k, v in sim_rows}
    notes = ["- " + compare_with_best("good-bad", {"good-bad": acc, "majority class": majority}, "accuracy",
                                      lower_is_better=False),
             "- six-category macro AUC against chance (0.5): "
             + ", ".join(f"{k} {v:.3f}" for k, v in sim_macros.items())]
    _table(report, f"held-out simulated data ({a.sim_n} images, seed {a.sim_seed})", ["metric", "value"], sim_rows,
           notes)

    # 4. speed
    import torch

    rows = []
    models = [("hsi-six", six, None), ("good-bad", gb, None)]
    if "classify-hsi-six-sim" in _installed():  # six_sim: loaded for the simulated-data table above
        models.append(("hsi-six-sim", six_sim, None))
        for n in ((1, 8) if a.tta else ()):
            if n != len(six_sim.views(None)):
                models.append(("hsi-six-sim", six_sim, n))
    n_all = torch.get_num_threads()  # --threads, else the machine's: taken before throughput() changes it
    for name, clf, tta in models:
        for n_thr in sorted({1, n_all}):
            wall, cpu = throughput(clf, size=clf.config.size, threads=n_thr, tta=tta)
            rows.append([name, f"{clf.config.size}x{clf.config.size}", clf.config.stem_stride,
                         len(clf.views(tta)), n_thr, wall, cpu])
    torch.set_num_threads(n_all)
    report.data["throughput"] = rows
    _table(report, "CPU inference (batch 1024, inference_mode, BatchNorm folded + oneDNN; prepared inputs)",
           ["model", "input", "stem stride", "views", "threads", "images/s (wall)", "images/s per CPU-second"],
           rows)
    return 0


SPEC = BenchSpec("classify", __doc__, _main, _options, quick="2 folds, 5 epochs, 300 simulated images",
                 images="gordon-hsi folder (images.npz + labels.csv; same as --data)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench classify``."""
    return SPEC.main(argv)


def _roc_png(y, p, names, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for k, n in enumerate(names):
        if 0 < y[:, k].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, k], p[:, k])
            ax.plot(fpr, tpr, label=n)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
