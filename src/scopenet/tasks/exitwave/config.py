"""Settings of the exit-wave task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...training.config import TrainConfig

__all__ = ["ExitWaveConfig", "ExitWaveTrainConfig"]


class ExitWaveConfig(BaseModel):
    """The settings of an :class:`~scopenet.tasks.exitwave.ExitWaveEstimator`.

    Attributes
    ----------
    arch, arch_config : str, dict
        The network (:func:`scopenet.nn.build_architecture`; default :class:`~scopenet.nn.exitwave.ExitWaveNet`).
    input : {"amplitude", "intensity"}
        What :meth:`predict` is given: the exit-wave amplitude ``|psi|`` (the chapter's input) or an
        intensity ``|psi|^2`` (its square root is taken).
    scale : {"mean", "range"}
        How the input is brought to the training scale (mean amplitude 1): divided by its mean
        (``"mean"``; amplitudes must be non-negative), or mapped linearly from its range onto
        ``[0, 2]`` (``"range"``: for images with an unknown offset, e.g. display-scaled ones).
    ood_confidence : float
        An image whose mean phase confidence is below this is flagged unlike the training data
        (0 disables). :func:`~scopenet.tasks.exitwave.model.calibrate_confidence` sets it to the
        ``ood_confidence_quantile`` quantile of the mean confidence of random crops of the training
        waves: low mean confidence is what best separates unseen materials with large phase errors
        from the training distribution (``docs/tasks/exitwave.md``).
    ood_confidence_quantile : float or None
        The fraction of training-wave crops whose mean confidence lies below ``ood_confidence`` (the
        expected flag rate on inputs like the training data; default 0.05), or None where the
        threshold was set another way.
    amplitude_sd_range : (float, float)
        The range of the amplitude's standard deviation (after scaling to mean 1) seen in training;
        an image outside it is flagged. The default ``(0, 1e6)`` flags nothing (finite, so that model
        cards stay valid JSON).
    high_frequency_max : float
        The largest fraction of the amplitude's variance above 2/3 of the Nyquist frequency seen in
        training (times a margin); simulated waves are band-limited there, so noisy or
        differently sampled images are flagged. 1 disables.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: str = "exitwave-net"
    arch_config: dict = Field(default_factory=dict)
    input: Literal["amplitude", "intensity"] = "amplitude"
    scale: Literal["mean", "range"] = "mean"
    ood_confidence: float = Field(0.0, ge=0.0, le=1.0)
    ood_confidence_quantile: float | None = Field(None, gt=0.0, lt=1.0)
    amplitude_sd_range: tuple[float, float] = (0.0, 1e6)
    high_frequency_max: float = Field(1.0, ge=0.0, le=1.0)


class ExitWaveTrainConfig(TrainConfig):
    """One training run of an exit-wave model (``scripts/train_exitwave.py``, ``ExitWaveEstimator.fit``).

    The generator learns ``(cos theta, sin theta)`` from the amplitude of random ``crop`` px crops of
    the training waves, each in one of the 8 flips/rotations (chapter 7, section 3). Loss:
    ``loss_scale`` (10) times the MSE of the unit phase components, clipped by ALRC (per example;
    initial moments 25 and 30^2, 3 standard deviations, decay 0.999), plus ``raw_weight`` times the
    MSE of the raw (unnormalised) output, which makes its length the phase confidence. Adam at ``lr``
    (chapter: 0.002) halved ``lr_halvings`` times at equal steps over the budget (chapter: every
    1/7 of the run). With ``gan`` a least-squares GAN term (weight ``gan_weight``) from a spectrally
    normalised discriminator on ``{A cos theta, A sin theta}`` is added; the discriminator's
    learning rate is ``d_lr / (1 + exp(-m (mu_D - c)))`` with ``mu_D`` the running mean score of
    generated waves (chapter eq. 24).

    Attributes
    ----------
    data : list of path
        ``.npz`` files written by :func:`scopenet.simulate.em.exitwave.save_waves`.
    """

    task: Literal["exitwave"] = "exitwave"
    workdir: Path | None = Path("runs/exitwave")
    data: list[Path] = Field(default_factory=list)
    name: str = "exitwave-model"
    channels: int = Field(16, ge=1)
    blocks: int = Field(4, ge=0)
    context: bool = True
    crop: int = Field(64, ge=16)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    lr_halvings: int = Field(3, ge=0)
    loss_scale: float = Field(10.0, gt=0)
    raw_weight: float = Field(1.0, ge=0)
    alrc: bool = True
    gan: bool = False
    gan_weight: float = Field(0.1, ge=0)
    d_lr: float = Field(2e-4, gt=0)
    d_channels: int = Field(16, ge=1)
    max_steps: int = Field(100_000, ge=1)
    time_budget_s: float | None = Field(1200.0, gt=0)
    checkpoint_every_s: float | None = Field(120.0, ge=0)
    threads: int = Field(1, ge=1)
    scale: Literal["mean", "range"] = "mean"
