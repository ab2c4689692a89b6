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

    cfg = default_config().model_copy(update={"out_dir": tmp_path / "runs"})
    cfg.extra.update(labels=str(_export(tmp_path)), images=str(tmp_path), min_agreement=None, classify=SMALL)
    r = main(cfg)
    assert (r.run_dir / "model.safetensors").exists() and (r.run_dir / "last.ckpt").exists()
    assert TipClassifier.load(r.model).categories == ["rows", "bad_blurry"]
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(ReadError, match="bad.csv"):
        scores_from_export(bad)


def test_cli_classify_writes_csv_and_cam_and_names_bad_files(tmp_path):
    from scopenet.cli.main import app

    x = np.random.default_rng(0).normal(size=(20, 16, 16)).astype(np.float32)
    clf = TipClassifier(categories=["bad_blurry", "rows"], **SMALL).fit(x, np.random.default_rng(1).random((20, 2)))
    clf.save(tmp_path / "m")
    for i in range(2):
        np.save(tmp_path / f"a{i}.npy", x[i])
    out = tmp_path / "out.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["classify", str(tmp_path / "a0.npy"), str(tmp_path / "a1.npy"),
                              "--model", str(tmp_path / "m"), "--cam", str(tmp_path / "cams"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["file", "bad_blurry", "rows", "labels"] and len(df) == 2
    np.testing.assert_allclose(df[["bad_blurry", "rows"]].to_numpy(), clf.predict_proba(x[:2]), atol=1e-4)
    assert len(list((tmp_path / "cams").glob("*.png"))) == 2
    # --tta: the flip/rotation-averaged probabilities, which differ from the plain ones
    out_t = tmp_path / "out_tta.csv"
    res = runner.invoke(app, ["classify", str(tmp_path / "a0.npy"), str(tmp_path / "a1.npy"),
                              "--model", str(tmp_path / "m"), "--tta", "8", "-o", str(out_t)])
    assert res.exit_code == 0, res.output
    pt = pd.read_csv(out_t)[["bad_blurry", "rows"]].to_numpy()
    np.testing.assert_allclose(pt, clf.predict_proba(x[:2], tta=True), atol=1e-4)
    assert np.abs(pt - clf.predict_proba(x[:2])).max() > 2e-4  # above the CSV's 4-decimal rounding
    # an unreadable file: error names it, exit 1, no CSV written
    (tmp_path / "junk.tif").write_bytes(b"not an image at all")
    out2 = tmp_path / "out2.csv"
    res = runner.invoke(app, ["classify", str(tmp_path / "a0.npy"), str(tmp_path / "junk.tif"),
                              "--model", str(tmp_path / "m"), "-o", str(out2)])
    assert res.exit_code == 1 and "junk.tif" in res.output and not out2.exists()
    # an existing CSV is not overwritten
    res = runner.invoke(app, ["classify", str(tmp_path / "a0.npy"), "--model", str(tmp_path / "m"), "-o", str(out)])
    assert res.exit_code == 1 and "exists" in res.output


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
    assert ft.categories == ["rows", "bad_blurry"] and ft.card_["init"] == ["pre-model"]
    res = runner.invoke(app, ["train", "denoise", "--init", str(tmp_path / "pre")])
    assert res.exit_code == 1 and "--init" in res.output


def test_per_category_thresholds_from_the_card_drive_labels(tmp_path):
    from scopenet.tasks.classify import classify

    x = np.random.default_rng(0).normal(size=(20, 16, 16)).astype(np.float32)
    clf = TipClassifier(categories=["bad_blurry", "rows"], **SMALL).fit(x, np.random.default_rng(1).random((20, 2)))
    np.testing.assert_allclose(clf.thresholds, [0.5, 0.5])  # no thresholds in the card
    p = clf.predict_proba(x)
    thr = [float(np.median(p[:, 0])), 0.0]  # half the images above the first, all above the second
    clf.card_["thresholds"] = {"bad_blurry": thr[0], "rows": thr[1]}
    clf.save(tmp_path / "m")
    back = TipClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.thresholds, thr)
    np.testing.assert_array_equal(back.predict(x), p >= np.array(thr))
    df = classify(x, back)
    assert all("rows" in s for s in df["labels"])
    assert sum("bad_blurry" in s for s in df["labels"]) == int((p[:, 0] >= thr[0]).sum())
    strict = classify(x, back, threshold=1.01)  # an explicit threshold overrides the card's
    assert (strict["labels"] == "").all()
