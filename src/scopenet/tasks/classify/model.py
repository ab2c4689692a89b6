"""The tip-state classifier estimator: ``TipClassifier`` and the ``classify`` function.

>>> import scopenet as sn
>>> clf = sn.TipClassifier.pretrained("hsi-six")           # doctest: +SKIP
>>> p = clf.predict_proba(images)                           # [N, 6] per-category probabilities
>>> cams = clf.cam(images, "bad_blurry")                    # [N, 64, 64] in [0, 1]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...errors import InputError
from ...image.tta import TTA_ORDER, check_views, tta_mean
from ...nn.cnn import class_activation_map
from .._estimator import Estimator, cached, register
from .config import ClassifierConfig
from .net import NETWORK_KEYS, soft_bce, soft_cross_entropy  # noqa: F401  (public here: the estimator's API)
from .net import build_net as _build_net
from .preprocess import prepare

#: names accepted by :meth:`TipClassifier.pretrained` -> installed model name
PRETRAINED = {"hsi-six": "classify-hsi-six", "good-bad": "classify-good-bad", "hsi-six-sim": "classify-hsi-six-sim",
              "hsi-six-sim-fast": "classify-hsi-six-sim-fast"}


@register
class TipClassifier(Estimator):
    """Tip-state / image-quality classifier for SPM images (the estimator contract of
    :mod:`scopenet.tasks._estimator`; :meth:`predict` returns labels, not images).

    Parameters
    ----------
    config : ClassifierConfig or dict, optional
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).
    **overrides
        Fields of :class:`ClassifierConfig` (``size=32``, ``mode="single"``, ``categories=[...]``...).

    Attributes
    ----------
    net_ : torch.nn.Module or None
        The trained network (``None`` before :meth:`fit`); a
        :class:`~scopenet.nn.ensemble.LogitEnsemble` of ``config.ensemble`` networks when that is > 1.
    history_ : list of float
        Mean training loss per epoch (averaged over the members of an ensemble).
    card_ : ModelCard
        Metrics, training data; ``card_.predict`` holds the decision ``thresholds`` and ``tta_views``.
    """

    task = "classify"
    config_class = ClassifierConfig
    aliases = {"default": "classify-hsi-six", **PRETRAINED}
    image_to_image = False
    #: on the CPU, predict through :func:`scopenet.nn.fast.cpu_fast_forward` (BatchNorm folded, oneDNN
    #: tensors; the same outputs to float32 rounding); False keeps the eager net
    fast_cpu: bool = True
    _fast = None  # (network, its fast CPU forward or None), see _fast_forward

    @classmethod
    def pretrained(cls, name: str = "hsi-six", **kw) -> "TipClassifier":
        """A shipped model: ``"hsi-six"`` (six H:Si(100) categories, real STM), ``"hsi-six-sim"``,
        ``"hsi-six-sim-fast"`` (the same categories, simulated training) or ``"good-bad"``
        (DeepSPM-style), or any installed name or path."""
        return super().pretrained(name, **kw)

    # ------------------------------------------------------------------ properties
    @property
    def categories(self) -> list[str]:
        return list(self.config.categories)

    def _check_fitted(self) -> torch.nn.Module:
        if self.net_ is None:
            raise InputError("this TipClassifier is not trained: call fit() or load a pretrained model")
        return self.net_

    def _inputs(self, images) -> np.ndarray:
        return prepare(images, self.config.size, self.config.flatten)

    def category_index(self, category: int | str) -> int:
        if isinstance(category, (int, np.integer)):
            if not 0 <= int(category) < len(self.categories):
                raise InputError(f"category index {category} out of range 0..{len(self.categories) - 1}")
            return int(category)
        if category not in self.categories:
            raise InputError(f"unknown category {category!r}; this model has {', '.join(self.categories)}")
        return self.categories.index(category)

    # ------------------------------------------------------------------ training
    def fit(self, images, labels, sample_weight=None, *, inputs_prepared: bool = False,
            checkpoint: str | Path | None = None, resume: bool = False, progress: bool = False,
            callback: Callable[[int, float], None] | None = None, aux=None,
            aux_weight: float = 1.0, init: "TipClassifier | str | Path | None" = None) -> "TipClassifier":
        """Train the network, from scratch or (``init``) starting from a trained classifier's weights.

        Parameters
        ----------
        images : images accepted by :func:`~scopenet.tasks.classify.preprocess.prepare`, or, with
            ``inputs_prepared=True``, an array ``[N, 1, size, size]`` already prepared.
        labels : array [N, K] of soft scores in [0, 1] (``mode="multi"``), or for ``mode="single"``
            either [N, K] class distributions or [N] integer class indices.
        sample_weight : array [N], optional
        checkpoint : path, optional
            Write a resumable checkpoint here after every epoch.
        resume : bool
            Continue from ``checkpoint`` when it exists (same schedule as an uninterrupted run).
        progress : bool
            Show a tqdm bar over epochs.
        callback : callable(epoch, loss), optional
        aux : array [N, A] of scores in [0, 1], optional
            Auxiliary targets learnt beside the labels during training only (extra sigmoid outputs,
            binary cross-entropy weighted by ``aux_weight``), e.g. the quantities a verdict is made of
            (the six categories, how visible an apex defect is). They shape the features; the extra
            outputs are dropped afterwards, so the saved model has exactly the categories' outputs.
        aux_weight : float
        init : TipClassifier, saved model path or shipped name, optional
            Fine-tune: start from this classifier's weights instead of a random initialisation (e.g.
            a model pre-trained on simulated images, or a shipped model, refined on your own labels).
            The network settings (``arch``, ``channels``, ``dense``, ``stem_stride``, ``line_k``)
            must match; the output layer is copied when the categories are the same and otherwise
            starts afresh. The usual one-cycle schedule runs over ``epochs`` (a lower ``lr`` is
            typical for fine-tuning). A checkpoint being resumed takes precedence. With
            ``ensemble > 1`` every member starts from ``init`` (or from the matching member of an
            ensemble of the same size); a list of ``ensemble`` entries gives each member its own
            start, ``None`` meaning a random initialisation. The names used go in the model card
            (``card_.training.init``).
        """
        cfg = self.config
        self.card_.training.init = None  # a refit from scratch must not keep an earlier fit's starts
        self._init_state = self._init_weights(init) if init is not None else None
        X = np.asarray(images, np.float32) if inputs_prepared else self._inputs(images)
        from ...nn.device import resolve_device
        from .config import ClassifyTrainConfig
        from .train import train_members

        run = ClassifyTrainConfig(workdir=None, classifier=cfg, aux_weight=aux_weight)
        self._fast = None
        self.net_, self.history_ = train_members((X, labels, sample_weight, aux), run, self._init_state,
                                                 device=str(resolve_device(self.device)), progress=progress,
                                                 resume=resume, checkpoint=checkpoint, callback=callback)
        return self

    def _init_weights(self, init) -> list[dict | None]:
        """One state dict (or ``None``: random) per ensemble member from ``init``; records the names in the card."""
        n = self.config.ensemble
        if isinstance(init, (list, tuple)):
            if len(init) != n:
                raise InputError(f"init lists {len(init)} models for an ensemble of {n}")
            out, names = [], []
            for m in init:
                st, name = (None, None) if m is None else self._init_one(m, single=True)
                out.append(st[0] if st else None)
                names.append(name)
        else:
            out, name = self._init_one(init)
            out, names = (out * n if len(out) == 1 else out), [name] * n
        self.card_.training.init = names
        return out

    def _init_one(self, init, single: bool = False) -> tuple[list[dict], str]:
        """State dicts of ``init``'s network(s) after checking they fit this configuration, and its name."""
        src = init if isinstance(init, TipClassifier) else TipClassifier.pretrained(str(init))
        name = src.card_.name if src.card_.name != "untrained" else \
            (str(init) if not isinstance(init, TipClassifier) else "in-memory model")
        src_net = src._check_fitted()
        mine, theirs = self.config.model_dump(), src.config.model_dump()
        diff = [f"{k}: {theirs[k]} vs {mine[k]}" for k in NETWORK_KEYS if mine[k] != theirs[k]]
        if diff:
            raise InputError("init model has a different network (" + "; ".join(diff) + ")")
        nets = list(src_net.members) if hasattr(src_net, "members") else [src_net]
        n = 1 if single else self.config.ensemble
        if len(nets) not in (1, n):
            raise InputError(f"init model is an ensemble of {len(nets)}; this needs one network"
                             + ("" if single else f" or an ensemble of {n}"))
        states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in nets]
        own = _build_net(self.config).state_dict()
        bad = [k for k, v in states[0].items()
               if not k.startswith("out.") and (k not in own or own[k].shape != v.shape)]
        if bad:
            raise InputError(f"init model's layers do not fit this network: {bad[:3]}")
        return states, name

    # ------------------------------------------------------------------ inference
    def predict_logits(self, images, batch_size: int = 1024, tta: bool | int | None = None,
                       inputs_prepared: bool = False) -> np.ndarray:
        """Raw network outputs ``[N, K]``.

        ``tta`` averages the logits over flipped/rotated copies of each image: ``True`` all 8,
        an integer ``n`` the first ``n`` of :data:`~scopenet.tasks.classify.preprocess.TTA_ORDER` (the
        first four keep the scan lines horizontal), ``False`` none, ``None`` (default) the model card's
        ``tta_views`` (1 unless the card says otherwise).
        """
        net = self._check_fitted().eval()
        views = self.views(tta)
        X = np.asarray(images, np.float32) if inputs_prepared else self._inputs(images)
        out = np.empty((len(X), len(self.categories)), np.float32)
        from ...nn.device import place

        dev = place(net, self.device)
        fwd = None
        if dev.type == "cpu" and self.fast_cpu and len(X):
            fwd = self._fast_forward(net, torch.from_numpy(X[:8]))
        if fwd is None:
            cl = torch.channels_last
            net = net.to(memory_format=cl)  # NHWC convolutions are ~2x faster on CPU than NCHW for these nets

            def fwd(x):
                return net(x.contiguous(memory_format=cl))
        with torch.inference_mode():
            for i in range(0, len(X), batch_size):
                x = torch.from_numpy(X[i:i + batch_size]).to(dev)
                z = tta_mean(fwd, x, len(views))
                out[i:i + len(x)] = z.float().cpu().numpy()
        return out

    def views(self, tta: bool | int | None = None) -> tuple[int, ...]:
        """The dihedral transforms (indices for :func:`~.preprocess.dihedral`) that ``tta`` averages over
        (see :meth:`predict_logits`); ``views()`` is this model's default."""
        if tta is None:
            tta = int(self.card_.predict.get("tta_views", 1))
        return TTA_ORDER[:check_views(tta)]

    def _fast_forward(self, net: torch.nn.Module, example: torch.Tensor):
        if self._fast is not None and self._fast[0] is net:
            return self._fast[1]
        from ...nn.fast import checked_fast_forward

        fn = checked_fast_forward(net, example)
        self._fast = (net, fn)
        return fn

    def predict_proba(self, images, batch_size: int = 1024, tta: bool | int | None = None,
                      inputs_prepared: bool = False) -> np.ndarray:
        """Probabilities ``[N, K]``: independent sigmoids (multi-label) or a softmax (single-label)."""
        z = torch.from_numpy(self.predict_logits(images, batch_size, tta, inputs_prepared))
        p = torch.sigmoid(z) if self.config.mode == "multi" else torch.softmax(z, 1)
        return p.numpy()

    @property
    def thresholds(self) -> np.ndarray:
        """Per-category decision thresholds of a multi-label model: ``card_.predict["thresholds"]`` (chosen on
        held-out predictions, see :func:`~scopenet.metrics.classification.f1_optimal_thresholds`) or 0.5."""
        saved = self.card_.predict.get("thresholds") or {}
        return np.array([float(saved.get(c, 0.5)) for c in self.categories])

    def predict(self, images, threshold: float | None = None, **kw) -> np.ndarray:
        """Multi-label: booleans ``[N, K]`` (probability >= ``threshold``, by default the model's
        per-category :attr:`thresholds`); single-label: class indices ``[N]``."""
        p = self.predict_proba(images, **kw)
        if self.config.mode == "multi":
            return p >= (self.thresholds if threshold is None else threshold)
        return p.argmax(1)

    def cam(self, images, category: int | str, inputs_prepared: bool = False) -> np.ndarray:
        """Grad-CAM maps ``[N, size, size]`` in [0, 1]: where the evidence for ``category`` lies.

        The maps are on the network's input grid (the image resized to ``config.size``).
        """
        net = self._check_fitted()
        idx = self.category_index(category)
        X = np.asarray(images, np.float32) if inputs_prepared else self._inputs(images)
        from ...nn.device import place

        dev = place(net, self.device)
        out = [class_activation_map(net, torch.from_numpy(X[i:i + 256]).to(dev), idx).float().cpu().numpy()
               for i in range(0, len(X), 256)]
        return np.concatenate(out) if out else np.zeros((0, self.config.size, self.config.size), np.float32)

    # ------------------------------------------------------------------ training domain
    @property
    def domain_check(self):
        """The model card's :class:`~scopenet.tasks.classify.domain.DomainCheck`, or ``None``."""
        d = self.card_.predict.get("domain")
        if not d:
            return None
        cached_check = getattr(self, "_domain", None)
        if cached_check is None or cached_check[0] is not d:
            from .domain import DomainCheck

            self._domain = (d, DomainCheck.from_dict(d))
        return self._domain[1]

    def domain_features(self, images, inputs_prepared: bool = False, batch_size: int = 512) -> np.ndarray:
        """``[N, C]`` pooled last-conv features (the domain check's input)."""
        from ...nn.device import place
        from .domain import pooled_features

        net = self._check_fitted().eval()
        X = np.asarray(images, np.float32) if inputs_prepared else self._inputs(images)
        dev = place(net, self.device)
        out = [pooled_features(net, torch.from_numpy(X[i:i + batch_size]).to(dev)).cpu().numpy()
               for i in range(0, len(X), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 1), np.float32)

    def domain_scores(self, images, inputs_prepared: bool = False) -> np.ndarray:
        """Distance of each image from the training domain (NaN when the card has no domain check)."""
        check = self.domain_check
        X = np.asarray(images, np.float32) if inputs_prepared else self._inputs(images)
        if check is None:
            return np.full(len(X), np.nan)
        return check.score(self.domain_features(X, inputs_prepared=True))

    # ------------------------------------------------------------------ persistence
    def save(self, path_stem: str | Path, overwrite: bool = False, **card_fields) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` + ``<stem>.json`` (settings, categories and metrics in the card).

        ``card_fields`` set card fields first (``metrics={...}``, ``training={...}``; the older flat keys
        such as ``training_data`` are mapped as :func:`~scopenet.weights.card.migrate_card` does).
        """
        self._check_fitted()
        if card_fields:
            self.update_card(**card_fields)
        self.card_.preprocessing.update({"flatten_x": self.config.flatten, "size": self.config.size,
                                         "normalise": "per-image zero mean, unit std",
                                         "input_shape": [1, 1, self.config.size, self.config.size]})
        return super().save(path_stem, overwrite=overwrite)

    def __repr__(self) -> str:
        state = "trained" if self.net_ is not None else "untrained"
        return f"TipClassifier({self.config.arch}, {self.config.mode}, size={self.config.size}, {state})"


def classify(images, model: str | TipClassifier = "hsi-six", threshold: float | None = None,
             tta: int | None = None, check_domain: bool = True) -> "Any":
    """Classify SPM images with a (pretrained) tip-state model (``sn.classify``).

    Which surfaces each shipped model covers (the rest are answered ``"unknown"``):

    - ``hsi-six`` (default): real STM topographs of H:Si(100), six crowd-labelled categories;
    - ``hsi-six-sim``, ``hsi-six-sim-fast``: the same categories, trained on simulated H:Si(100) scans;
    - ``good-bad``: DeepSPM-style good/bad tip, trained on simulated H:Si(100)/Si scans.

    Parameters
    ----------
    images : Micrograph, ndarray [H, W] / [N, H, W], or list of them
        Topographs in any units (each is X-flattened, resized and standardised).
    model : str or TipClassifier
        A pretrained name (``"hsi-six"``, ``"good-bad"``...), a saved model path, or an estimator.
    threshold : float, optional
        Decision threshold for multi-label models; by default each category's threshold from the
        model card (:attr:`TipClassifier.thresholds`, 0.5 where the card has none).
    tta : int, optional
        Number of flipped/rotated views whose outputs are averaged (1..8; ``True`` is 8); by default
        the model card's ``tta_views``.
    check_domain : bool
        Score each image against the model's training domain (:mod:`.domain`) and answer ``"unknown"``
        for images outside it (when the model card has a domain check).

    Returns
    -------
    pandas.DataFrame
        One row per image: a probability column per category, ``labels`` (the categories at or above
        their threshold, the most probable class for single-label models, or ``"unknown"``),
        ``domain_score`` (distance from the training domain; NaN without a check), ``in_domain`` and
        ``reason`` (why an image is ``"unknown"``).

    Raises
    ------
    InputError
        Images that are not 2-D numeric data, an unknown model.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> df = sn.classify(np.random.default_rng(0).random((2, 64, 64)))
    >>> list(df.columns[-4:])
    ['labels', 'domain_score', 'in_domain', 'reason']
    """
    import pandas as pd

    clf = model if isinstance(model, TipClassifier) else \
        cached(("classify", str(model)), lambda: TipClassifier.pretrained(str(model)))
    X = clf._inputs(images)
    p = clf.predict_proba(X, tta=tta, inputs_prepared=True)
    df = pd.DataFrame(p, columns=clf.categories)
    if clf.config.mode == "multi":
        thr = clf.thresholds if threshold is None else np.full(len(clf.categories), float(threshold))
        labels = [";".join(c for c, v, t in zip(clf.categories, row, thr) if v >= t) for row in p]
    else:
        labels = [clf.categories[i] for i in p.argmax(1)]
    check = clf.domain_check if check_domain else None
    scores = clf.domain_scores(X, inputs_prepared=True) if check_domain else np.full(len(X), np.nan)
    inside = ~(scores > check.threshold) if check is not None else np.ones(len(X), bool)
    reasons = ["" if ok else f"outside the training domain (distance {sc:.3g} > {check.threshold:.3g}; this model "
               f"covers {check.surfaces or 'its training images only'})" for ok, sc in zip(inside, scores)]
    df["labels"] = [lab if ok else "unknown" for lab, ok in zip(labels, inside)]
    df["domain_score"] = scores
    df["in_domain"] = inside
    df["reason"] = reasons
    return df
