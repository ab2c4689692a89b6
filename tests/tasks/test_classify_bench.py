"""`scopenet bench classify`: the session cross-validation re-trains the shipped model's exact recipe."""
from __future__ import annotations

import numpy as np
import pandas as pd

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
    starts = ship.card_.get("init")
    if starts is None:
        assert init is None
    else:
        assert len(init) == ship.config.ensemble == len(starts)
        assert [None if m is None else m.card_["name"] for m in init] == starts
    assert len(r["cnn"]) == 1 and r["cnn"][0].shape == (6,) and r["p"][0].shape == (12, 6)
    # the CNN predicts with the shipped card's views; other view counts are reported beside it
    assert r["shipped_views"] == len(ship.views(None))
    assert list(r["views"]) == [2] and len(r["views"][2]) == 1 and r["views"][2][0].shape == (6,)


def test_bench_main_scores_the_simulation_model_on_its_default_views_and_on_1_and_8(monkeypatch):
    from scopenet.tasks.classify import bench

    tables = {}
    monkeypatch.setattr(bench, "throughput", lambda clf, **kw: (1.0, 1.0))  # timing is not under test here
    monkeypatch.setattr(bench, "_table", lambda title, header, rows: tables.update({title.split(" (")[0]: rows}))
    assert bench.main(["--no-cv", "--sim-n", "40", "--tta"]) == 0
    sim = dict(tables["held-out simulated data"])
    assert 0 <= sim["good/bad accuracy"] <= 1
    if "classify-hsi-six-sim" not in bench._installed():
        return
    n = len(TipClassifier.pretrained("hsi-six-sim").views(None))
    default = sim[f"hsi-six-sim macro AUC ({n} view{'s' * (n > 1)}, the card's default)"]
    others = {k: sim[f"hsi-six-sim macro AUC, {k} view{'s' * (k > 1)}"] for k in (1, 8) if k != n}
    assert others and all(0.5 < v <= 1 for v in [default, *others.values()])
    assert all(v != default for v in others.values())  # averaged probabilities rank the images differently
    # the speed table times the default and the 1- and 8-view predictors: column "views"
    speed = tables["CPU inference"]
    assert {r[3] for r in speed if r[0] == "hsi-six-sim"} == {1, 8, n}
    assert bench.main(["--no-cv", "--sim-n", "40"]) == 0  # without --tta: the default only, the same figure
    again = dict(tables["held-out simulated data"])
    assert again[f"hsi-six-sim macro AUC ({n} view{'s' * (n > 1)}, the card's default)"] == default
    assert not any(", 8 views" in k or ", 1 view" in k for k in again)
