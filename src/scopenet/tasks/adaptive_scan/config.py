"""Settings of adaptive partial scans (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...training.config import TrainConfig

__all__ = ["AdaptiveScanConfig", "AdaptiveScanTrainConfig", "PATHS"]

#: how a scanner chooses its path: an actor steering segment by segment, or a fixed spiral or grid
PATHS = ("adaptive", "spiral", "grid")

#: the generator of the shipped models: a compact completion U-Net on [NN infill, mask] (CPU-sized)
DEFAULT_GENERATOR = {"depth": 3, "base_channels": 16, "unshuffle": 4}


class AdaptiveScanConfig(BaseModel):
    """The settings of an :class:`~scopenet.tasks.adaptive_scan.AdaptiveScanner`.

    Attributes
    ----------
    path : {"adaptive", "spiral", "grid"}
        ``adaptive``: the actor chooses each segment's direction; ``spiral``/``grid``: the fixed path of
        the baselines (Ede's spiral calibrated to the actual coverage 1/23.04, straight grid lines),
        probed in ``n_segments`` chunks.
    arch_config : dict
        :class:`~scopenet.nn.recurrent.AdaptiveScanNet` arguments (``actor``, ``generator``).
    tile : int
        Side of the square field one scan covers (96, the environment's); larger fields are scanned
        tile by tile (tiles overlap when the field is not a multiple of ``tile``).
    n_segments, segment_positions : int
        Segments per scan and probing positions per segment (20 and 20).
    blur_sigma : float
        The targets the generator learned are Gaussian-blurred by this (px; Ede's 5x5, 2.5 px kernel).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    path: Literal["adaptive", "spiral", "grid"] = "adaptive"
    arch_config: dict = Field(default_factory=dict)
    tile: int = Field(96, ge=8)
    n_segments: int = Field(20, ge=1)
    segment_positions: int = Field(20, ge=1)
    blur_sigma: float = Field(2.5, ge=0)


class AdaptiveScanTrainConfig(TrainConfig):
    """One training run of an adaptive scanner or a fixed-path baseline (``scopenet train adaptive-scan``).

    Every run trains a generator on ``max_steps`` batches of ``batch_size`` 96x96 crops (random flips and
    90-degree rotations) of the same image pool, with Ede's cyclic learning rate (``gen_lr`` times an
    envelope ``0.75 ** (5 m / M)`` and a sawtooth of period ``2M/9`` between 0.2 and 1); the target is
    the crop blurred by a 5x5 Gaussian of 2.5 px, and the loss the MSE in the scale of the scanned values
    (``(v - min) / (max - min)`` over the scan). With ``path: adaptive`` an actor and a critic learn at the
    same time by recurrent deterministic policy gradients (:mod:`scopenet.training.rdpg`): each step adds
    ``episodes_per_step`` new scans to a replay of ``replay_size`` whole histories and learns from
    ``batch_size`` of them.

    Attributes
    ----------
    path : {"adaptive", "spiral", "grid"}
    actor_hidden, actor_layers : int
        LSTM size of actor and critic (the chapter: 256 and 2).
    arch_generator : dict
        :class:`~scopenet.nn.partial_stem.InpaintUNet` arguments.
    gen_lr, actor_lr, critic_lr : float
        Peak generator rate (cyclic), constant actor and critic rates (Adam).
    gamma, target_beta, loss_beta, loss_clip_sd : float
        Discount, soft target update, running-mean decay of the final loss and its clip (in sd).
    ou_theta, ou_sigma, ou_decay_fraction : float
        Exploration: the direction is rotated by an OU angle whose scale falls linearly to zero at
        ``ou_decay_fraction`` of the run.
    edge_penalty, turn_penalty : float
        Step losses for probing off the image, and for turning (``turn_penalty (1 - cos phi) / 2``, the
        scan coils' limit; 0 reproduces the chapter).
    actor_init : {"random", "spiral"}
        ``spiral``: before RL, the actor is cloned (``bc_steps`` supervised steps) from a polygonal
        spiral of equal segments (:func:`scopenet.simulate.scan_env.spiral_directions`).
    actor_start : int
        Steps in which only the critic learns.
    bc_weight : float
        With ``actor_init: spiral``, the actor's loss adds ``bc_weight * |mu - spiral|^2`` (TD3+BC-style),
        so the actor leaves the spiral only where the critic's gradient outweighs it (0: free RDPG).
    freeze_generator_steps : int
        Steps in which the generator is frozen while the actor learns (use with ``init_from`` a trained
        generator, e.g. the spiral baseline's: the generator is then conditioned on whatever path it is
        given, and the actor learns paths it completes well before the two adapt together).
    init_from : str or None
        A saved scanner (path stem or shipped name) whose *generator* starts this run.
    n_simulated, simulated_size, simulated_seed, use_em_real : data
        The image pool: ``n_simulated`` simulated EM micrographs (``scopenet.simulate.em``, kind
        ``mixed``) plus the em-real train split (never its held-out images, the benchmark's test set).
    time_budget_s : float or None
        Stop early after this many seconds (the steps reached go on the card).
    """

    task: Literal["adaptive-scan"] = "adaptive-scan"
    workdir: Path | None = Path("runs/adaptive-scan")
    threads: int = Field(1, ge=1)
    path: Literal["adaptive", "spiral", "grid"] = "adaptive"
    actor_hidden: int = Field(64, ge=1)
    actor_layers: int = Field(2, ge=1)
    arch_generator: dict = Field(default_factory=lambda: dict(DEFAULT_GENERATOR))
    batch_size: int = Field(16, ge=1)
    episodes_per_step: int = Field(4, ge=1)
    replay_size: int = Field(5000, ge=1)
    max_steps: int = Field(500, ge=1)
    time_budget_s: float | None = Field(660.0, gt=0)
    gen_lr: float = Field(1e-3, gt=0)
    actor_lr: float = Field(5e-4, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    gamma: float = Field(0.97, ge=0, le=1)
    target_beta: float = Field(0.99, ge=0, lt=1)
    loss_beta: float = Field(0.997, ge=0, lt=1)
    loss_clip_sd: float = Field(3.0, gt=0)
    ou_theta: float = Field(0.1, ge=0)
    ou_sigma: float = Field(0.2, ge=0)
    ou_decay_fraction: float = Field(1.0, gt=0, le=1)
    edge_penalty: float = Field(0.1, ge=0)
    turn_penalty: float = Field(0.0, ge=0)
    actor_init: Literal["random", "spiral"] = "random"
    bc_steps: int = Field(300, ge=0)
    actor_start: int = Field(0, ge=0)
    bc_weight: float = Field(0.0, ge=0)
    freeze_generator_steps: int = Field(0, ge=0)
    n_simulated: int = Field(120, ge=0)
    simulated_size: int = Field(192, ge=96)
    simulated_seed: int = 21
    use_em_real: bool = True
    blur_sigma: float = Field(2.5, ge=0)
    log_every: int = Field(20, ge=1)
    checkpoint_every_s: float | None = Field(120.0, ge=0)
