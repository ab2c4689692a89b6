"""Settings of the embedding task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...training.config import TrainConfig

__all__ = ["EmbedConfig", "EmbedTrainConfig"]


class EmbedConfig(BaseModel):
    """The settings of an :class:`~scopenet.tasks.embed.Embedder`.

    Attributes
    ----------
    arch, arch_config : str, dict
        The network (:class:`scopenet.nn.vae.VAE`, registered as ``"embed-vae"``).
    fit : {"resize", "tiles"}
        How an image of any size becomes the network's ``size x size`` input: ``"resize"`` (default)
        crops the central square (the largest that fits) and area-averages it down (or bilinearly up)
        to ``size`` pixels, like Ede's "96 x 96" datasets; ``"tiles"`` cuts non-overlapping
        ``size x size`` tiles at the image's own pixel size (the last row/column of tiles aligned to the
        far edge; images smaller than ``size`` are resized) and averages their codes.
    orient : {"canonical", "none"}
        ``"canonical"`` (default) turns/flips each input into its canonical view
        (:func:`scopenet.tasks.embed.preprocess.canonical_view`, a rule on its quadrant sums) before
        encoding, so an image and its rotated or flipped copy get the same code from one network pass;
        ``"none"`` encodes inputs as they are.
    batch_size : int
        Images per forward pass in :meth:`~scopenet.tasks.embed.Embedder.predict`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: str = "embed-vae"
    arch_config: dict = Field(default_factory=dict)
    fit: Literal["resize", "tiles"] = "resize"
    orient: Literal["canonical", "none"] = "canonical"
    batch_size: int = Field(256, ge=1)


class EmbedTrainConfig(TrainConfig):
    """One training run of the embedding VAE (``scripts/train_embed.py``, ``Embedder.fit``).

    96x96 inputs min-max scaled to [0, 1], a random one of the 8 flips/90-degree rotations per image;
    Adam at ``lr`` halved ``halvings`` times in equal steps over the budget (Ede's stepwise exponential
    decay, a = 0.5, b = 8).

    Attributes
    ----------
    norm : {"encoding", "kl"}
        Ede's encoding normalisation with the loss ``lambda_mse MSE + lambda_sobel MSE(Sobel) +
        MSE(sigma, 1)``, or the traditional KL-VAE (``lambda_mse MSE + KL``).
    widths, convs, hidden, latent, lambda_mu : the network (:class:`scopenet.nn.vae.VAE`).
    lambda_mse, lambda_sobel : float
        Loss weights (50 and 50 in the paper).
    n_sim_em, n_sim_spm : int
        Simulated images in the shipped model's pool: per EM kind (stem, hrtem, meso; 192 px) and SPM
        (128 px, the five surfaces equally likely).
    n_real_spm : int
        gordon-hsi STM images from sessions outside the benchmark's held-out fold.
    use_real_em : bool
        Add crops of the em-real train split (never the held-out split).
    """

    task: Literal["embed"] = "embed"
    workdir: Path | None = Path("runs/embed")
    norm: Literal["encoding", "kl"] = "encoding"
    size: int = Field(96, ge=16)
    latent: int = Field(64, ge=2)
    widths: list[int] = Field(default_factory=lambda: [16, 32, 64, 64], min_length=1)
    convs: int = Field(1, ge=1)
    hidden: int = Field(256, ge=8)
    lambda_mu: float = Field(2.5, gt=0)
    lambda_mse: float = Field(50.0, ge=0)
    lambda_sobel: float = Field(50.0, ge=0)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    halvings: int = Field(3, ge=0)
    grad_clip: float | None = Field(5.0, gt=0)
    max_steps: int = Field(600_000, ge=1)
    time_budget_s: float | None = Field(1980.0, gt=0)
    checkpoint_every_s: float | None = Field(120.0, ge=0)
    threads: int = Field(1, ge=1)
    n_sim_em: int = Field(500, ge=0)
    n_sim_spm: int = Field(1000, ge=0)
    n_real_spm: int = Field(600, ge=0)
    use_real_em: bool = True
