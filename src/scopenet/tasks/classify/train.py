"""Train a tip-state classifier on the engine: ``scopenet train classify --config run.yaml [--resume]``.

The run is a :class:`~scopenet.tasks.classify.config.ClassifyTrainConfig`: the classifier's settings and a
data source, one of

- ``kind: export`` -- a labelling-service (events or scores) or Zooniverse export and the image folder; the
  export becomes per-image scores (:mod:`scopenet.training.crowd.aggregate`), then a training set;
- ``kind: gordon-hsi`` -- the H:Si(100) set (optionally with simulated images mixed in);
- ``kind: simulated`` -- ``.npz`` files of simulated images with exact labels (six categories or the
  good/bad tip verdict, with auxiliary targets or a teacher to distil).

Training runs epochs over the prepared images on the engine
(:class:`~scopenet.training.budget.EpochStream`, Lightning manual optimisation, one-cycle learning rate,
AdamW, augmentation by scan-line artefacts and flips/rotations), ``classifier.ensemble`` members one after
another, each resumable exactly from its checkpoint (every epoch). The model is written to
``<workdir>/model.safetensors`` + ``model.json``. ``train(net, data, config)`` is the entry
``TipClassifier.fit`` calls; ``train_members`` trains an ensemble.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...errors import InputError, ReadError
from ...training.budget import BudgetedModule, EpochStream, check_accelerator, prepare_workdir, run
from ...training.schedules import one_cycle
from .config import ClassifierConfig, ClassifyTrainConfig, ExportData, HsiData, SimulatedData
from .net import NETWORK_KEYS, build_net, soft_bce, soft_cross_entropy

__all__ = ["default_config", "scores_from_export", "load_images", "fit_from_export", "ClassifyModule", "train",
           "train_members", "load_data", "main"]


def _estimator():
    """The classifier estimator class, from the estimators' registry (its module calls this one's ``train``)."""
    from .._estimator import estimator_class

    return estimator_class("classify")


def default_config() -> ClassifyTrainConfig:
    """Default run configuration for ``scopenet train init classify`` (from a labelling-service export)."""
    return ClassifyTrainConfig()


def scores_from_export(path: str | Path, categories=None) -> pd.DataFrame:
    """Per-image score table from an export CSV.

    Accepts a score table (``mean_<key>`` columns, e.g. the service's "scores" export or
    ``gordon-hsi/labels.csv``), the service's "events" export (one 0/1 column per category), or a
    Zooniverse classification export (an ``annotations`` column of JSON).
    """
    from ...training.crowd.aggregate import aggregate_events, rescore

    path = Path(path)
    try:
        head = pd.read_csv(path, nrows=5)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReadError(path, f"not a readable CSV export ({exc})") from exc
    if any(c.startswith("mean_") for c in head.columns):
        scores = pd.read_csv(path)
        if "name" not in scores.columns:
            raise ReadError(path, "score table has no 'name' column")
        if "n_classifications" not in scores.columns:
            scores["n_classifications"] = 1
        return rescore(scores) if "agree_mean" not in scores.columns else scores
    if "annotations" in head.columns:
        from ...training.crowd.zooniverse import read_zooniverse_export

        kw = {} if categories is None else {"categories": categories}
        events = read_zooniverse_export(path, **kw)
    else:
        events = pd.read_csv(path)
    if "image" not in events.columns:
        raise ReadError(path, "not an export: expected 'mean_*' columns, an 'annotations' column or an 'image' column")
    meta = {"event_id", "image_id", "image", "sha256", "user", "created_at", "external_id", "classification_id",
            "subject_id", "workflow_id"}
    cats = categories or [c for c in events.columns if c not in meta]
    try:
        return aggregate_events(events, cats, image_col="image")
    except InputError as exc:
        raise ReadError(path, str(exc)) from exc


def load_images(folder: str | Path, names) -> list[np.ndarray]:
    """Read the images ``names`` from ``folder`` (any format scopenet reads); first frame of stacks."""
    from ... import io as sio

    folder = Path(folder)
    out = []
    for n in names:
        p = folder / str(n)
        if not p.is_file():
            raise ReadError(p, "image named in the export not found")
        a = np.asarray(sio.read(p).data, dtype=np.float64)
        while a.ndim > 2:
            a = a[0]
        out.append(a)
    return out


def fit_from_export(labels: str | Path, images: str | Path, config: ClassifierConfig | None = None,
                    method: str = "soft", min_agreement: float | None = 0.4, **fit_kw):
    """Train a :class:`TipClassifier` from an export and its image folder; returns ``(classifier, score table)``."""
    from ...training.crowd.aggregate import training_set
    TipClassifier = _estimator()
    scores = scores_from_export(labels)
    ts = training_set(scores, method=method, min_agreement=min_agreement)
    cfg = (config or ClassifierConfig()).model_copy(update={"categories": list(ts.categories)})
    uniq = list(dict.fromkeys(ts.names.tolist()))
    arrays = dict(zip(uniq, load_images(images, uniq)))
    clf = TipClassifier(cfg)
    from .preprocess import prepare

    X = prepare([arrays[n] for n in uniq], cfg.size, cfg.flatten)
    row = {n: i for i, n in enumerate(uniq)}
    Xs = X[[row[n] for n in ts.names]]
    clf.fit(Xs, ts.targets, sample_weight=ts.weights, inputs_prepared=True, **fit_kw)
    _card(clf, training_data=f"{Path(labels).name}: {len(uniq)} images, {len(ts)} samples ({method})")
    return clf, scores


def _card(clf, **fields) -> None:
    """Record training facts in a classifier's model card."""
    if hasattr(clf, "update_card"):  # the model-card schema of the estimator base
        clf.update_card(**fields)
    else:
        clf.card_.update(fields)


class ClassifyModule(BudgetedModule):
    """Epochs over prepared images: AdamW, one-cycle learning rate over ``epochs``, soft BCE (multi-label)
    or soft cross-entropy (single-label), optional auxiliary targets.

    ``data``: ``(X [N, 1, S, S], Y [N, K], W [N] or None, A [N, A] or None)``; the network has ``K + A``
    outputs while training when there are auxiliary targets.
    """

    def __init__(self, cfg: ClassifierConfig, net: torch.nn.Module, data: tuple, seed: int, *,
                 aux_weight: float = 1.0, checkpoint_file: Path | None = None, progress: bool = False,
                 callback: Callable[[int, float], None] | None = None, desc: str = "train classify"):
        from .preprocess import augment

        X, Y, W, A = data
        xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
        wt = None if W is None else torch.from_numpy(W)
        at = None if A is None else torch.from_numpy(A)

        def make(idx, rng):
            i = torch.from_numpy(np.asarray(idx, np.int64))
            g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
            b = {"x": augment(xt[i], line_p=cfg.line_aug_p, generator=g), "y": yt[i]}
            if wt is not None:
                b["w"] = wt[i]
            if at is not None:
                b["a"] = at[i]
            return b

        stream = EpochStream(len(X), cfg.batch_size, make, seed)
        super().__init__(stream, cfg.epochs * stream.steps_per_epoch, None, None, checkpoint_every_s=None,
                         checkpoint_every_n_steps=stream.steps_per_epoch, progress=progress,
                         checkpoint_file=checkpoint_file)
        self.net, self.cfg, self.k, self.aux_weight = net, cfg, Y.shape[1], float(aux_weight)
        self.callback, self.desc = callback, desc
        pw = None
        if cfg.mode == "multi" and cfg.balance:
            f = Y.mean(0).clip(1e-3, 1 - 1e-3)
            pw = torch.from_numpy(((1 - f) / f).clip(0.2, 20).astype(np.float32))
        self.register_buffer("pos_weight", pw, persistent=False)

    def on_train_start(self):
        super().on_train_start()
        # the epochs' length depends on the world size, known only now
        self.max_steps = self.cfg.epochs * self.stream.steps_per_epoch
        self.checkpoint_every_n_steps = self.stream.steps_per_epoch
        if self._bar is not None:
            self._bar.total, self._bar.desc = self.max_steps, self.desc

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        for g in opt.optimizer.param_groups:
            g["lr"] = one_cycle(self.steps, self.max_steps, self.cfg.lr)
        logits = self.net(batch["x"])
        a = batch.get("a")
        if a is not None:
            logits, aux_logits = logits[:, :self.k], logits[:, self.k:]
        if self.cfg.mode == "multi":
            loss = soft_bce(logits, batch["y"], batch.get("w"), self.pos_weight)
        else:
            loss = soft_cross_entropy(logits, batch["y"], batch.get("w"))
        if a is not None:
            loss = loss + self.aux_weight * F.binary_cross_entropy_with_logits(aux_logits, a)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.step_done(float(loss.detach()))

    def history(self) -> list[float]:
        """Mean training loss of each finished epoch."""
        n = self.stream.steps_per_epoch
        return [float(np.mean(self.losses[i:i + n])) for i in range(0, len(self.losses) - n + 1, n)]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        super().on_train_batch_end(outputs, batch, batch_idx)
        n = self.stream.steps_per_epoch
        if self._bar is not None and self.steps % n == 0:
            self._bar.set_postfix(loss=f"{self.history()[-1]:.4f}")
        if self.callback is not None and self.steps % n == 0:
            self.callback(self.steps // n - 1, self.history()[-1])


def _check_data(X, Y, W, A, cfg: ClassifierConfig) -> tuple:
    """Validated ``(X, Y, W, A)``: class indices one-hot, single-label class weights folded into ``W``."""
    X = np.asarray(X, np.float32)
    if X.ndim != 4 or X.shape[1] != 1:
        raise InputError(f"prepared inputs must have shape [N, 1, S, S], got {X.shape}")
    if len(X) < 2:
        raise InputError(f"training needs at least 2 images, got {len(X)}")
    Y = np.asarray(Y, np.float32)
    k = len(cfg.categories)
    if cfg.mode == "single" and Y.ndim == 1:
        if Y.min() < 0 or Y.max() >= k or not np.all(Y == np.round(Y)):
            raise InputError(f"single-label class indices must be integers in 0..{k - 1}")
        Y = np.eye(k, dtype=np.float32)[Y.astype(int)]
    if Y.shape != (len(X), k):
        raise InputError(f"labels must have shape ({len(X)}, {k}) for categories {cfg.categories}, got {Y.shape}")
    if not np.isfinite(Y).all() or Y.min() < 0 or Y.max() > 1:
        raise InputError("labels must be finite scores in [0, 1]")
    if W is not None:
        W = np.asarray(W, np.float32)
        if W.shape != (len(X),):
            raise InputError(f"sample_weight must have shape ({len(X)},), got {W.shape}")
    if cfg.mode == "single" and cfg.pos_weight is not None:
        if len(cfg.pos_weight) != k:
            raise InputError(f"pos_weight needs {k} class weights, got {len(cfg.pos_weight)}")
        cw = (Y / Y.sum(1, keepdims=True).clip(1e-12)) @ np.asarray(cfg.pos_weight, np.float32)
        W = cw.astype(np.float32) if W is None else (W * cw).astype(np.float32)
    if A is not None:
        A = np.asarray(A, np.float32)
        A = A[:, None] if A.ndim == 1 else A
        if A.ndim != 2 or len(A) != len(X) or not np.isfinite(A).all() or A.min() < 0 or A.max() > 1:
            raise InputError(f"aux must be scores in [0, 1] of shape ({len(X)}, A), got {A.shape}")
    return X, Y, W, A


def _as_run(config) -> ClassifyTrainConfig:
    if config is None:
        return ClassifyTrainConfig(workdir=None)
    if isinstance(config, ClassifierConfig):
        return ClassifyTrainConfig(workdir=None, classifier=config)
    return config


def train(net: torch.nn.Module, data: tuple, config: ClassifyTrainConfig | ClassifierConfig | None = None, *,
          device: str | None = None, progress: bool = False, resume: bool = False, member: int = 0,
          checkpoint: str | Path | None = None, callback: Callable[[int, float], None] | None = None,
          desc: str = "train classify", checked: bool = False) -> list[float]:
    """Train one network ``net`` on ``data = (X, Y, W, A)`` (prepared images ``[N, 1, S, S]``, labels
    ``[N, K]`` or class indices, sample weights or None, auxiliary targets or None); returns the mean loss
    of each epoch.

    The seed is the classifier's ``seed + 100 * member``. ``checkpoint`` (a file; default
    ``<workdir>/last.ckpt``, or ``last.m<member>.ckpt`` for ensemble members) is written every epoch and
    ``resume`` continues from it. ``callback(epoch, loss)`` runs after every epoch. With auxiliary
    targets the network trains with ``K + A`` outputs; the extra ones are dropped at the end. ``checked``:
    ``data`` has been through the validation already (:func:`train_members`).
    """
    c = _as_run(config)
    cfg = c.classifier
    X, Y, W, A = data if checked else _check_data(*data, cfg)
    k = Y.shape[1]
    if A is not None:  # extra outputs for the auxiliary targets, dropped after training
        net.out = torch.nn.Linear(net.out.in_features, k + A.shape[1])
    if checkpoint is None and c.workdir is not None:
        checkpoint = Path(c.workdir) / ("last.ckpt" if cfg.ensemble == 1 else f"last.m{member}.ckpt")
    module = ClassifyModule(cfg, net, (X, Y, W, A), cfg.seed + 100 * member, aux_weight=c.aux_weight,
                            checkpoint_file=None if checkpoint is None else Path(checkpoint), progress=progress,
                            callback=callback, desc=desc)
    run(module, c, resume=resume, device=device)
    if A is not None:
        full = net.out
        net.out = torch.nn.Linear(full.in_features, k).to(full.weight.device)
        with torch.no_grad():
            net.out.weight.copy_(full.weight[:k])
            net.out.bias.copy_(full.bias[:k])
    net.eval()
    return module.history()


def train_members(data: tuple, config: ClassifyTrainConfig | ClassifierConfig, init: list | None = None, *,
                  device: str | None = None, progress: bool = False, resume: bool = False,
                  checkpoint: str | Path | None = None,
                  callback: Callable[[int, float], None] | None = None) -> tuple[torch.nn.Module, list[float]]:
    """Build and train ``classifier.ensemble`` networks (seeds ``seed + 100 i``; ``init[i]`` a state dict to
    start member ``i`` from, or None); returns the network (a :class:`~scopenet.nn.ensemble.LogitEnsemble`
    of the members when there are several) and the mean loss per epoch (averaged over the members).
    ``checkpoint`` names a file; members of an ensemble use ``<stem>.m<i><suffix>`` beside it."""
    c = _as_run(config)
    cfg = c.classifier
    data = _check_data(*data, cfg)  # before any member trains
    n = cfg.ensemble
    nets, hist = [], []
    for i in range(n):
        torch.manual_seed(cfg.seed + 100 * i)
        net = build_net(cfg)
        st = None if init is None else init[i]
        if st is not None:
            own = net.state_dict()
            net.load_state_dict({k: v for k, v in st.items() if not k.startswith("out.") or own[k].shape == v.shape},
                                strict=False)
        ck = None
        if checkpoint is not None:
            ck = Path(checkpoint)
            ck = ck if n == 1 else ck.with_name(f"{ck.stem}.m{i}{ck.suffix}")
        hist.append(train(net, data, c, device=device, progress=progress, resume=resume, member=i, checkpoint=ck,
                          callback=callback, desc="train classify" if n == 1 else f"train classify {i + 1}/{n}",
                          checked=True))
        nets.append(net)
    if n == 1:
        return nets[0], hist[0]
    from ...nn.ensemble import LogitEnsemble

    return LogitEnsemble.of(nets).eval(), np.mean(hist, 0).tolist()


# ------------------------------------------------------------------------------ data sources
def _npz(paths: list[str]) -> list:
    out = []
    for p in paths:
        try:
            out.append(np.load(p))
        except (OSError, ValueError) as exc:
            raise ReadError(Path(p), f"not a readable .npz of simulated images ({exc})") from exc
    return out


def load_data(config: ClassifyTrainConfig) -> tuple[tuple, dict[str, Any], str]:
    """The training set of a run: ``(X, Y, W, A)``, settings it imposes on the classifier (categories, mode),
    and a description for the model card."""
    from .preprocess import prepare

    d, cfg = config.data, config.classifier
    if isinstance(d, ExportData):
        from ...training.crowd.aggregate import training_set

        scores = scores_from_export(d.labels)
        ts = training_set(scores, method=d.method, min_agreement=d.min_agreement)
        uniq = list(dict.fromkeys(ts.names.tolist()))
        arrays = dict(zip(uniq, load_images(d.images or Path(d.labels).parent, uniq)))
        X = prepare([arrays[n] for n in uniq], cfg.size, cfg.flatten)
        row = {n: i for i, n in enumerate(uniq)}
        X = X[[row[n] for n in ts.names]]
        return ((X, ts.targets, ts.weights, None), {"categories": list(ts.categories)},
                f"{Path(d.labels).name}: {len(uniq)} images, {len(ts)} samples ({d.method})")
    if isinstance(d, HsiData):
        from .data import CATEGORIES, load_gordon_hsi

        h = load_gordon_hsi(d.root)
        X, Y, W = prepare(h.images, cfg.size, cfg.flatten), np.asarray(h.soft, np.float32), None
        desc = f"gordon-hsi ({len(X)} images, soft labels)"
        if d.sim:
            zs = _npz(d.sim)
            Xs = np.concatenate([prepare(z["images"], cfg.size, cfg.flatten) for z in zs])
            Ys = np.concatenate([z["labels6"] for z in zs]).astype(np.float32)
            if d.sim_n:
                Xs, Ys = Xs[:d.sim_n], Ys[:d.sim_n]
            W = np.concatenate([np.ones(len(X), np.float32), np.full(len(Xs), d.sim_weight, np.float32)])
            X, Y = np.concatenate([X, Xs]), np.concatenate([Y, Ys])
            desc += f" + {len(Xs)} simulate.spm images (weight {d.sim_weight:g})"
        return (X, Y, W, None), {"categories": list(CATEGORIES), "mode": "multi"}, desc
    assert isinstance(d, SimulatedData)
    zs = _npz(d.files)
    X = np.concatenate([prepare(z["images"], cfg.size, cfg.flatten) for z in zs])
    L6 = np.concatenate([z["labels6"] for z in zs]).astype(np.float32)
    desc = f"{len(X)} simulate.spm images ({', '.join(Path(f).name for f in d.files)})"
    if d.target == "labels6":
        from .data import CATEGORIES

        Y = L6
        if d.teacher:  # distillation: mix the labels with a teacher's (flip/rotation-averaged) probabilities
            teacher = _estimator().pretrained(d.teacher)
            Xt = X if teacher.config.size == cfg.size else np.concatenate(
                [prepare(z["images"], teacher.config.size) for z in zs])
            P = teacher.predict_proba(Xt, tta=d.teacher_tta, inputs_prepared=True).astype(np.float32)
            Y = (1 - d.teacher_weight) * Y + d.teacher_weight * P
            desc += f"; targets {1 - d.teacher_weight:g} x labels + {d.teacher_weight:g} x {d.teacher}"
        return (X, Y, None, None), {"categories": list(CATEGORIES), "mode": "multi"}, desc
    g = np.concatenate([z["good"] for z in zs]).astype(np.float32)
    Y = np.stack([1 - g, g], 1)
    if d.soft_width > 0:  # soft verdict: doubt near the rule's cuts is not punished
        from ...simulate.spm.labels import good_tip_score

        missing = [p for p, z in zip(d.files, zs) if "shape_defect" not in z.files]
        if missing:
            raise InputError(f"soft_width needs files written by scripts/train_classify.py simdata: {missing}")
        gs = np.concatenate([good_tip_score(z["labels6"], z["shape_defect"], z["artefact_visible"], d.soft_width)
                             for z in zs]).astype(np.float32)
        Y = np.stack([1 - gs, gs], 1)
    A = None
    if d.aux:  # the quantities the verdict is made of, as auxiliary targets
        A = np.concatenate([np.concatenate([z["labels6"], z["artefact_visible"][:, None]], 1) for z in zs])
    return (X, Y, None, A), {"categories": ["bad", "good"], "mode": "single"}, desc


def main(config: ClassifyTrainConfig | str | Path, resume: bool = False, labels: str | Path | None = None,
         init: str | Path | None = None, *, progress: bool = True, overwrite: bool = False) -> Any:
    """Train the classifier a run configuration describes (a configuration or its YAML file).

    ``labels`` makes the data an export (``scopenet train classify --labels export.csv``, the images beside
    it unless the configuration names them); ``init`` overrides ``config.init`` (``--init hsi-six``:
    fine-tune that model; its network and input settings replace the classifier's). Returns a namespace
    with ``run_dir``, ``model`` (the saved stem) and ``classifier``.
    """
    from types import SimpleNamespace

    TipClassifier = _estimator()
    if config is None:
        config = default_config()
    elif not isinstance(config, ClassifyTrainConfig):
        config = ClassifyTrainConfig.from_yaml(config)
    c = config
    if labels is not None:
        images = c.data.images if isinstance(c.data, ExportData) else None
        c = c.model_copy(update={"data": ExportData(**{**(c.data.model_dump() if isinstance(c.data, ExportData)
                                                          else {}), "labels": str(labels), "images": images})})
    if init is not None:
        c = c.model_copy(update={"init": str(init)})
    if c.workdir is None:
        raise InputError("a training run needs a workdir")
    if isinstance(c.data, ExportData) and not Path(c.data.labels).is_file():
        raise InputError(f"no labels: {c.data.labels} not found (give --labels export.csv or data.labels)")
    check_accelerator(c.accelerator)
    cfg = c.classifier
    init_states = None
    if c.init:
        inits = c.init if isinstance(c.init, list) else [c.init]
        first = next((m for m in inits if m), None)
        if first is not None:  # the init model's network and input settings replace the configuration's
            src = TipClassifier.pretrained(str(first))
            cfg = cfg.model_copy(update={k: getattr(src.config, k) for k in (*NETWORK_KEYS, "size", "flatten")})
    data, imposed, desc = load_data(c.model_copy(update={"classifier": cfg}))
    cfg = cfg.model_copy(update=imposed)
    c = c.model_copy(update={"classifier": cfg})
    run_dir = prepare_workdir(c, resume, overwrite)
    clf = TipClassifier(cfg)
    if c.init:
        init_states = clf._init_weights(c.init if isinstance(c.init, list) else str(c.init))
    t = time.time()
    clf.net_, clf.history_ = train_members(data, c, init_states, progress=progress, resume=resume)
    _card(clf, training_data=desc, training_time_s=round(time.time() - t, 1), training_config=c.to_dict())
    clf.save(run_dir / "model", overwrite=True)
    return SimpleNamespace(run_dir=run_dir, model=run_dir / "model", classifier=clf)
