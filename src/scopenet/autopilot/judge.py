"""The judge: is the tip good? A thin layer over a good/bad :class:`~scopenet.tasks.classify.TipClassifier`.

One network pass gives the good-tip probability, the image embedding (the pooled last-conv features,
which the agent observes) and the distance from the model's training domain; images outside it are
judged ``"unknown"`` instead of good or bad. An optional second model (e.g. the six-category
H:Si(100) classifier trained on simulated scans, ``aux="hsi-six-sim-fast"``) adds what is wrong with the tip: blur, asymmetry,
tip change.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and the classifier load on first use (the supervisor imports this module)
    from ..tasks.classify import TipClassifier

__all__ = ["Judge", "JudgeResult"]


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
    """

    p_good: float
    verdict: str
    domain_score: float
    in_domain: bool
    scores: dict = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def to_dict(self, embedding: bool = False) -> dict:
        d = {"p_good": round(float(self.p_good), 5), "verdict": self.verdict,
             "domain_score": None if not np.isfinite(self.domain_score) else round(float(self.domain_score), 4),
             "in_domain": bool(self.in_domain), "scores": {k: round(float(v), 4) for k, v in self.scores.items()}}
        if embedding:
            d["embedding"] = [round(float(v), 5) for v in self.embedding]
        return d


class Judge:
    """Good/bad tip verdicts with a domain check.

    Parameters
    ----------
    model : str or TipClassifier
        A single-label classifier with a ``good`` category (default: the shipped ``good-bad``).
    aux : str, TipClassifier or None
        A multi-label model whose category scores are reported too, e.g. ``"hsi-six-sim-fast"`` (default none).
    threshold : float
        ``p_good`` at or above which the tip is good (DeepSPM: 0.9).
    check_domain : bool
        Answer ``"unknown"`` outside the model's training domain.
    """

    def __init__(self, model: str | TipClassifier = "good-bad", aux: str | TipClassifier | None = None,
                 threshold: float = 0.9, check_domain: bool = True):
        from ..tasks.classify import TipClassifier

        self.clf = model if isinstance(model, TipClassifier) else TipClassifier.pretrained(str(model))
        if "good" not in self.clf.categories or self.clf.config.mode != "single":
            from ..errors import InputError

            raise InputError(f"the judge needs a single-label model with a 'good' category, got {self.clf.categories}")
        self.aux = None if aux is None else (aux if isinstance(aux, TipClassifier) else TipClassifier.pretrained(str(aux)))
        self.threshold = float(threshold)
        self.check_domain = bool(check_domain)
        self._good = self.clf.categories.index("good")
        self.net = self.clf._check_fitted().eval()
        self.embedding_dim = int(self.net.feature_channels)
        self.aux_categories = list(self.aux.categories) if self.aux is not None else []

    def __call__(self, image) -> JudgeResult:
        """Judge one image (Micrograph or 2-D array)."""
        return self.judge_many([image])[0]

    def judge_many(self, images) -> list[JudgeResult]:
        """Judge a list of images (each X-flattened, resized to the model's input and standardised)."""
        import torch

        from ..tasks.classify.preprocess import prepare

        X = prepare(images, self.clf.config.size, self.clf.config.flatten)
        with torch.inference_mode():
            x = torch.from_numpy(X)
            f = self.net.features(x)
            g = f.float().mean((2, 3))
            extra = self.net.extras(x) if hasattr(self.net, "extras") else None
            logits = self.net.head(f, extra) if hasattr(self.net, "head") else self.net(x)
            p = torch.softmax(logits.float(), 1)[:, self._good].numpy()
        emb = g.numpy().astype(np.float32)
        check = self.clf.domain_check if self.check_domain else None
        dscore = check.score(emb) if check is not None else np.full(len(X), np.nan)
        inside = ~(dscore > check.threshold) if check is not None else np.ones(len(X), bool)
        aux = None
        if self.aux is not None:
            Xa = X if self.aux.config.size == self.clf.config.size else prepare(images, self.aux.config.size)
            aux = self.aux.predict_proba(Xa, inputs_prepared=True)
        out = []
        for i in range(len(X)):
            verdict = "unknown" if not inside[i] else ("good" if p[i] >= self.threshold else "bad")
            scores = dict(zip(self.aux_categories, (float(v) for v in aux[i]))) if aux is not None else {}
            out.append(JudgeResult(float(p[i]), verdict, float(dscore[i]), bool(inside[i]), scores, emb[i]))
        return out
