"""Training configuration as data: pydantic models that round-trip to YAML.

A run is fully described by one :class:`RunConfig`; :func:`scopenet.training.train` saves it as
``run.yaml`` beside the run's checkpoints, so ``RunConfig.from_yaml(out/name/run.yaml)`` repeats it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._fileutil import atomic_output
from ..errors import InputError, ReadError

Schedule = Literal["none", "step", "exponential", "cyclic_sawtooth", "demon"]
Precision = Literal["32", "16-mixed", "bf16-mixed"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Base):
    """How training images become batches.

    Attributes
    ----------
    crop_size : int
        Side of the square random crops, pixels.
    batch_size : int
        Crops per batch on each process (the global batch is ``batch_size * world_size``).
    num_workers : int
        DataLoader worker processes (0 loads in the main process).
    samples_per_image : int
        Random crops drawn from each image per epoch.
    augment : bool
        Apply one of the 8 flips/90-degree rotations at random to each crop.
    normalise : {"zscore", "minmax", "none"}
        Per-image normalisation applied before cropping.
    split : tuple of 3 floats
        Train/validation/test fractions, grouped by source file.
    split_seed : int
        Seed of the grouped split.
    group_key : str or None
        Metadata key naming an image's source (used by tasks that build groups from metadata).
    """

    crop_size: int = Field(64, ge=4)
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(0, ge=0)
    samples_per_image: int = Field(16, ge=1)
    augment: bool = True
    normalise: Literal["zscore", "minmax", "none"] = "zscore"
    split: tuple[float, float, float] = (0.75, 0.15, 0.10)
    split_seed: int = 0
    group_key: str | None = "source"

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v):
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {v}")
        return v


class OptimConfig(_Base):
    """Optimiser, learning-rate/momentum schedule and loss clipping.

    Attributes
    ----------
    optimizer : {"adam", "adamw", "sgd"}
    lr : float
        Initial learning rate.
    betas : (float, float)
        Adam betas; for SGD ``betas[0]`` is the momentum.
    weight_decay : float
    schedule : {"none", "step", "exponential", "cyclic_sawtooth", "demon"}
        See :mod:`scopenet.training.schedules`; ``schedule_params`` holds its keyword arguments.
    clipper : str or None
        Loss clipper from :func:`scopenet.training.alrc.make_clipper` ("alrc", "dalrc", "clrc",
        "huber"...), or None for none; ``clipper_params`` holds its keyword arguments.
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Schedule = "none"
    schedule_params: dict[str, Any] = Field(default_factory=dict)
    clipper: str | None = None
    clipper_params: dict[str, Any] = Field(default_factory=dict)


class TrainerConfig(_Base):
    """How long and where to train.

    Attributes
    ----------
    max_epochs : int
    max_steps : int
        Optimiser steps (-1: no limit).
    precision : {"32", "16-mixed", "bf16-mixed"}
        Mixed precision is used on GPUs only; on the CPU the run falls back to 32 with a warning.
    accelerator : str
        "auto", "cpu", "gpu" or "cuda".
    devices : int or "auto"
    num_nodes : int
    strategy : {"auto", "ddp"}
        "ddp" trains one process per device (and is torchrun-compatible).
    accumulate : int
        Gradient accumulation steps.
    early_stopping_patience : int or None
        Validation checks without improvement before stopping; None disables early stopping.
    checkpoint_every_n_steps : int
        ``last.ckpt`` is written every this many optimiser steps and at every epoch end.
    seed : int
    log_every : int
        Steps between logged training losses.
    deterministic : bool
        Ask torch for deterministic kernels.
    """

    max_epochs: int = Field(10, ge=1)
    max_steps: int = -1
    precision: Precision = "32"
    accelerator: str = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp"] = "auto"
    accumulate: int = Field(1, ge=1)
    early_stopping_patience: int | None = None
    checkpoint_every_n_steps: int = Field(100, ge=1)
    seed: int = 0
    log_every: int = Field(10, ge=1)
    deterministic: bool = True


class RunConfig(_Base):
    """Everything a training run needs: task, model, data, optimiser, trainer and where to write.

    The run writes into ``out_dir / name``.
    """

    task: str
    name: str = "run"
    out_dir: Path = Path("runs")
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "unet", "config": {}})
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    extra: dict[str, Any] = Field(default_factory=dict, description="task-specific settings")

    @model_validator(mode="after")
    def _name_is_a_folder_name(self):
        if not self.name or "/" in self.name or "\\" in self.name or self.name in {".", ".."}:
            raise ValueError(f"run name {self.name!r} must be a plain folder name")
        return self

    @property
    def run_dir(self) -> Path:
        """``out_dir / name``: where checkpoints, logs, ``run.yaml`` and the loss curve go."""
        return Path(self.out_dir) / self.name

    # --- YAML ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dictionary."""
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the configuration as YAML (atomically; an existing file needs ``overwrite``)."""
        path = Path(path)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """Read a configuration; a missing file, bad YAML or invalid field raises ``ReadError``."""
        return read_yaml_model(cls, path, "run configuration")


def read_yaml_model(model: type[BaseModel], path: str | Path, what: str, drop: tuple[str, ...] = ()) -> BaseModel:
    """Validate the YAML mapping in ``path`` as ``model`` (keys in ``drop`` ignored); a missing file, bad
    YAML, a non-mapping or an invalid field raises ``ReadError`` naming the file and ``what`` it should be."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "no such configuration file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ReadError(path, f"not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ReadError(path, f"a {what} must be a YAML mapping")
    for k in drop:
        raw.pop(k, None)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ReadError(path, f"invalid {what}:\n{exc}") from exc


def resolve_precision(precision: str, accelerator: str) -> str:
    """Mixed precision on GPUs only: on the CPU return ``"32"`` and warn.

    Parameters
    ----------
    precision : str
        Requested precision ("32", "16-mixed", "bf16-mixed").
    accelerator : str
        "cpu", "gpu", "cuda" or "auto" (auto means cuda when available).
    """
    import torch

    if precision == "32":
        return "32"
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        warnings.warn(f"precision {precision!r} needs a GPU; training on the CPU in 32-bit", stacklevel=2)
        return "32"
    return precision


def _check_config(obj: Any) -> RunConfig:
    if isinstance(obj, RunConfig):
        return obj
    if isinstance(obj, (str, Path)):
        return RunConfig.from_yaml(obj)
    if isinstance(obj, dict):
        try:
            return RunConfig.model_validate(obj)
        except ValidationError as exc:
            raise InputError(f"invalid run configuration:\n{exc}") from exc
    raise InputError(f"expected a RunConfig, a dict or a YAML path, got {type(obj).__name__}")
