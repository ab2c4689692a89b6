"""A variational autoencoder for micrograph embeddings (Ede 2020, "Warwick electron microscopy datasets").

An encoder maps ``(B, 1, size, size)`` images in [0, 1] to the means ``mu`` and standard deviations
``sigma`` of ``latent``-dimensional normal distributions; a generator maps samples
``z = mu + sigma * eps`` back to images. Every convolution or dense layer but the last of each network
is followed by batch normalisation and a ReLU; ``sigma`` comes through an absolute value, ``|x|``.

Two ways to regularise the latent space (``norm``):

- ``"encoding"`` (Ede's encoding normalisation, the default): per latent dimension ``j``,
  ``mu_j <- lambda_mu (mu_j - mean_j) / std_j`` and ``sigma_j <- sigma_j / (2 std(sigma)_j)``, with the
  statistics of the batch while training and **running** statistics (exponential averages, as batch
  normalisation keeps) for inference, so that an image's code does not depend on the other images of
  its batch. The loss is ``lambda_mse MSE + lambda_sobel MSE(Sobel) + MSE(sigma, 1)``
  (:func:`encoding_loss`).
- ``"kl"``: the traditional VAE, ``lambda_mse MSE + KL(N(mu, sigma) || N(0, 1))`` (:func:`kl_loss`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_architecture

__all__ = ["EncodingNorm", "VAE", "encoding_loss", "kl_loss", "sobel"]


class EncodingNorm(nn.Module):
    """Ede's encoding normalisation of ``(mu, sigma)`` with running statistics for inference.

    Parameters
    ----------
    latent : int
        Number of latent dimensions.
    lambda_mu : float
        The standard deviation of each normalised ``mu`` dimension (2.5 in the paper).
    momentum : float
        Weight of the current batch in the running statistics (as ``torch.nn.BatchNorm``).
    eps : float
        Added to the variances.

    Notes
    -----
    In training mode the batch statistics normalise the batch (B >= 2) and update ``running_mean``,
    ``running_var`` (of ``mu``) and ``running_sigma_var`` (of ``sigma``); in eval mode only the running
    statistics are used, so the code of an image is the same alone and inside any batch.
    """

    def __init__(self, latent: int = 64, lambda_mu: float = 2.5, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.lambda_mu, self.momentum, self.eps = float(lambda_mu), float(momentum), float(eps)
        self.register_buffer("running_mean", torch.zeros(latent))
        self.register_buffer("running_var", torch.ones(latent))
        self.register_buffer("running_sigma_var", torch.ones(latent))

    def forward(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and mu.shape[0] > 1:
            mean = mu.mean(0)
            var = mu.var(0, unbiased=False)
            svar = sigma.var(0, unbiased=False)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach())
                self.running_sigma_var.mul_(1 - m).add_(m * svar.detach())
        else:
            mean, var, svar = self.running_mean, self.running_var, self.running_sigma_var
        mu = self.lambda_mu * (mu - mean) / torch.sqrt(var + self.eps)
        sigma = sigma / (2 * torch.sqrt(svar + self.eps))
        return mu, sigma


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VAE(nn.Module):
    """Convolutional VAE: ``encode(x) -> (mu, sigma)``, ``decode(z) -> image``, ``reconstruct(x) -> (recon,
    mu, sigma)`` and ``forward(x) -> recon`` (``z`` sampled while training, ``z = mu`` in eval mode).

    Parameters
    ----------
    size : int
        Input side in pixels (96); must be divisible by ``2 ** len(widths)``.
    latent : int
        Latent dimensions (64).
    widths : list of int
        Channels of the encoder's stride-2 stages (the generator mirrors them).
    convs : int
        3x3 convolutions per stage (the first of each has stride 2).
    hidden : int
        Units of the dense layer between the convolutions and ``(mu, sigma)``.
    norm : {"encoding", "kl"}
        Ede's encoding normalisation, or the traditional KL-regularised VAE.
    lambda_mu : float
        Standard deviation of the normalised means (encoding normalisation).
    """

    arch_name = "embed-vae"

    def __init__(self, size: int = 96, latent: int = 64, widths: list[int] | tuple[int, ...] = (16, 32, 64, 64),
                 convs: int = 1, hidden: int = 256, norm: str = "encoding", lambda_mu: float = 2.5):
        super().__init__()
        widths = [int(w) for w in widths]
        k = 2 ** len(widths)
        if size % k:
            raise ValueError(f"size {size} must be divisible by 2**len(widths) = {k}")
        if norm not in ("encoding", "kl"):
            raise ValueError(f"norm must be 'encoding' or 'kl', got {norm!r}")
        self.config = {"size": int(size), "latent": int(latent), "widths": widths, "convs": int(convs),
                       "hidden": int(hidden), "norm": norm, "lambda_mu": float(lambda_mu)}
        self.size, self.latent, self.norm = int(size), int(latent), norm
        self.bottom = size // k
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += _block(cin, w, 2)
            for _ in range(convs - 1):
                layers += _block(w, w, 1)
            cin = w
        flat = cin * self.bottom ** 2
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, hidden, bias=False),
                                     nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * latent))
        self.enc_norm = EncodingNorm(latent, lambda_mu) if norm == "encoding" else None
        self.gen_in = nn.Sequential(nn.Linear(latent, flat, bias=False), nn.BatchNorm1d(flat), nn.ReLU(inplace=True))
        gl: list[nn.Module] = []
        rev = widths[::-1]
        for i, w in enumerate(rev):
            nxt = rev[i + 1] if i + 1 < len(rev) else max(rev[-1] // 2, 8)
            gl += [nn.ConvTranspose2d(w, nxt, 4, 2, 1, bias=False), nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
            for _ in range(convs - 1):
                gl += _block(nxt, nxt, 1)
        gl.append(nn.Conv2d(nxt, 1, 3, 1, 1))
        self.generator = nn.Sequential(*gl)
        self._top = cin

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, size, size)`` -> ``mu, sigma``, each ``(B, latent)``."""
        h = self.encoder(x)
        mu, s = h[:, :self.latent], h[:, self.latent:]
        sigma = s.abs()
        if self.enc_norm is not None:
            mu, sigma = self.enc_norm(mu, sigma)
        else:
            sigma = sigma + 1e-4
        return mu, sigma

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent)`` -> ``(B, 1, size, size)`` images (unbounded; trained towards [0, 1])."""
        h = self.gen_in(z).view(z.shape[0], self._top, self.bottom, self.bottom)
        return self.generator(h)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(recon, mu, sigma)`` of ``x``; ``z = mu + sigma * eps`` while training, ``z = mu`` in eval mode."""
        mu, sigma = self.encode(x)
        z = mu + sigma * torch.randn_like(sigma) if self.training else mu
        return self.decode(z), mu, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x`` (:meth:`reconstruct` without the codes)."""
        return self.reconstruct(x)[0]


_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel derivatives of ``(B, 1, H, W)`` -> ``(B, 2, H - 2, W - 2)``."""
    k = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(x)
    return F.conv2d(x, k)


def encoding_loss(recon: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, lambda_mse: float = 50.0,
                  lambda_sobel: float = 50.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Ede's loss (eq. 11): ``lambda_mse MSE(G(z), I) + lambda_sobel MSE(S(G(z)), S(I)) + MSE(sigma, 1)``."""
    mse = F.mse_loss(recon, x)
    sob = F.mse_loss(sobel(recon), sobel(x))
    reg = F.mse_loss(sigma, torch.ones_like(sigma))
    loss = lambda_mse * mse + lambda_sobel * sob + reg
    return loss, {"mse": float(mse.detach()), "sobel": float(sob.detach()), "sigma": float(reg.detach())}


def kl_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
            lambda_mse: float = 50.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The traditional VAE loss (eq. 5): ``lambda_mse MSE + mean over batch and dimensions of
    (mu^2 + sigma^2 - log sigma^2 - 1) / 2``."""
    mse = F.mse_loss(recon, x)
    var = sigma ** 2
    kl = 0.5 * (mu ** 2 + var - torch.log(var) - 1).mean()
    return lambda_mse * mse + kl, {"mse": float(mse.detach()), "kl": float(kl.detach())}


register_architecture("embed-vae", VAE)
