"""Settings for sparse-scan completion (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Ede's seven spiral coverages as *actual* fractions of probed pixels (thesis ch. 4): 1/17.9 ... 1/87.0
EDE_COVERAGES = (1 / 17.9, 1 / 27.3, 1 / 38.2, 1 / 50.0, 1 / 60.5, 1 / 73.7, 1 / 87.0)


class InpaintTrainConfig(BaseModel):
    """One training run of the coverage-agnostic completion model (fully describes the run).

    Times in seconds, sizes in pixels. Loss: ``loss_scale * ALRC(MSE)`` of the output against the truth
    blurred by a ``blur_size x blur_size`` Gaussian of ``blur_sigma`` px (Ede thesis ch. 4).
    """

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Path("runs/inpaint-default")
    architecture: str = "inpaint-unet"
    arch_config: dict = Field(default_factory=lambda: {"depth": 3, "base_channels": 16, "unshuffle": 2})
    crop: int = 128
    batch_size: int = 8
    lr: float = 1e-3
    lr_final_fraction: float = 0.05
    max_steps: int = 100_000
    time_budget_s: float = 2400.0
    n_simulated: int = 160
    simulated_size: int = 256
    use_em_real: bool = True
    kinds: list[str] = Field(default_factory=lambda: ["spiral", "grid", "random", "segments"])
    coverage_min: float = 1 / 100
    coverage_max: float = 1 / 10
    n_coverages: int = 10
    masks_per_level: int = 2
    blur_size: int = 5
    blur_sigma: float = 2.5
    loss_scale: float = 200.0
    alrc: dict = Field(default_factory=lambda: {"n_max": 3.0, "mu1_init": 1.0, "mu2_init": 2.0, "b1": 0.99, "b2": 0.99})
    checkpoint_every_s: float = 120.0
    log_every: int = 10
    threads: int = 2
    seed: int = 0
    #: where to train (Lightning): "auto" uses a GPU when there is one; ``devices`` > 1 with
    #: ``strategy="ddp"`` trains one process per device, each drawing its own batches (the global batch
    #: is ``batch_size * devices``); mixed precision applies on GPUs only
    accelerator: str = "auto"
    devices: int | Literal["auto"] = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    #: DataLoader worker processes making batches (0: in the training process); each draws its own
    num_workers: int = Field(0, ge=0)
    #: warm start: a saved model (name or path stem) whose weights seed the network; input channels the
    #: old network lacks (e.g. added ``normconv_sigmas``) start at zero, so training starts from its output
    init_from: str | None = None
    #: optional adversarial fine-tuning (Ede ch. 4): three spectral-normalised discriminators on random
    #: ``disc_crop_sizes`` crops resized to ``disc_input``, least-squares GAN losses, the generator's loss
    #: ``loss_scale * ALRC(MSE) + lambda_adv * LSGAN``; the discriminators see past outputs through an
    #: experience-replay buffer of ``replay_size`` images. Usually started ``init_from`` a trained model.
    adversarial: bool = False
    lambda_adv: float = Field(5.0, ge=0)
    disc_lr: float = Field(1e-4, gt=0)
    disc_channels: int = Field(32, ge=1)
    disc_crop_sizes: list[int] = Field(default_factory=lambda: [70, 140, 280], min_length=1)
    disc_input: int = Field(70, ge=24)
    replay_size: int = Field(50, ge=0)

    @model_validator(mode="after")
    def _crops_fit(self):
        if self.adversarial and max(self.disc_crop_sizes) > self.crop:
            raise ValueError(f"adversarial training needs crop >= the largest discriminator crop "
                             f"({max(self.disc_crop_sizes)} px), got crop={self.crop}")
        return self

    def to_yaml(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the configuration as YAML, headed ``task: inpaint`` (atomically; ``overwrite=False`` refuses
        an existing file)."""
        from ..._fileutil import atomic_output

        path = Path(path)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(yaml.safe_dump({"task": "inpaint", **self.model_dump(mode="json")}, sort_keys=False))
        return path

    @classmethod
    def from_yaml(cls, path: str | Path) -> "InpaintTrainConfig":
        """Read a configuration; a missing file, bad YAML or an invalid field raises ``ReadError``."""
        from ...training.config import read_yaml_model

        return read_yaml_model(cls, path, "inpainting training configuration", drop=("task",))


class InpaintConfig(BaseModel):
    """The settings of an :class:`~scopenet.tasks.inpaint.model.Inpainter`: its network (``arch``,
    ``arch_config``) and how it is applied (tiling, intensity normalisation, Fourier refinement)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: str = "inpaint-unet"
    arch_config: dict = Field(default_factory=dict)
    tile: int = 512
    overlap: int = 64
    normalise: Literal["scanned", "none"] = "scanned"
    keep_scanned: bool = False
    #: refine the network's completion by Fourier sparsity (:func:`~scopenet.tasks.inpaint.baselines.sparse_fourier`):
    #: "auto" when a check on the scan's own withheld samples says it helps (periodic specimens), "on", "off"
    fourier: Literal["auto", "on", "off"] = "auto"
