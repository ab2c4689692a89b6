"""Networks for completing sparse (partial) scans.

* :class:`InpaintUNet` (``"inpaint-unet"``): the compact, coverage-agnostic default. Input: the
  nearest-neighbour-infilled partial scan and the mask, ``(B, 2, H, W)``; output ``(B, 1, H, W)`` =
  infill + a U-Net correction, so an untrained network already returns the NN infill.
* :class:`PartialSTEMGenerator` (``"partial-stem-generator"``): J. M. Ede's two-scale generator
  (thesis ch. 4, Sci. Rep. 10, 8332, 2020). An *inner* generator works on the 256x256 bilinear
  downsample of the 512x512 input and captures large-scale structure; an *outer* generator works at
  full size and combines its own features with the (upsampled) inner features. During training an
  auxiliary *trainer* head maps inner features to a 256x256 completion, so the inner generator gets its
  own loss.
* :class:`MultiScaleDiscriminator` (``"partial-stem-discriminator"``): three spectral-normalised
  discriminators for optional least-squares GAN fine-tuning; each sees random 70, 140 and 280 px crops
  resized to 70x70.

All modules are pure ``torch.nn`` (no I/O); shapes are ``(batch, channels, rows, cols)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from . import register_architecture
from .unet import UNet


@register_architecture("inpaint-unet")
class InpaintUNet(nn.Module):
    """Residual U-Net completing a partial scan from ``[nn_infill, mask]``.

    Parameters
    ----------
    depth : int
        Number of 2x down-samplings; the receptive field grows as ``~ 2**depth * 10`` px.
    base_channels : int
        Channels at full resolution (doubling per level).
    norm : {"none", "batch", "group", "instance"}
    unshuffle : int
        Space-to-depth factor: the U-Net runs on ``(H/r, W/r)`` with ``2 r^2`` channels, which cuts
        CPU time ~``r^2``-fold; ``pixel_shuffle`` restores full resolution.
    normconv_sigmas : sequence of float
        Gaussian widths (px) of fixed normalised-convolution interpolations computed inside the network
        from the scanned values and the mask (``G*(v m) / G*m``, with the local sample density
        ``sqrt(G*m)`` as a confidence channel); each adds two input channels. They hand the U-Net
        smooth multi-scale interpolations of the samples, which the NN infill alone lacks. Empty (the
        default) keeps the original two-channel network.

    Notes
    -----
    ``forward`` maps ``(B, 2, H, W)`` (channel 0: infilled scan, channel 1: mask in {0, 1}) to
    ``(B, 1, H, W)``; any ``H, W`` is accepted (padded internally).
    """

    arch_name = "inpaint-unet"

    def __init__(self, depth: int = 3, base_channels: int = 24, norm: str = "none", unshuffle: int = 2,
                 normconv_sigmas: tuple[float, ...] | list[float] = ()):
        super().__init__()
        if unshuffle < 1:
            raise InputError(f"unshuffle must be >= 1, got {unshuffle}")
        sig = [float(s) for s in normconv_sigmas]
        if any(not s > 0 for s in sig):
            raise InputError(f"normconv_sigmas must be positive, got {sig}")
        self.config = dict(depth=depth, base_channels=base_channels, norm=norm, unshuffle=unshuffle)
        if sig:
            self.config["normconv_sigmas"] = sig
        self.sigmas = sig
        for i, s in enumerate(sig):
            self.register_buffer(f"_g{i}", _gauss1d(s), persistent=False)
        self.r = int(unshuffle)
        self.body = UNet(in_channels=(2 + 2 * len(sig)) * self.r ** 2, out_channels=self.r ** 2, depth=depth,
                         base_channels=base_channels, norm=norm)
        nn.init.zeros_(self.body.head.weight)  # untrained network == NN infill
        if self.body.head.bias is not None:
            nn.init.zeros_(self.body.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise InputError(f"InpaintUNet expects (B, 2, H, W) [infill, mask], got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        r = self.r
        xin = torch.cat([x, self.normconv(x)], dim=1) if self.sigmas else x
        ph, pw = (-h) % r, (-w) % r
        xp = F.pad(xin, (0, pw, 0, ph), mode="replicate") if (ph or pw) else xin
        y = self.body(F.pixel_unshuffle(xp, r)) if r > 1 else self.body(xp)
        y = F.pixel_shuffle(y, r) if r > 1 else y
        return x[:, :1] + y[..., :h, :w]

    def normconv(self, x: torch.Tensor) -> torch.Tensor:
        """The ``2 * len(normconv_sigmas)`` fixed channels: per sigma the normalised-convolution
        interpolation (NN infill where no sample lies within ~3 sigma) and ``sqrt`` of the sample density."""
        with torch.no_grad():
            m = (x[:, 1:2] > 0.5).to(x.dtype)
            v = x[:, :1] * m
            out = []
            for i in range(len(self.sigmas)):
                g = getattr(self, f"_g{i}")
                num, den = _sep_blur(torch.cat([v, m], dim=1), g).split(1, dim=1)
                ok = den > 1e-6
                out.append(torch.where(ok, num / den.clamp_min(1e-6), x[:, :1]))
                out.append(den.clamp_min(0).sqrt())
            return torch.cat(out, dim=1)


def _gauss1d(sigma: float) -> torch.Tensor:
    r = max(1, int(round(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _sep_blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every channel with zero padding (so ``G*m`` falls off at the borders)."""
    c, k = x.shape[1], g.numel()
    gh = g.to(x.dtype).view(1, 1, 1, k).expand(c, 1, 1, k)
    gv = g.to(x.dtype).view(1, 1, k, 1).expand(c, 1, k, 1)
    y = F.conv2d(x, gh, padding=(0, k // 2), groups=c)
    return F.conv2d(y, gv, padding=(k // 2, 0), groups=c)


# ----------------------------------------------------------------------- Ede's two-scale generator


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.LeakyReLU(0.1))


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.a = _conv(ch, ch)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return F.leaky_relu(x + self.b(self.a(x)), 0.1)


class _Encoder(nn.Module):
    """Strided-conv encoder ``ch -> 4*ch`` at 1/4 resolution."""

    def __init__(self, cin: int, ch: int):
        super().__init__()
        self.net = nn.Sequential(_conv(cin, ch), _conv(ch, 2 * ch, stride=2), _conv(2 * ch, 4 * ch, stride=2))

    def forward(self, x):
        return self.net(x)


class _Decoder(nn.Module):
    """Two transpose-conv upsamplings ``4*ch -> ch`` then a 1-channel head."""

    def __init__(self, ch: int, cout: int = 1):
        super().__init__()
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * ch, 2 * ch, 4, stride=2, padding=1), nn.LeakyReLU(0.1))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.1))
        self.head = nn.Conv2d(ch, cout, 3, padding=1)

    def forward(self, x):
        return self.head(self.up2(self.up1(x)))


@register_architecture("partial-stem-generator")
class PartialSTEMGenerator(nn.Module):
    """Ede's partial-STEM generator: inner (1/2 scale) + outer (full scale) + auxiliary trainer head.

    Parameters
    ----------
    channels : int
        Base feature channels (Ede: 64; smaller values give a slim version).
    inner_blocks, outer_blocks : int
        Residual blocks at 1/4 of the inner and outer generators' input resolution.
    in_channels : int
        2 for ``[nn_infill, mask]``.
    inner_size : int
        Side of the bilinear downsample fed to the inner generator (Ede: 256 for 512 inputs). Other
        input sizes are downsampled by the same factor ``2``.

    Notes
    -----
    ``forward(x)`` with ``x`` of shape ``(B, 2, H, W)``, ``H, W`` divisible by 8, returns the completion
    ``(B, 1, H, W)``; with ``return_aux=True`` it returns ``(completion, aux)`` where ``aux`` is the
    trainer head's ``(B, 1, H/2, W/2)`` completion from inner features alone (Ede: 256x256).
    """

    arch_name = "partial-stem-generator"
    #: inputs must have sides divisible by this (callers such as ``Inpainter`` pad to it)
    size_multiple = 8

    def __init__(self, channels: int = 32, inner_blocks: int = 6, outer_blocks: int = 3,
                 in_channels: int = 2, inner_size: int = 256):
        super().__init__()
        if channels < 1 or inner_blocks < 0 or outer_blocks < 0:
            raise InputError(f"invalid generator size channels={channels}, blocks={inner_blocks}/{outer_blocks}")
        self.config = dict(channels=channels, inner_blocks=inner_blocks, outer_blocks=outer_blocks,
                           in_channels=in_channels, inner_size=inner_size)
        c = channels
        self.inner_enc = _Encoder(in_channels, c)
        self.inner_res = nn.Sequential(*[_ResBlock(4 * c) for _ in range(inner_blocks)])
        self.inner_dec = nn.Sequential(  # inner features at 1/2 of the input's resolution
            nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.1))
        self.trainer = nn.Sequential(  # auxiliary head: inner features -> half-size completion
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(c, 1, 3, padding=1))
        self.outer_enc = _Encoder(in_channels, c)
        # combine outer features (1/4 res, 4c) with inner features downsampled to 1/4 res (2c)
        self.combine = _conv(6 * c, 4 * c, k=1)
        self.outer_res = nn.Sequential(*[_ResBlock(4 * c) for _ in range(outer_blocks)])
        self.outer_dec = _Decoder(c)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise InputError(f"PartialSTEMGenerator expects (B, {self.config['in_channels']}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise InputError(f"PartialSTEMGenerator needs H and W divisible by 8, got {h}x{w}")
        small = F.interpolate(x, size=(h // 2, w // 2), mode="bilinear", align_corners=False)
        inner = self.inner_dec(self.inner_res(self.inner_enc(small)))        # (B, 2c, h/4, w/4)
        outer = self.outer_enc(x)                                            # (B, 4c, h/4, w/4)
        y = self.outer_res(self.combine(torch.cat([outer, inner], dim=1)))
        out = x[:, :1] + self.outer_dec(y)
        if return_aux:
            aux = F.interpolate(x[:, :1], size=(h // 2, w // 2), mode="bilinear", align_corners=False) \
                + self.trainer(inner)
            return out, aux
        return out


# ------------------------------------------------------------------------------- discriminators


def _sn_conv(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(nn.Conv2d(cin, cout, 4, stride=stride, padding=1))


class PatchDiscriminator(nn.Module):
    """A spectral-normalised convolutional discriminator on 70x70 inputs; returns one score per image."""

    def __init__(self, channels: int = 32, in_channels: int = 1):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            _sn_conv(in_channels, c, 2), nn.LeakyReLU(0.2),
            _sn_conv(c, 2 * c, 2), nn.LeakyReLU(0.2),
            _sn_conv(2 * c, 4 * c, 2), nn.LeakyReLU(0.2),
            _sn_conv(4 * c, 8 * c, 1), nn.LeakyReLU(0.2),
            _sn_conv(8 * c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(1, 2, 3))


@register_architecture("partial-stem-discriminator")
class MultiScaleDiscriminator(nn.Module):
    """Three discriminators on random ``crop_sizes`` crops (70, 140, 280 px) resized to ``input_size``.

    ``forward(images, generator=None)`` takes ``(B, 1, H, W)`` with ``H, W >= max(crop_sizes)`` and
    returns ``(B, 3)`` scores (one column per scale). Use :func:`lsgan_losses` for the LSGAN objectives.
    """

    arch_name = "partial-stem-discriminator"

    def __init__(self, channels: int = 32, crop_sizes: tuple[int, ...] = (70, 140, 280), input_size: int = 70):
        super().__init__()
        self.config = dict(channels=channels, crop_sizes=list(crop_sizes), input_size=input_size)
        self.crop_sizes = tuple(int(s) for s in crop_sizes)
        self.input_size = int(input_size)
        self.discs = nn.ModuleList(PatchDiscriminator(channels) for _ in self.crop_sizes)

    def crops(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One random crop per scale, resized to ``input_size``: list of ``(B, 1, s, s)``."""
        h, w = images.shape[-2:]
        if min(h, w) < max(self.crop_sizes):
            raise InputError(f"discriminator crops need images >= {max(self.crop_sizes)} px, got {h}x{w}")
        out = []
        for s in self.crop_sizes:
            y = int(torch.randint(0, h - s + 1, (1,), generator=generator))
            x = int(torch.randint(0, w - s + 1, (1,), generator=generator))
            c = images[..., y:y + s, x:x + s]
            if s != self.input_size:
                c = F.interpolate(c, size=(self.input_size, self.input_size), mode="area")
            out.append(c)
        return out

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([d(c) for d, c in zip(self.discs, self.crops(images, generator))], dim=1)


def lsgan_losses(d_real: torch.Tensor, d_fake: torch.Tensor, lambda_adv: float = 5.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares GAN losses ``(discriminator_loss, generator_adversarial_loss)``.

    ``D: mean((d_real - 1)^2 + d_fake^2)``; ``G: lambda_adv * mean((d_fake - 1)^2)`` (Ede: ``lambda_adv = 5``).
    Pass ``d_fake`` detached for the discriminator step.
    """
    return lsgan_discriminator_loss(d_real, d_fake), lsgan_generator_loss(d_fake, lambda_adv)


def lsgan_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """``mean((d_real - 1)^2) + mean(d_fake^2)``: real scores pushed to 1, fake ones to 0."""
    return ((d_real - 1) ** 2).mean() + (d_fake ** 2).mean()


def lsgan_generator_loss(d_fake: torch.Tensor, lambda_adv: float = 5.0) -> torch.Tensor:
    """``lambda_adv * mean((d_fake - 1)^2)``: the generator wants its outputs scored as real."""
    return lambda_adv * ((d_fake - 1) ** 2).mean()
