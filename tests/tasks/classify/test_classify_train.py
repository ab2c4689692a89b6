"""Training from a labelling-service export, and the `scopenet classify` CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scopenet.errors import ReadError
from scopenet.tasks.classify import TipClassifier
from scopenet.tasks.classify.train import fit_from_export, main, scores_from_export

SMALL = dict(size=16, channels=[4, 8, 8], dense=16, dropout=0.0, batch_size=16, line_aug_p=0.0, epochs=2)


def _export(tmp_path, n=12):
    """Images (.npy) and a service-style events export with 3 votes per image."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        np.save(tmp_path / f"im{i}.npy", rng.normal(size=(24, 24)).astype(np.float32))
        for u in range(3):
            rows.append({"event_id": len(rows), "image_id": i, "image": f"im{i}.npy", "user": f"u{u}",
                         "rows": int(i % 2 == 0), "bad_blurry": int(u < i % 3)})
    path = tmp_path / "events.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_scores_from_events_export(tmp_path):
    s = scores_from_export(_export(tmp_path))
    assert len(s) == 12 and (s["n_classifications"] == 3).all()
    np.testing.assert_allclose(s["mean_rows"], [1, 0] * 6)
    np.testing.assert_allclose(s["mean_bad_blurry"], [(i % 3) / 3 for i in range(12)])
    np.testing.assert_allclose(s["agree_bad_blurry"], [2 * abs((i % 3) / 3 - 0.5) for i in range(12)])


def test_fit_from_export_uses_soft_labels(tmp_path):
    from scopenet.tasks.classify.config import ClassifierConfig

    clf, scores = fit_from_export(_export(tmp_path), tmp_path, ClassifierConfig(**SMALL), min_agreement=None)
    assert clf.categories == ["rows", "bad_blurry"]
    assert clf.predict_proba([np.zeros((24, 24)) + np.arange(24)]).shape == (1, 2)


def test_main_writes_model_and_refuses_bad_export(tmp_path):
    from scopenet.tasks.classify.train import default_config

    from scopenet.tasks.runconfig import run_config

    cfg = run_config({**default_config().to_dict(), "workdir": str(tmp_path / "runs"), "classifier": SMALL,
                      "data": {"kind": "export", "labels": str(_export(tmp_path)), "images": str(tmp_path),
                               "min_agreement": None}})
    r = main(cfg, progress=False)
    assert (r.run_dir / "model.safetensors").exists() and (r.run_dir / "last.ckpt").exists()
    assert TipClassifier.load(r.model).categories == ["rows", "bad_blurry"]
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(ReadError, match="bad.csv"):
        scores_from_export(bad)


def test_cli_train_classify_fine_tunes_a_saved_model(tmp_path, monkeypatch):
    from scopenet.cli.main import app

    x = np.random.default_rng(0).normal(size=(20, 16, 16)).astype(np.float32)
    pre = TipClassifier(categories=["a", "b", "c"], **{**SMALL, "channels": [4, 8, 8, 8]})
    pre.fit(x, np.random.default_rng(1).random((20, 3)))
    pre.save(tmp_path / "pre", name="pre-model")
    labels = _export(tmp_path)
    runner = CliRunner()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    res = runner.invoke(app, ["train", "classify", "--labels", str(labels), "--init", str(tmp_path / "pre")])
    assert res.exit_code == 0, res.output
    ft = TipClassifier.load(next((tmp_path / "work").rglob("model.safetensors")).with_suffix(""))
    # the init model's network (4 blocks, 16 px) replaces the default configuration's; categories from the export
    assert ft.config.channels == [4, 8, 8, 8] and ft.config.size == 16
    card = ft.card_.model_dump() if hasattr(ft.card_, "model_dump") else ft.card_
    assert ft.categories == ["rows", "bad_blurry"]
    assert (card.get("training") or {}).get("init", card.get("init"))[0] in ("pre-model", "pre")  # the start, named
    res = runner.invoke(app, ["train", "denoise", "--init", str(tmp_path / "pre")])
    assert res.exit_code == 1 and "--init" in res.output


def test_per_category_thresholds_from_the_card_drive_labels(tmp_path):
    from scopenet.tasks.classify import classify

    x = np.random.default_rng(0).normal(size=(20, 16, 16)).astype(np.float32)
    clf = TipClassifier(categories=["bad_blurry", "rows"], **SMALL).fit(x, np.random.default_rng(1).random((20, 2)))
    np.testing.assert_allclose(clf.thresholds, [0.5, 0.5])  # no thresholds in the card
    p = clf.predict_proba(x)
    thr = [float(np.median(p[:, 0])), 0.0]  # half the images above the first, all above the second
    clf.card_.predict["thresholds"] = {"bad_blurry": thr[0], "rows": thr[1]}
    clf.save(tmp_path / "m")
    back = TipClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.thresholds, thr)
    np.testing.assert_array_equal(back.predict(x), p >= np.array(thr))
    df = classify(x, back)
    assert all("rows" in s for s in df["labels"])
    assert sum("bad_blurry" in s for s in df["labels"]) == int((p[:, 0] >= thr[0]).sum())
    strict = classify(x, back, threshold=1.01)  # an explicit threshold overrides the card's
    assert (strict["labels"] == "").all()
