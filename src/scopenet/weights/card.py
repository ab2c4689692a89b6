"""The model card: one schema for every saved model (``<stem>.json`` beside ``<stem>.safetensors``).

A card says what the network is (architecture), how its input is prepared (preprocessing), how the
estimator applies it (config and predict settings), how it was trained (recipe, data, steps, time,
hardware) and how well it does (metrics, with the command that printed them)::

    {"card_format": 2, "name": "denoise-default", "task": "denoise", "version": 1,
     "architecture": {"name": "denoise-compact", "config": {...}},
     "config": {...},                  # the estimator's pydantic config (tiling, TTA views, ...)
     "predict": {...},                 # fitted inference settings (thresholds, coverage range, ...)
     "preprocessing": {...},
     "training": {"config": {...}, "data": ..., "steps": 123, "time_s": 456.0, "hardware": "..."},
     "metrics": {"headline": {"label": "...", "value": 0.42}, "command": "scopenet bench denoise",
                 "values": {...}}}

Cards written before this schema (``card_format`` 1: flat keys such as ``training_time_s``,
``classifier``, ``predict_settings``, ``benchmark``) are read through :func:`migrate_card`.

>>> card = ModelCard(name="toy", task="denoise", architecture={"name": "unet", "config": {}})
>>> card.metrics.headline is None
True
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CARD_FORMAT", "Architecture", "Headline", "Metrics", "ModelCard", "Training", "migrate_card"]

#: the card layout written by this version (1: the flat cards of scopenet <= 0.1 sessions 1-15)
CARD_FORMAT = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class Architecture(_Strict):
    """The registered network (:func:`scopenet.nn.build_architecture`) and its constructor arguments."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class Training(_Strict):
    """How the weights were made. ``config`` is the run's recipe (YAML-able), ``data`` what it saw."""

    config: dict[str, Any] | None = None
    data: Any = None
    steps: int | None = None
    time_s: float | None = None
    hardware: str | None = None
    command: str | None = None
    init: Any = None
    stages: list[Any] | None = None
    fine_tuning: list[dict[str, Any]] = Field(default_factory=list)


class Headline(_Strict):
    """The one figure ``scopenet models list`` shows: what it measures and its value."""

    label: str
    value: float


class Metrics(_Strict):
    """Benchmark figures, the command that printed them, and the headline figure."""

    headline: Headline | None = None
    command: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)


class ModelCard(_Strict):
    """Everything a saved model says about itself (see the module docstring)."""

    card_format: int = CARD_FORMAT
    name: str
    task: str | None = None
    version: int = 1
    description: str | None = None
    architecture: Architecture
    config: dict[str, Any] = Field(default_factory=dict)
    predict: dict[str, Any] = Field(default_factory=dict)
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    training: Training = Field(default_factory=Training)
    metrics: Metrics = Field(default_factory=Metrics)
    #: earlier versions of this model: ``{"version", "metrics", ...}`` each, newest first
    previous_versions: list[dict[str, Any]] = Field(default_factory=list)
    #: human-readable notes (evaluation protocol, limitations, history); never read by code
    notes: dict[str, Any] = Field(default_factory=dict)
    scopenet_version: str | None = None
    created: str | None = None
    n_parameters: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelCard":
        """A card from its JSON mapping, migrating older layouts (:func:`migrate_card`)."""
        if int(raw.get("card_format", 1) or 1) >= 2:
            return cls.model_validate(raw)
        return cls.model_validate(migrate_card(raw))

    def to_dict(self) -> dict[str, Any]:
        """The JSON mapping (unset optional sections kept, so every card has the same keys)."""
        return self.model_dump(mode="json")

    def headline_text(self, digits: int = 3) -> str:
        """``"<value> <label>"`` or ``"-"`` when the card has no headline figure."""
        h = self.metrics.headline
        return "-" if h is None else f"{h.value:.{digits}g} ({h.label})"


# ----------------------------------------------------------------------------------- migration
def _pop(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d:
            return d.pop(k)
    return default


def migrate_card(raw: dict[str, Any]) -> dict[str, Any]:
    """Map a format-1 card (flat keys, as written by scopenet before the ModelCard schema) to format 2.

    Nothing is dropped: keys with a place in the schema go there, the rest go to ``notes``.
    """
    d = {k: v for k, v in dict(raw).items()}
    out: dict[str, Any] = {"card_format": CARD_FORMAT}
    for k in ("name", "scopenet_version", "created", "n_parameters", "architecture", "description"):
        if k in d:
            out[k] = d.pop(k)
    out.setdefault("name", "unnamed")
    task = d.pop("task", None)
    kind = d.pop("kind", None)
    if task == "inpaint" and kind == "super-resolution" or str(out["name"]).startswith("superres-"):
        task = "superres"
    out["task"] = task
    out["version"] = int(d.pop("version", 1) or 1)
    d.pop("card_format", None)

    config: dict[str, Any] = {}
    predict: dict[str, Any] = {}
    training: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    notes: dict[str, Any] = {}

    # estimator settings
    if isinstance(d.get("predict_settings"), dict):
        config.update(d.pop("predict_settings"))
    if isinstance(d.get("classifier"), dict):
        config.update(d.pop("classifier"))
    if task == "superres":
        config["sampling"] = d.pop("sampling", "block_mean")
    # fitted inference settings
    for k in ("thresholds", "coverage_range", "tta_views"):
        if k in d:
            predict[k] = d.pop(k)
    inference = d.pop("inference", None)
    if isinstance(inference, dict):
        inference = dict(inference)
        for k in ("tta_views", "fourier"):
            if k in inference:
                predict.setdefault(k, inference.pop(k))
        if "note" in inference:
            notes["inference"] = inference.pop("note")
        for k, v in inference.items():
            metrics[k] = v
    # preprocessing
    if isinstance(d.get("preprocessing"), dict):
        out["preprocessing"] = d.pop("preprocessing")
    pre = out.setdefault("preprocessing", {})
    for k in ("input", "input_shape", "noise_model"):
        if k in d:
            pre[k] = d.pop(k)
    d.pop("categories", None)  # also in the classifier config
    # training
    tconf = _pop(d, "training_config", "config")
    if task == "classify":
        tconf = dict(config)
    if tconf is not None:
        training["config"] = tconf
    if "training_data" in d:
        training["data"] = d.pop("training_data")
    steps = _pop(d, "training_steps", "steps")
    if steps is not None:
        training["steps"] = int(steps)
    t = d.pop("training_time_s", None)
    if t is not None:
        training["time_s"] = float(t)
    hw = d.pop("training_hardware", None)
    script = None
    old_training = d.pop("training", None)
    if isinstance(old_training, dict):
        old_training = dict(old_training)
        hw = hw or old_training.pop("device", None)
        script = old_training.pop("script", None)
        if old_training:
            notes["training"] = old_training
    if hw is not None:
        training["hardware"] = str(hw)
    if script is not None:
        training["command"] = str(script)
    if "init" in d:
        training["init"] = d.pop("init")
    if "training_stages" in d:
        training["stages"] = d.pop("training_stages")
    if "fine_tuning" in d:
        training["fine_tuning"] = d.pop("fine_tuning")
    # metrics
    m = d.pop("metrics", None)
    metrics_cmd = None
    if isinstance(m, dict):
        m = dict(m)
        for k in ("cv_command", "benchmark"):
            if isinstance(m.get(k), str):
                metrics_cmd = m.pop(k)
                break
        metrics = {**m, **metrics}
    bench = d.pop("benchmark", None)
    if isinstance(bench, dict):
        bench = dict(bench)
        metrics_cmd = metrics_cmd or bench.pop("command", None)
        metrics = {**bench, **metrics}
    for k in ("final_running_rms_vs_truth", "final_running_rms_nn_infill"):
        if k in d:
            metrics[k] = d.pop(k)
    for k in ("evaluation", "metrics_note"):
        if k in d:
            notes[k] = d.pop(k)
    out["metrics"] = {"command": metrics_cmd, "values": metrics}
    prev = []
    for k in ("previous_version", "previous_version_metrics"):
        v = d.pop(k, None)
        if v is not None:
            prev.append(v if isinstance(v, dict) else {"note": v})
    if prev:
        out["previous_versions"] = prev
    notes.update(d)  # whatever is left (notes, limitations, thresholds_note, ...)
    out.update(config=config, predict=predict, training=training, notes=notes)
    return out
