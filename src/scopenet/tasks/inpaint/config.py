"""Settings for sparse-scan completion (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig

#: Ede's seven spiral coverages as *actual* fractions of probed pixels (thesis ch. 4): 1/17.9 ... 1/87.0
EDE_COVERAGES = (1 / 17.9, 1 / 27.3, 1 / 38.2, 1 / 50.0, 1 / 60.5, 1 / 73.7, 1 / 87.0)


class InpaintTrainConfig(TrainConfig):
    """One training run of the coverage-agnostic completion model (fully describes the run).

    Times in seconds, sizes in pixels. Loss: ``loss_scale * ALRC(MSE)`` of the output against the truth
    blurred by a ``blur_size x blur_size`` Gaussian of ``blur_sigma`` px (Ede thesis ch. 4). The engine
    settings (``workdir``, ``seed``, ``threads``, ``accelerator``, ``devices``, ``strategy``, ``precision``,
    ``num_workers``, ``checkpoint_every_s``, ``log_every``, ``init_from``) are those of
    :class:`~scopenet.training.config.TrainConfig`; ``init_from`` may add input channels the old network
    lacks (e.g. ``normconv_sigmas``): they start at zero, so training starts from its output.
    """

    task: Literal["inpaint"] = "inpaint"
    workdir: Path | None = Path("runs/inpaint-default")
    architecture: str = "inpaint-unet"
    arch_config: dict = Field(default_factory=lambda: {"depth": 3, "base_channels": 16, "unshuffle": 2})
    crop: int = 128
    batch_size: int = 8
    lr: float = 1e-3
    lr_final_fraction: float = 0.05
    max_steps: int = 100_000
    time_budget_s: float | None = 2400.0
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
