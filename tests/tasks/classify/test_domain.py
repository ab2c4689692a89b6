"""The classifier's training-domain check: the Gaussian summary, its threshold, and ``classify``'s
"unknown" answers; and the preprocessing that made every image in SI units look the same."""
from __future__ import annotations

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.tasks.classify import TipClassifier
from scopenet.tasks.classify.domain import DomainCheck
from scopenet.tasks.classify.preprocess import prepare

from ...conftest import shared_path


def test_fit_scores_distance_from_the_training_features_and_round_trips():
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(4.0, 0.1, 16))
    f = rng.multivariate_normal(np.full(16, 3.0), cov, size=3000)
    chk = DomainCheck.fit(f[:2000], k=6).calibrate(f[2000:], 0.95)
    held = chk.score(f[2000:])
    assert np.mean(held > chk.threshold) == pytest.approx(0.05, abs=0.002)
    # the Mahalanobis distance of a Gaussian is chi-square with 16 degrees of freedom: mean about 16
    assert np.mean(held) == pytest.approx(16, rel=0.1)
    far = f[2000:2010] + 6.0 * np.sqrt(np.diag(cov))
    assert (chk.score(far) > chk.threshold).all()
    back = DomainCheck.from_dict(chk.to_dict(digits=12))
    np.testing.assert_allclose(back.score(f[:50]), chk.score(f[:50]), rtol=1e-6)
    with pytest.raises(InputError):
        DomainCheck.fit(f[:5], k=6)
    with pytest.raises(InputError, match="malformed"):
        DomainCheck.from_dict({"mean": [1.0]})


def test_images_in_si_units_are_standardised_like_any_other():
    """Topographs in metres (deviations ~1e-10) used to be divided by a 1e-6 floor: every image became
    nearly flat and every one got the same probabilities (issue #18)."""
    rng = np.random.default_rng(1)
    a = rng.random((2, 64, 64))
    np.testing.assert_allclose(prepare(a * 1e-10), prepare(a), atol=1e-5)
    assert not np.allclose(prepare(a * 1e-10)[0], prepare(a * 1e-10)[1])
    assert np.all(prepare(np.full((1, 16, 16), 3e-9)) == 0)  # flat is flat in any units
    clf = TipClassifier.pretrained("hsi-six")
    p = clf.predict_proba(a * 1e-10)
    np.testing.assert_allclose(p, clf.predict_proba(a), atol=1e-4)


def test_shipped_classifiers_carry_a_calibrated_check():
    for name in ("hsi-six", "hsi-six-sim", "hsi-six-sim-fast", "good-bad"):
        clf = TipClassifier.pretrained(name)
        chk = clf.domain_check
        assert chk is not None and np.isfinite(chk.threshold) and "H:Si(100)" in chk.surfaces
        assert chk.rates["refused"]["in-domain held out"] == pytest.approx(0.05, abs=0.01)


def test_classify_answers_unknown_outside_the_domain_and_says_why():
    z = np.load(shared_path("data", "gordon-hsi", "images.npz"))["images"]
    hsi = z[np.random.default_rng(0).choice(len(z), 200, replace=False)].astype(np.float32) / 255
    other = sn.read(shared_path("fixtures", "bruker", "old_bruker.002"))
    df = sn.classify([*hsi, other])
    # calibrated to refuse 5 % of images of a new session (1.7-10 % per session fold)
    assert df["in_domain"][:200].mean() >= 0.85
    last = df.iloc[-1]
    assert not last["in_domain"] and last["labels"] == "unknown"
    assert "H:Si(100)" in last["reason"] and last["domain_score"] > 0
    off = sn.classify([other], check_domain=False)
    assert off["labels"][0] != "unknown" and bool(off["in_domain"][0])
