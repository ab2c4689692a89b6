"""`scopenet bench classify`: the session cross-validation re-trains the shipped model's exact recipe."""
from __future__ import annotations

import numpy as np
import pandas as pd

from scopenet.tasks._bench import card_field
from scopenet.tasks.classify import TipClassifier
from scopenet.tasks.classify.bench import session_cv
from scopenet.tasks.classify.data import CATEGORIES


def _fake_hsi(folder, n=24):
    """A gordon-hsi-shaped folder (images.npz + labels.csv); unparsable names make every image a session."""
    rng = np.random.default_rng(0)
    names = np.array([f"img{i}.png" for i in range(n)])
    np.savez(folder / "images.npz", images=rng.integers(0, 255, (n, 64, 64), dtype=np.uint8), names=names)
    cols = {f"mean_{c}": (np.arange(n) % 2 == k % 2).astype(float) for k, c in enumerate(CATEGORIES)}
    pd.DataFrame({"name": names, "n_classifications": 5, **cols, "orig_width": 128, "orig_height": 128}).to_csv(
        folder / "labels.csv", index=False)


def test_session_cv_retrains_the_shipped_recipe_with_its_member_starts(tmp_path, monkeypatch):
    _fake_hsi(tmp_path)
    seen = []
    fit = TipClassifier.fit

    def spy(self, *args, **kw):
        seen.append((self.config, kw.get("init")))
        return fit(self, *args, **kw)

    monkeypatch.setattr(TipClassifier, "fit", spy)
    r = session_cv(tmp_path, folds=2, limit=1, epochs=1, baselines=False, views=(2,))
    ship = TipClassifier.pretrained("hsi-six")
    (cfg, init), = seen
    # the shipped settings (ensemble size, network, input size), only the epochs and the fold's seed changed
    assert cfg.model_copy(update={"epochs": ship.config.epochs, "seed": ship.config.seed}) == ship.config
    starts = card_field(ship, "init")
    if starts is None:
        assert init is None
    else:
        assert len(init) == ship.config.ensemble == len(starts)
        assert [None if m is None else card_field(m, "name") for m in init] == starts
    assert len(r["cnn"]) == 1 and r["cnn"][0].shape == (6,) and r["p"][0].shape == (12, 6)
    # the CNN predicts with the shipped card's views; other view counts are reported beside it
    assert r["shipped_views"] == len(ship.views(None))
    assert list(r["views"]) == [2] and len(r["views"][2]) == 1 and r["views"][2][0].shape == (6,)


def _run(bench, argv):
    from scopenet.tasks._bench import Report

    rep = Report("classify", echo=False)
    assert bench.SPEC.main(argv, report=rep) == 0
    return {t.title.split(" (")[0]: t for t in rep.tables()}


def test_bench_main_scores_the_simulation_model_on_its_default_views_and_on_1_and_8(monkeypatch):
    from scopenet.tasks.classify import bench

    monkeypatch.setattr(bench, "throughput", lambda clf, **kw: (1.0, 1.0))  # timing is not under test here
    tables = _run(bench, ["--no-cv", "--sim-n", "40", "--tta"])
    sim = dict(tables["held-out simulated data"].rows)
    assert 0 <= sim["good/bad accuracy"] <= 1
    # the summary compares the classifier with the best other row: here the majority class
    assert any("vs best other row majority class" in n for n in tables["held-out simulated data"].notes)
    if "classify-hsi-six-sim" not in bench._installed():
        return
    n = len(TipClassifier.pretrained("hsi-six-sim").views(None))
    default = sim[f"hsi-six-sim macro AUC ({n} view{'s' * (n > 1)}, the card's default)"]
    others = {k: sim[f"hsi-six-sim macro AUC, {k} view{'s' * (k > 1)}"] for k in (1, 8) if k != n}
    assert others and all(0.5 < v <= 1 for v in [default, *others.values()])
    assert all(v != default for v in others.values())  # averaged probabilities rank the images differently
    # the speed table times the default and the 1- and 8-view predictors: column "views"
    speed = tables["CPU inference"].rows
    assert {r[3] for r in speed if r[0] == "hsi-six-sim"} == {1, 8, n}
    again = dict(_run(bench, ["--no-cv", "--sim-n", "40"])["held-out simulated data"].rows)  # without --tta
    assert again[f"hsi-six-sim macro AUC ({n} view{'s' * (n > 1)}, the card's default)"] == default
    assert not any(", 8 views" in k or ", 1 view" in k for k in again)
