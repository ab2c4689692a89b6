"""Settings of the tip-state classifier (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig
from .data import CATEGORIES


class ClassifierConfig(BaseModel):
    """Network, input and training settings of a :class:`~scopenet.tasks.classify.TipClassifier`.

    ``mode="multi"``: sigmoid outputs trained with binary cross-entropy on soft labels (several
    categories may apply). ``mode="single"``: softmax outputs trained with cross-entropy on (soft)
    class distributions (e.g. good/bad).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    categories: list[str] = Field(default_factory=lambda: list(CATEGORIES), min_length=1)
    mode: Literal["multi", "single"] = "multi"
    arch: Literal["tipnet", "tipresnet"] = "tipnet"
    channels: list[int] = Field(default_factory=lambda: [8, 16, 16, 32, 64], min_length=1)
    dense: int = Field(256, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    stem_stride: int = Field(1, ge=1, le=4, description="stride of TipNet's first convolution (2: fast preset)")
    line_k: int = Field(0, ge=0, le=64, description="TipNet scan-line branch: number of strongest rows/columns "
                                                   "given to the dense layer (0 = none)")
    ensemble: int = Field(1, ge=1, le=16, description="independently seeded networks trained and averaged "
                                                     "(their logits); inference cost grows with it")
    size: int = Field(64, ge=8, le=512, description="input side in pixels (presets 32 and 64)")
    flatten: bool = Field(True, description="X-flatten every scan line before resizing")
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0, description="peak learning rate of the one-cycle schedule")
    weight_decay: float = Field(1e-3, ge=0)
    line_aug_p: float = Field(0.5, ge=0, le=1, description="fraction of images given scan-line artefacts")
    balance: bool = Field(False, description="weight positives by (1-f)/f per category (multi mode)")
    pos_weight: list[float] | None = Field(
        None, description="single mode: per-class loss weights (e.g. [1, 4] to up-weight a rare 'good')")
    seed: int = 0
    threads: int = Field(1, ge=1, description="torch CPU threads during training")

    def to_yaml(self, path: str | Path) -> Path:
        import yaml

        path = Path(path)
        path.write_text(yaml.safe_dump(self.model_dump(), sort_keys=False))
        return path

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ClassifierConfig":
        import yaml

        from ...errors import ReadError

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ReadError(path, f"not a readable YAML file ({exc})") from exc
        data = data.get("classify", data) if isinstance(data, dict) else data
        try:
            return cls.model_validate(data)
        except Exception as exc:  # pydantic.ValidationError
            raise ReadError(path, f"invalid classifier settings: {exc}") from exc


# ------------------------------------------------------------------------------ training (scopenet train)
class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExportData(_Data):
    """Images labelled in the labelling service (or on Zooniverse): an export CSV and the image folder.

    The export becomes per-image scores (:mod:`scopenet.training.crowd.aggregate`), then a training set by ``method``
    (soft | repeat | balanced), dropping images below ``min_agreement`` (None keeps all); the categories
    are the export's.
    """

    kind: Literal["export"] = "export"
    labels: str = "export.csv"
    images: str | None = Field(None, description="folder of the labelled images (None: beside the export)")
    method: Literal["soft", "repeat", "balanced"] = "soft"
    min_agreement: float | None = Field(0.4, ge=0, le=1)


class HsiData(_Data):
    """The gordon-hsi H:Si(100) set (3,271 STM images, soft labels of six categories), optionally with
    simulated images (``sim``: ``.npz`` files written by ``scripts/train_classify.py simdata``, the first
    ``sim_n`` used, each weighing ``sim_weight`` in the loss)."""

    kind: Literal["gordon-hsi"] = "gordon-hsi"
    root: str = "../shared/data/gordon-hsi"
    sim: list[str] = Field(default_factory=list)
    sim_n: int | None = Field(None, ge=1)
    sim_weight: float = Field(1.0, ge=0)


class SimulatedData(_Data):
    """Simulated STM images with exact labels (``.npz`` files of ``scripts/train_classify.py simdata``).

    ``target``: ``labels6`` (the six category scores) or ``good`` (the tip verdict, two classes ``bad``,
    ``good``; ``soft_width`` > 0 trains on the soft verdict
    :func:`~scopenet.simulate.spm.labels.good_tip_score` of that width). ``aux`` adds the six scores and
    the apex-defect visibility as auxiliary targets (``good`` only). ``teacher`` distils: the targets
    become ``(1 - teacher_weight) * labels + teacher_weight * p_teacher`` (``labels6`` only), the
    teacher's probabilities averaged over the 8 flips/rotations when ``teacher_tta``.
    """

    kind: Literal["simulated"] = "simulated"
    files: list[str] = Field(..., min_length=1)
    target: Literal["labels6", "good"] = "labels6"
    soft_width: float = Field(0.0, ge=0)
    aux: bool = False
    teacher: str | None = None
    teacher_weight: float = Field(0.5, ge=0, le=1)
    teacher_tta: bool = True


def _legacy_run(d: dict) -> dict:
    """The layout of classify runs before the typed configuration (``name``/``out_dir``, ``model``, ``data``,
    ``optim``, ``trainer`` and a free ``extra`` holding ``labels``, ``images``, ``method``,
    ``min_agreement``, ``init`` and ``classify``) in the typed one."""
    if "extra" not in d and "out_dir" not in d:
        return d
    out = {"task": d.pop("task", "classify")}
    out["workdir"] = str(Path(d.pop("out_dir", "runs")) / d.pop("name", "classify-run"))
    for k in ("model", "data", "optim"):  # the generic sections of the old engine: classify never read them
        d.pop(k, None)
    trainer = d.pop("trainer", None) or {}
    if "seed" in trainer:
        out["seed"] = trainer["seed"]
    extra = dict(d.pop("extra", None) or {})
    if "classify" in extra:
        out["classifier"] = extra.pop("classify")
    if "init" in extra:
        out["init"] = extra.pop("init")
    data = {k: extra.pop(k) for k in ("labels", "images", "method", "min_agreement") if k in extra}
    if data:
        out["data"] = {"kind": "export", **data}
    out.update({f"extra.{k}": v for k, v in extra.items()})  # anything else: reported as an unknown key
    out.update(d)
    return out


ClassifyData = Annotated[Union[ExportData, HsiData, SimulatedData], Field(discriminator="kind")]


class ClassifyTrainConfig(TrainConfig):
    """One training run of a tip-state classifier (``scopenet train classify``).

    ``classifier`` holds the network, input and training settings (epochs, batch size, one-cycle peak
    ``lr``...); the run's ``seed`` and ``threads`` are copied into it. The run trains on the engine
    (:class:`~scopenet.training.budget.EpochStream`: epochs over the prepared images), ``classifier.ensemble``
    members one after another (seeds ``seed + 100 i``), checkpointing every epoch, and writes
    ``<workdir>/model.safetensors`` + ``model.json``.

    Attributes
    ----------
    data : ExportData, HsiData or SimulatedData
        Where the images and labels come from (``kind``: export, gordon-hsi, simulated).
    init : str, list or None
        Fine-tune: a saved model or shipped name every member starts from (its network and input settings
        replace the classifier's), or one entry per ensemble member (None: random initialisation).
    aux_weight : float
        Weight of the auxiliary targets' loss (``data.aux``).
    """

    task: Literal["classify"] = "classify"
    workdir: Path | None = Path("runs/classify")
    threads: int = Field(1, ge=1)
    checkpoint_every_s: float | None = Field(None, gt=0)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    data: ClassifyData = Field(default_factory=ExportData)
    init: str | list[str | None] | None = None
    aux_weight: float = Field(1.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _seed_and_threads(cls, data):
        """The run's ``seed`` and ``threads`` are the classifier's: taken from it when the run omits them."""
        if not isinstance(data, dict):
            return data
        d = _legacy_run(dict(data))
        if "classifier" not in d and set(d) - {"task"} and set(d) - {"task"} <= set(ClassifierConfig.model_fields):
            # a bare classifier configuration (the training config of cards made before the run configuration)
            d = {"task": d.pop("task", "classify"), "classifier": d}
        cl = d.get("classifier")
        cl = dict(cl) if isinstance(cl, dict) else (cl.model_dump() if isinstance(cl, BaseModel) else None)
        if cl is None:
            cl = {}
        for k, default in (("seed", 0), ("threads", 1)):
            if k not in d:
                d[k] = cl.get(k, default)
            cl[k] = d[k]
        d["classifier"] = cl
        return d
