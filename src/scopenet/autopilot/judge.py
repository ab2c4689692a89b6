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

__all__ = ["FEATURE_NAMES", "HSI_RULE_CATEGORIES", "Judge", "JudgeResult", "TIP_FEATURE_NAMES", "TipJudge",
           "hsi_crowd_rule", "image_features", "judge_from_card", "knn_distance", "make_judge", "native_tip_features", "tip_features"]

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
    """The judge an agent was trained with, from its card's ``predict.judge`` (model, aux, threshold, features).

    ``overrides`` (e.g. ``model="autopilot-judge"``) replace the card's; a tip-feature judge
    (:class:`TipJudge`) takes only ``threshold``, and its observation is not the one a trained agent expects.
    """
    spec = dict((card or {}).get("predict", {}).get("judge", {}) or {})
    kw = {k: spec[k] for k in ("model", "aux", "threshold", "features") if k in spec}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return make_judge(**kw)


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
    reason : str
        Why the verdict is ``"unknown"`` (:class:`TipJudge`: ``not_topograph``, ``blank``, ``noise``, ``coarse``,
        ``out_of_domain``, ``unfamiliar``, ``low_confidence``); empty otherwise.
    detail : str
        The quantity behind ``reason``, its value and the threshold (e.g. ``"5-NN distance to the training
        features 4.12 > 3.30"``); empty when there is none.
    """

    p_good: float
    verdict: str
    domain_score: float
    in_domain: bool
    scores: dict = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    features: dict = field(default_factory=dict)
    reason: str = ""
    detail: str = ""

    def to_dict(self, embedding: bool = False) -> dict:
        d = {"p_good": round(float(self.p_good), 5), "verdict": self.verdict,
             "domain_score": None if not np.isfinite(self.domain_score) else round(float(self.domain_score), 4),
             "in_domain": bool(self.in_domain), "scores": {k: round(float(v), 4) for k, v in self.scores.items()}}
        if self.features:
            d["features"] = {k: round(float(v), 4) for k, v in self.features.items()}
        if self.reason:
            d["reason"] = self.reason
        if self.detail:
            d["detail"] = self.detail
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


# ----------------------------------------------------------------------------- surface-agnostic tip judge

#: names of :func:`tip_features` columns (the first four are :data:`FEATURE_NAMES`)
TIP_FEATURE_NAMES = FEATURE_NAMES + ("glitch_max", "glitch_lines", "lattice_peak", "ghost", "line_anisotropy",
                                     "grad_kurtosis")

#: pixel size (m) above which no atomic-scale tip verdict is possible: the judge says unknown
MAX_PIXEL_M = 3e-10


def _row_glitch(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line-to-line discontinuities from the per-row 90th percentile of ``|z_i - (z_{i-1} + z_{i+1}) / 2|`` over
    its median row:
    log of the largest ratio, and the number of glitch lines per 64 lines (rows that are a local maximum of
    the ratio and exceed 2)."""
    r = np.percentile(np.abs(X[:, 1:-1] - 0.5 * (X[:, :-2] + X[:, 2:])), 90, axis=2)     # [N, H-2]
    q = r / (np.median(r, 1, keepdims=True) + 1e-9)
    pad = np.pad(q, ((0, 0), (1, 1)), constant_values=0.0)
    peak = (q >= pad[:, :-2]) & (q >= pad[:, 2:]) & (q > 2.0)
    return np.log(q.max(1)), peak.sum(1) * 64.0 / X.shape[1]


def _lattice_peak(X: np.ndarray) -> np.ndarray:
    """Strongest spectral peak over the radial geometric-mean power at its frequency (log; 0.04-0.45 cycles/px)."""
    n, h, w = X.shape
    L = np.log(np.abs(np.fft.fft2(X)) ** 2 + 1e-12).reshape(n, -1)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None]
    r = np.hypot(fy, fx)
    band = ((r >= 0.04) & (r <= 0.45) & (np.abs(fx) > 0.5 / w) & (np.abs(fy) > 0.5 / h)).ravel()
    ring = np.minimum((r * max(h, w)).round().astype(int), max(h, w)).ravel()
    cnt = np.bincount(ring, minlength=ring.max() + 1)
    mean = np.stack([np.bincount(ring, weights=li, minlength=len(cnt)) for li in L]) / np.maximum(cnt, 1)
    return (L - mean[:, ring])[:, band].max(1)


def _ghost(X: np.ndarray, rmin: float = 2.5, rmax: float = 16.0) -> np.ndarray:
    """Double-tip evidence from the autocorrelation: max over its side peaks d of ACF(d) - max(ACF(2d), 0).

    A second apex displaced by d copies every feature at d: a side peak of height about w / (1 + w^2)
    with nothing at 2d. A lattice repeats its peaks at 2d, so they cancel.
    """
    n, h, w = X.shape
    P = np.abs(np.fft.fft2(X - X.mean((1, 2), keepdims=True))) ** 2
    k = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None])
    ring = np.minimum((k * max(h, w)).round().astype(int), max(h, w)).ravel()
    cnt = np.maximum(np.bincount(ring), 1)
    R = np.stack([np.bincount(ring, weights=p.ravel(), minlength=len(cnt)) for p in P]) / cnt
    # power over its radial mean: the isotropic envelope (feature size, blur) goes, directional echoes stay
    W = P / (R[:, ring].reshape(n, h, w) + 1e-12) * np.exp(-(k / 0.3) ** 2)
    W[:, 0, 0] = 0.0
    A = np.fft.ifft2(W).real
    A /= A[:, :1, :1] + 1e-12
    A = np.fft.fftshift(A, (1, 2))
    cy, cx = h // 2, w // 2
    yy, xx = np.mgrid[:h, :w]
    dy, dx = yy - cy, xx - cx
    rr = np.hypot(dy, dx)
    # local maxima (3x3) inside the annulus, one half-plane (the ACF is symmetric)
    pad = np.pad(A, ((0, 0), (1, 1), (1, 1)), mode="edge")
    nb = np.max(np.stack([pad[:, 1 + a:1 + a + h, 1 + b:1 + b + w] for a in (-1, 0, 1) for b in (-1, 0, 1)
                          if a or b]), 0)
    sel = (rr >= rmin) & (rr <= rmax) & ((dy > 0) | ((dy == 0) & (dx > 0)))
    out = np.zeros(n)
    for i in range(n):
        pk = sel & (A[i] >= nb[i]) & (A[i] > 0.05)
        best = 0.0
        for y, x in zip(*np.nonzero(pk)):
            y2, x2 = cy + 2 * (y - cy), cx + 2 * (x - cx)
            two = 0.0
            if 0 <= y2 < h and 0 <= x2 < w:
                two = max(0.0, float(A[i, max(0, y2 - 1):y2 + 2, max(0, x2 - 1):x2 + 2].max()))
            best = max(best, float(A[i, y, x]) - two)
        out[i] = best
    return out


def tip_features(X: np.ndarray) -> np.ndarray:
    """Surface-agnostic tip-quality evidence of standardised images, float32 [N, 10].

    Parameters
    ----------
    X : ndarray [N, 1, H, W] or [N, H, W]
        X-flattened, standardised images (:func:`~scopenet.tasks.classify.preprocess.prepare`).

    Returns
    -------
    ndarray float32 [N, 10], columns :data:`TIP_FEATURE_NAMES`: the four :func:`image_features`, then

    - ``glitch_max``, ``glitch_lines``: line-to-line discontinuities (an unstable apex): log of the largest
      row's 90th percentile of ``|z_i - (z_{i-1} + z_{i+1})/2|`` over the median row's, and the number of
      glitch lines (local maxima of that ratio above 2) per 64 lines;
    - ``lattice_peak``: log of the strongest spectral peak over the radial geometric-mean power at its frequency
      (0.04-0.45 cycles/px, the axes excluded): a resolved lattice with a sharp apex gives a high peak;
    - ``ghost``: autocorrelation side peak with no echo at twice its displacement (a double tip);
    - ``line_anisotropy``: log of the mean squared slow-axis over fast-axis difference (streaks and
      line-to-line jumps raise it; about 0 for an isotropic image);
    - ``grad_kurtosis``: log kurtosis of the slow-axis derivative (isolated spikes and glitch lines).
    """
    X = np.asarray(X, np.float64)
    X = X[:, 0] if X.ndim == 4 else X
    n, h, w = X.shape
    base = image_features(X).astype(np.float64)
    gmax, gfrac = _row_glitch(X)
    peak = _lattice_peak(X)
    ghost = _ghost(X)
    dy2 = (np.diff(X, axis=1) ** 2).mean((1, 2))
    dx2 = (np.diff(X, axis=2) ** 2).mean((1, 2))
    streak = np.log((dy2 + 1e-12) / (dx2 + 1e-12))
    d = np.diff(X, axis=1).reshape(n, -1)
    d = d - d.mean(1, keepdims=True)
    kurt = np.log((d ** 4).mean(1) / ((d ** 2).mean(1) ** 2 + 1e-30) + 1e-9)
    return np.column_stack([base, gmax, gfrac, peak, ghost, streak, kurt]).astype(np.float32)


def native_tip_features(images, max_size: int = 128) -> np.ndarray:
    """:func:`tip_features` of each image at its own resolution (X-flattened, standardised, squared to its
    shorter side, at most ``max_size`` px), so that thin glitch lines are not averaged away; float32 [N, 10]."""
    from ..tasks.classify.preprocess import prepare

    out = []
    for z in images:
        n = int(min(max_size, *np.shape(z)[-2:]))
        out.append(tip_features(prepare([z], max(n, 16)))[0])
    return np.asarray(out, np.float32).reshape(len(out), len(TIP_FEATURE_NAMES))


def knn_distance(ref: np.ndarray, Z: np.ndarray, k: int, leave_one_out: bool = False, chunk: int = 512) -> np.ndarray:
    """Euclidean distance of each row of ``Z`` [N, D] to its ``k``-th nearest row of ``ref`` [M, D], float64 [N].

    ``leave_one_out``: ``Z`` is ``ref`` itself and each row's own zero distance is skipped.
    """
    ref = np.asarray(ref, np.float64)
    Z = np.asarray(Z, np.float64)
    rn = (ref ** 2).sum(1)
    out = np.empty(len(Z))
    kk = int(k) + (1 if leave_one_out else 0)
    for i in range(0, len(Z), chunk):
        z = Z[i:i + chunk]
        d2 = np.maximum((z ** 2).sum(1)[:, None] + rn[None] - 2 * z @ ref.T, 0.0)
        out[i:i + chunk] = np.sqrt(np.partition(d2, kk - 1, axis=1)[:, kk - 1])
    return out


#: signal units of a topograph (a calibrated image in any other unit, e.g. A or Hz, is not judged)
LENGTH_UNITS = ("m", "mm", "um", "µm", "nm", "pm", "A", "Å")


def _raw(image) -> tuple[np.ndarray, float | None, bool]:
    """(finite-filled float64 2-D array, largest pixel size in m or None, whether the signal is a height)."""
    ps, height = None, True
    unit = str(getattr(image, "signal_unit", "") or "")
    if unit:
        height = unit in LENGTH_UNITS and unit != "A"     # "A" is an ampere in scanning-probe files
    if hasattr(image, "pixel_size_m"):
        try:
            sizes = [v for v in image.pixel_size_m() if v]
            ps = max(sizes) if sizes else None
        except Exception:  # noqa: BLE001 - an axis without a length unit: no calibration
            ps = None
        image = image.data
    z = np.asarray(image, np.float64)
    if z.ndim == 3:
        z = z[0]
    if z.ndim != 2:
        from ..errors import InputError

        raise InputError(f"the judge takes 2-D images, got shape {z.shape}")
    fin = np.isfinite(z)
    if not fin.all():
        z = np.where(fin, z, np.nanmean(z) if fin.any() else 0.0)
    return z, ps, height


class TipJudge:
    """A surface-agnostic tip judge: an MLP on :func:`native_tip_features`, with calibrated ``"unknown"`` answers.

    Same API as :class:`Judge` (``judge(image)``, ``judge_many(images)``, ``threshold``,
    ``embedding_dim``); the embedding is the standardised feature vector. The verdict is ``"unknown"``
    (``JudgeResult.reason``) when

    - ``not_topograph``: a Micrograph whose signal unit is not a length (a current in A, a frequency shift
      in Hz...): tips are judged on topographs;
    - ``coarse``: the image is calibrated and its pixel is larger than :data:`MAX_PIXEL_M` (no atomic
      contrast can show the apex);
    - ``blank``: (almost) constant, or fewer than 16 distinct values;
    - ``noise``: ``hf_noise`` above ``max_hf_noise`` (no structure above white noise);
    - ``out_of_domain``: the Mahalanobis distance of the features from the training set above the
      training set's ``domain_threshold`` quantile;
    - ``unfamiliar``: the distance of the standardised feature vector to its ``familiarity_k``-th nearest
      training row above ``familiarity_threshold`` (the ``familiarity_quantile`` of the training rows' own
      leave-one-out distances; parameters without a reference set skip the rule);
    - ``low_confidence``: ``|p_good - threshold| < band``.

    ``JudgeResult.detail`` names the quantity, its value and the threshold behind an ``out_of_domain``,
    ``unfamiliar``, ``noise`` or ``low_confidence`` answer.

    Parameters
    ----------
    params : str or dict
        A name in ``scopenet/weights`` (``"autopilot-judge"``: ``<name>.json``'s ``judge``), a path to such
        a JSON, or the parameter dict itself (``scripts/train_autopilot_judge.py`` writes it).
    threshold : float
        ``p_good`` at or above which the tip is good (default 0.5: the model is trained with balanced classes).
    check_domain : bool
        Apply the ``unknown`` rules (the low-confidence band included).
    variant : str
        Key of the parameters in the JSON (``"judge"``). Leave-one-surface-out models are re-fitted by
        ``scopenet bench autopilot --loso`` instead of shipped.
    """

    def __init__(self, params: str | dict = "autopilot-judge", threshold: float = 0.5, check_domain: bool = True,
                 variant: str = "judge"):
        import json
        from pathlib import Path

        self.card: dict = {}
        if not isinstance(params, dict):
            p = Path(str(params))
            if not p.suffix:
                p = Path(__file__).resolve().parents[1] / "weights" / f"{params}.json"
            if not p.is_file():
                from ..errors import InputError

                raise InputError(f"no tip-judge parameters at {p}")
            self.card = json.loads(p.read_text())
            params = self.card[variant]
        self.params = params
        self.name = str(self.card.get("name", "tip-judge")) + ("" if variant == "judge" else f":{variant}")
        self.mean = np.asarray(params["mean"], np.float64)
        self.std = np.asarray(params["std"], np.float64)
        self.members = [[(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
                        for layers in params.get("members", [params["layers"]])]
        self.layers = self.members[0]
        self.precision = np.asarray(params["precision"], np.float64)
        self.domain_threshold = float(params["domain_threshold"])
        self.band = float(params.get("band", 0.1))
        self.max_hf_noise = float(params.get("max_hf_noise", 0.9))
        self.threshold = float(threshold)
        self.check_domain = bool(check_domain)
        self.feature_names = list(params.get("feature_names", TIP_FEATURE_NAMES))
        ref = params.get("familiarity_reference")
        self.reference = None if ref is None else np.asarray(ref, np.float64)
        self.familiarity_k = int(params.get("familiarity_k", 5))
        self.familiarity_threshold = float(params.get("familiarity_threshold", np.inf))
        self.aux_categories: list = []
        self.embedding_dim = len(self.mean)

    def member_proba(self, F: np.ndarray) -> np.ndarray:
        """Good-tip probability of each ensemble member (MLPs fitted with different seeds), [M, N]."""
        z = (np.asarray(F, np.float64) - self.mean) / self.std
        out = []
        for layers in self.members:
            h = z
            for i, (w, b) in enumerate(layers):
                h = h @ w.T + b
                if i < len(layers) - 1:
                    h = np.maximum(h, 0.0)
            out.append(1.0 / (1.0 + np.exp(-h[:, 0])))
        return np.asarray(out)

    def proba(self, F: np.ndarray) -> np.ndarray:
        """Good-tip probability from :func:`tip_features` rows [N, F] -> [N]: the mean over the ensemble members
        (parameters ``members``; a single MLP, ``layers``, otherwise)."""
        return self.member_proba(F).mean(0)

    def domain_score(self, F: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of feature rows from the training set (standardised units) [N]."""
        z = (np.asarray(F, np.float64) - self.mean) / self.std
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, self.precision, z), 0.0))

    def familiarity_distance(self, F: np.ndarray) -> np.ndarray:
        """Distance of standardised feature rows [N, F] to their ``familiarity_k``-th nearest training row [N]
        (NaN without a reference set)."""
        F = np.asarray(F, np.float64)
        if self.reference is None:
            return np.full(len(F), np.nan)
        return knn_distance(self.reference, (F - self.mean) / self.std, self.familiarity_k)

    def __call__(self, image) -> JudgeResult:
        """Judge one image (Micrograph or 2-D array)."""
        return self.judge_many([image])[0]

    @staticmethod
    def image_evidence(images) -> tuple[np.ndarray, np.ndarray]:
        """What the judge reads from images: (:func:`native_tip_features` float32 [N, 10], flags bool [N, 3]:
        not a topograph, coarse pixels, blank). Judge the result with :meth:`judge_features`."""
        raws = [_raw(im) for im in images]
        if not raws:
            return np.zeros((0, len(TIP_FEATURE_NAMES)), np.float32), np.zeros((0, 3), bool)
        flags = TipJudge._flags(raws)
        zs = [z if not b else z + np.random.default_rng(0).standard_normal(z.shape)
              for (z, _, _), b in zip(raws, flags[:, 2])]
        return native_tip_features(zs), flags

    @staticmethod
    def image_flags(images) -> np.ndarray:
        """The flags of :meth:`image_evidence` alone (no features), bool [N, 3]."""
        return TipJudge._flags([_raw(im) for im in images])

    @staticmethod
    def _flags(raws) -> np.ndarray:
        blank = [(z.std() <= 1e-9 * max(abs(z).max(), 1e-300)) or len(np.unique(z[:64, :64])) < 16 for z, _, _ in raws]
        coarse = [ps is not None and ps > MAX_PIXEL_M for _, ps, _ in raws]
        other = [not h for _, _, h in raws]
        return np.column_stack([other, coarse, blank]).astype(bool).reshape(len(raws), 3)

    def judge_many(self, images) -> list[JudgeResult]:
        """Judge a list of images (Micrographs or 2-D arrays of any size)."""
        return self.judge_features(*self.image_evidence(images))

    def judge_features(self, F: np.ndarray, flags: np.ndarray | None = None) -> list[JudgeResult]:
        """Verdicts from :meth:`image_evidence`: feature rows [N, 10] and flags [N, 3] (not a topograph,
        coarse, blank; default none set)."""
        F = np.asarray(F, np.float32).reshape(-1, len(self.mean))
        flags = np.zeros((len(F), 3), bool) if flags is None else np.asarray(flags, bool)
        other, coarse, blank = flags.T
        p = self.proba(F)
        d = self.domain_score(F)
        fam = self.familiarity_distance(F) if self.check_domain else np.full(len(F), np.nan)
        hf = F[:, self.feature_names.index("hf_noise")]
        emb = ((F - self.mean) / self.std).astype(np.float32)
        out = []
        for i in range(len(F)):
            reason, detail = "", ""
            if self.check_domain:
                if other[i]:
                    reason = "not_topograph"
                elif coarse[i]:
                    reason, detail = "coarse", f"pixel > {MAX_PIXEL_M * 1e9:g} nm"
                elif blank[i]:
                    reason = "blank"
                elif hf[i] > self.max_hf_noise:
                    reason, detail = "noise", f"hf_noise {hf[i]:.3f} > {self.max_hf_noise:.3f}"
                elif d[i] > self.domain_threshold:
                    reason, detail = "out_of_domain", f"Mahalanobis distance {d[i]:.2f} > {self.domain_threshold:.2f}"
                elif fam[i] > self.familiarity_threshold:
                    reason = "unfamiliar"
                    detail = (f"{self.familiarity_k}-NN distance to the training features {fam[i]:.2f} > "
                              f"{self.familiarity_threshold:.2f}")
                elif abs(p[i] - self.threshold) < self.band:
                    reason, detail = "low_confidence", f"|p_good - {self.threshold:g}| = {abs(p[i] - self.threshold):.3f} < {self.band:g}"
            verdict = "unknown" if reason else ("good" if p[i] >= self.threshold else "bad")
            inside = reason in ("", "low_confidence")
            out.append(JudgeResult(float(p[i]), verdict, float(d[i]), inside, {}, emb[i],
                                   dict(zip(self.feature_names, (float(v) for v in F[i]))), reason, detail))
        return out


def make_judge(model: str = "good-bad", **kw) -> "Judge | TipJudge":
    """A judge by model name: a tip-feature judge (a ``task: autopilot-judge`` JSON in ``scopenet/weights``,
    e.g. ``"autopilot-judge"``, optionally ``"NAME:variant"``) or a classifier :class:`Judge`."""
    from pathlib import Path

    name, _, variant = str(model).partition(":")
    p = Path(__file__).resolve().parents[1] / "weights" / f"{name}.json"
    if p.is_file() and not p.with_suffix(".safetensors").exists():
        tk = {k: v for k, v in kw.items() if k in ("threshold", "check_domain") and v is not None}
        return TipJudge(str(p), variant=variant or "judge", **tk)
    return Judge(model=model, **{k: v for k, v in kw.items() if v is not None})
