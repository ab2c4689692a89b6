"""Settings of the tip-state classifier (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
