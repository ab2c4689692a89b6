"""The judge: is the tip good? A thin layer over a good/bad :class:`~scopenet.tasks.classify.TipClassifier`.

One network pass gives the good-tip probability, the image embedding (the pooled last-conv features,
which the agent observes) and the distance from the model's training domain; images outside it are
judged ``"unknown"`` instead of good or bad. An optional second model (e.g. the six-category
H:Si(100) classifier trained on simulated scans, ``aux="hsi-six-sim-fast"``) adds what is wrong with the tip: blur, asymmetry,
tip change. With ``features=True`` the judge also returns four model-free image statistics
(:func:`image_features`) that separate a noisy or switching apex (adsorbate, instability) from a blunt
one, which the conditioning agent observes.

:func:`judge_from_card` builds the judge an agent was trained with from its card
(``predict.judge``), so that the observation has the length the agent expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and the classifier load on first use (the supervisor imports this module)
    from ..tasks.classify import TipClassifier

__all__ = ["FEATURE_NAMES", "HSI_RULE_CATEGORIES", "Judge", "JudgeResult", "hsi_crowd_rule", "image_features",
           "judge_from_card"]

#: names of :func:`image_features` columns
FEATURE_NAMES = ("hf_noise", "line_switch", "hf_power", "mid_power")


def image_features(X: np.ndarray) -> np.ndarray:
    """Four model-free statistics of standardised images, float32 [N, 4].

    Parameters
    ----------
    X : ndarray [N, 1, H, W] or [N, H, W]
        X-flattened, standardised images (as :func:`~scopenet.tasks.classify.preprocess.prepare` gives).

    Returns
    -------
    ndarray float32 [N, 4], columns :data:`FEATURE_NAMES`:

    - ``hf_noise``: std of the second difference along the fast axis / (sqrt(6) std of the image): about 1
      for white noise, near 0 for a smooth (blunt-tip) image; a noisy adsorbate or unstable apex raises it;
    - ``line_switch``: the largest ``|log(mean line std above / below)|`` over split lines 1/8..7/8 of
      the frame: a tip change part-way through a scan;
    - ``hf_power``, ``mid_power``: fractions of the spectral power above 0.2 cycles/px and in
      0.08-0.2 cycles/px (resolution: a blunt apex removes both).
    """
    X = np.asarray(X, np.float64)
    X = X[:, 0] if X.ndim == 4 else X
    n, h, w = X.shape
    sd = X.reshape(n, -1).std(1) + 1e-12
    hf = np.diff(X, 2, axis=2).reshape(n, -1).std(1) / (np.sqrt(6.0) * sd)
    rs = X.std(2) + 1e-12                                       # [N, H] line std
    c = np.cumsum(rs, 1)
    ks = np.arange(max(1, h // 8), max(2, h - h // 8))
    above = c[:, ks - 1] / ks
    below = (c[:, -1:] - c[:, ks - 1]) / (h - ks)
    switch = np.abs(np.log(above / below)).max(1)
    F = np.abs(np.fft.rfft2(X - X.mean((1, 2), keepdims=True))) ** 2
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None])
    tot = F.sum((1, 2)) + 1e-30
    high = F[:, r > 0.2].sum(1) / tot
    mid = F[:, (r > 0.08) & (r <= 0.2)].sum(1) / tot
    return np.stack([hf, switch, high, mid], 1).astype(np.float32)


#: categories a multi-label H:Si(100) model needs to serve as a judge (:func:`hsi_crowd_rule`)
HSI_RULE_CATEGORIES = ("individual_atoms", "dimers", "tip_change", "bad_blurry")


def hsi_crowd_rule(proba: np.ndarray, categories) -> np.ndarray:
    """Good-tip probability from a multi-label H:Si(100) model, float [N].

    The crowd verdict of :mod:`~.replay` (``recorded_good``: atoms or dimers seen, no blur, no tip
    change) applied to the model's category probabilities as if they were independent::

        p_good = max(p_atoms, p_dimers) * (1 - p_bad_blurry) * (1 - p_tip_change)
    """
    cats = list(categories)
    P = np.asarray(proba, np.float64)
    col = {c: P[:, cats.index(c)] for c in HSI_RULE_CATEGORIES}
    return (np.maximum(col["individual_atoms"], col["dimers"]) * (1 - col["bad_blurry"])
            * (1 - col["tip_change"])).astype(np.float32)


def judge_from_card(card: dict, **overrides) -> "Judge":
    """The judge an agent was trained with, from its card's ``predict.judge`` (model, aux, threshold, features)."""
    spec = dict((card or {}).get("predict", {}).get("judge", {}) or {})
    kw = {k: spec[k] for k in ("model", "aux", "threshold", "features") if k in spec}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return Judge(**kw)


@dataclass
class JudgeResult:
    """The judge's view of one image.

    Attributes
    ----------
    p_good : float
        Probability that the tip is good.
    verdict : str
        ``"good"`` (``p_good >= threshold``), ``"bad"``, or ``"unknown"`` (outside the model's domain).
    domain_score : float
        Distance from the training domain (NaN without a domain check).
    in_domain : bool
    scores : dict
        Category probabilities of the auxiliary model (empty without one).
    embedding : ndarray float32 [C]
        Pooled last-conv features of the good/bad network.
    features : dict
        :func:`image_features` by name (empty unless the judge has ``features=True``).
    """

    p_good: float
    verdict: str
    domain_score: float
    in_domain: bool
    scores: dict = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    features: dict = field(default_factory=dict)

    def to_dict(self, embedding: bool = False) -> dict:
        d = {"p_good": round(float(self.p_good), 5), "verdict": self.verdict,
             "domain_score": None if not np.isfinite(self.domain_score) else round(float(self.domain_score), 4),
             "in_domain": bool(self.in_domain), "scores": {k: round(float(v), 4) for k, v in self.scores.items()}}
        if self.features:
            d["features"] = {k: round(float(v), 4) for k, v in self.features.items()}
        if embedding:
            d["embedding"] = [round(float(v), 5) for v in self.embedding]
        return d


class Judge:
    """Good/bad tip verdicts with a domain check.

    Parameters
    ----------
    model : str or TipClassifier
        A single-label classifier with a ``good`` category (default: the shipped ``good-bad``, trained on
        simulated scans), or a multi-label H:Si(100) classifier (e.g. ``"hsi-six"``, trained on the
        gordon-hsi crowd labels) whose categories give the good-tip probability by :func:`hsi_crowd_rule`.
    aux : str, TipClassifier or None
        A multi-label model whose category scores are reported too, e.g. ``"hsi-six-sim-fast"`` (default none).
    threshold : float
        ``p_good`` at or above which the tip is good (DeepSPM: 0.9).
    check_domain : bool
        Answer ``"unknown"`` outside the model's training domain.
    features : bool
        Also return :func:`image_features` (observed by agents trained with them).
    """

    def __init__(self, model: str | TipClassifier = "good-bad", aux: str | TipClassifier | None = None,
                 threshold: float = 0.9, check_domain: bool = True, features: bool = False):
        from ..tasks.classify import TipClassifier

        self.clf = model if isinstance(model, TipClassifier) else TipClassifier.pretrained(str(model))
        cats = list(self.clf.categories)
        self.rule = "good" if ("good" in cats and self.clf.config.mode == "single") else None
        if self.rule is None and self.clf.config.mode == "multi" and set(HSI_RULE_CATEGORIES) <= set(cats):
            self.rule = "hsi-crowd"
        if self.rule is None:
            from ..errors import InputError

            raise InputError(f"the judge needs a single-label model with a 'good' category or a multi-label H:Si "
                             f"model with the categories {HSI_RULE_CATEGORIES}, got {cats}")
        self.aux = None if aux is None else (aux if isinstance(aux, TipClassifier) else TipClassifier.pretrained(str(aux)))
        self.threshold = float(threshold)
        self.check_domain = bool(check_domain)
        self._good = cats.index("good") if self.rule == "good" else None
        self.net = self.clf._check_fitted().eval()
        self.embedding_dim = (int(self.net.feature_channels) if hasattr(self.net, "feature_channels")
                              else int(self.clf.domain_features(np.zeros((1, 1, self.clf.config.size,
                                                                          self.clf.config.size), np.float32),
                                                                inputs_prepared=True).shape[1]))
        self.aux_categories = list(self.aux.categories) if self.aux is not None else []
        self.features = bool(features)
        self.feature_names = list(FEATURE_NAMES) if self.features else []

    def __call__(self, image) -> JudgeResult:
        """Judge one image (Micrograph or 2-D array)."""
        return self.judge_many([image])[0]

    def judge_many(self, images) -> list[JudgeResult]:
        """Judge a list of images (each X-flattened, resized to the model's input and standardised)."""
        import torch

        from ..tasks.classify.preprocess import prepare

        X = prepare(images, self.clf.config.size, self.clf.config.flatten)
        if self.rule == "good":
            with torch.inference_mode():
                x = torch.from_numpy(X)
                f = self.net.features(x)
                g = f.float().mean((2, 3))
                extra = self.net.extras(x) if hasattr(self.net, "extras") else None
                logits = self.net.head(f, extra) if hasattr(self.net, "head") else self.net(x)
                p = torch.softmax(logits.float(), 1)[:, self._good].numpy()
            emb = g.numpy().astype(np.float32)
        else:
            p = hsi_crowd_rule(self.clf.predict_proba(X, inputs_prepared=True), self.clf.categories)
            emb = self.clf.domain_features(X, inputs_prepared=True).astype(np.float32)
        check = self.clf.domain_check if self.check_domain else None
        dscore = check.score(emb) if check is not None else np.full(len(X), np.nan)
        inside = ~(dscore > check.threshold) if check is not None else np.ones(len(X), bool)
        aux = None
        if self.aux is not None:
            Xa = X if self.aux.config.size == self.clf.config.size else prepare(images, self.aux.config.size)
            aux = self.aux.predict_proba(Xa, inputs_prepared=True)
        feats = image_features(X) if self.features else None
        out = []
        for i in range(len(X)):
            verdict = "unknown" if not inside[i] else ("good" if p[i] >= self.threshold else "bad")
            scores = dict(zip(self.aux_categories, (float(v) for v in aux[i]))) if aux is not None else {}
            fd = dict(zip(self.feature_names, (float(v) for v in feats[i]))) if feats is not None else {}
            out.append(JudgeResult(float(p[i]), verdict, float(dscore[i]), bool(inside[i]), scores, emb[i], fd))
        return out
