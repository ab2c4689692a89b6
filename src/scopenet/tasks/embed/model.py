"""Micrograph embeddings: ``sn.embed(images) -> (N, 64)`` codes for search and maps of a collection.

The model is Ede's variational autoencoder (:class:`scopenet.nn.vae.VAE`; J. M. Ede, "Warwick electron
microscopy datasets", Mach. Learn.: Sci. Technol. 1, 045003, 2020) on 96x96 inputs: an image's code is
the mean ``mu`` of its latent distribution, normalised per dimension to standard deviation
``lambda_mu = 2.5`` by running statistics (so it does not depend on the other images of a batch).
Euclidean distances between codes rank similar images (:mod:`.index`); t-SNE lays a collection out on a
map (:mod:`.map`).

How an image of any size becomes 96x96 (``EmbedConfig.fit``): ``"resize"`` (default) area-averages the
central square down to 96 px (a whole micrograph at a glance, as Ede's "96 x 96" datasets);
``"tiles"`` embeds non-overlapping 96 px tiles at the image's own pixel size and averages their codes.

Orientation (``EmbedConfig.orient``): by default each 96x96 input is first turned/flipped into its
canonical view (:func:`~scopenet.tasks.embed.preprocess.canonical_view`, chosen from its quadrant
sums), so a rotated or flipped copy of an image gets the same code from a single network pass;
``tta=8`` instead averages the codes of all 8 views (8 passes).

>>> import numpy as np, scopenet as sn
>>> sn.embed(np.random.default_rng(0).random((200, 300))).shape    # doctest: +SKIP
(1, 64)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...image.tta import check_views, dihedral
from .._estimator import Estimator, as_list, cached, register
from .config import EmbedConfig
from .preprocess import canonicalize, to_inputs

__all__ = ["Embedder", "embed", "frames_of"]


def frames_of(x: Any) -> list[Any]:
    """The 2-D frames of ``x`` (a 2-D array, an ``(n, y, x)`` stack, a Micrograph or a list of these), in
    order; each Micrograph frame stays a Micrograph. ``InputError`` for anything else."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError("no images to embed: empty list")
        out: list[Any] = []
        for xi in x:
            out += frames_of(xi)
        return out
    if x is None or isinstance(x, (str, bytes)):
        raise InputError(f"expected an image (array or Micrograph), got {type(x).__name__}")
    if isinstance(x, Micrograph):
        return list(x.frames()) if x.is_stack else [x]
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputError(f"an image to embed must be a real numeric array, got dtype {a.dtype}")
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        return list(a)
    raise InputError(f"an image to embed must be 2-D or an (n, y, x) stack, got shape {a.shape}")


class _EncoderView(torch.nn.Module):
    """The encoder of a :class:`~scopenet.nn.vae.VAE` with the ``features``/``head`` split that
    :func:`scopenet.nn.fast.cpu_fast_forward` folds and runs on oneDNN; ``head`` returns ``[mu, sigma]``."""

    def __init__(self, vae):
        super().__init__()
        n = next(i for i, m in enumerate(vae.encoder) if isinstance(m, torch.nn.Flatten))
        self.feat = torch.nn.Sequential(*list(vae.encoder)[:n])
        self.rest = torch.nn.Sequential(*list(vae.encoder)[n:])
        self.vae = vae

    def features(self, x):
        return self.feat(x)

    def head(self, f):
        h = self.rest(f)
        lat = self.vae.latent
        mu, sigma = h[:, :lat], h[:, lat:].abs()
        if self.vae.enc_norm is not None:
            mu, sigma = self.vae.enc_norm(mu, sigma)
        else:
            sigma = sigma + 1e-4
        return torch.cat([mu, sigma], 1)

    def forward(self, x):
        return self.head(self.features(x))


@register
class Embedder(Estimator):
    """Encode micrographs as 64-dimensional codes with a VAE (the estimator contract of
    :mod:`scopenet.tasks._estimator`; ``predict`` returns codes, not images).

    Parameters
    ----------
    config : EmbedConfig or dict, optional
        The network (``arch_config``: :class:`scopenet.nn.vae.VAE` arguments), how images are fitted to
        the 96x96 input (``fit``: ``"resize"`` or ``"tiles"``) and the inference batch size.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).
    """

    task = "embed"
    config_class = EmbedConfig
    aliases = {"default": "embed-default"}
    image_to_image = False
    #: on the CPU, encode through :func:`scopenet.nn.fast.cpu_fast_forward` (BatchNorm folded into the
    #: convolutions, oneDNN tensors; the same codes to float32 rounding); False keeps the eager network
    fast_cpu: bool = True
    _fast: tuple | None = None

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    @property
    def size(self) -> int:
        """The network's input side in pixels."""
        return int(self._check_fitted().size)

    @property
    def latent(self) -> int:
        """The code length."""
        return int(self._check_fitted().latent)

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        self.card_.preprocessing.setdefault("input_shape", [1, 1, self.size, self.size])
        self.card_.preprocessing.setdefault("scaling", "min-max to [0, 1] per input")
        return super().save(path, overwrite=overwrite)

    # ------------------------------------------------------------------------------ training
    def fit(self, images: Any, steps: int = 200, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
            time_budget_s: float | None = None, **overrides: Any) -> "Embedder":
        """Train (or fine-tune) the VAE on ``images`` (2-D arrays / Micrographs of at least 96 px, or an
        ``(N, H, W)`` stack): random square crops resized to 96 px, flips and rotations, min-max scaled.

        ``overrides`` set other :class:`~scopenet.tasks.embed.config.EmbedTrainConfig` fields (e.g.
        ``lambda_sobel``, ``halvings``); the loss follows the network's ``norm`` (encoding
        normalisation or KL). Sets ``history_`` (the per-step loss).
        """
        from ...nn.device import resolve_device
        from .config import EmbedTrainConfig
        from .train import train

        pool = [np.asarray(getattr(im, "data", im), np.float32) for im in as_list(images)]
        if not pool:
            raise InputError("fit needs at least one image")
        for a in pool:
            if a.ndim != 2 or min(a.shape) < 8 or not np.isfinite(a).all():
                raise InputError(f"fit needs finite 2-D images of at least 8 px, got shape {a.shape}")
        net = self._check_fitted()
        cfg = EmbedTrainConfig(workdir=None, max_steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                               time_budget_s=time_budget_s, checkpoint_every_s=None,
                               threads=torch.get_num_threads(), norm=net.norm, size=net.size, **overrides)
        self.history_ = train(net, pool, cfg, device=str(resolve_device(self.device)))
        self.net_.eval()
        return self

    # ---------------------------------------------------------------------------- prediction
    def _inputs(self, x: Any, fit: str | None) -> tuple[np.ndarray, np.ndarray]:
        """All network inputs ``(M, size, size)`` and, per input, the index of its image."""
        fit = fit or self.config.fit
        s = self.size
        if isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[1:] == (s, s) and np.issubdtype(x.dtype, np.number) \
                and not np.iscomplexobj(x) and np.isfinite(x).all():
            # a stack of network-sized frames: min-max scaled in one pass (what to_inputs does per frame)
            a = x.astype(np.float32)
            lo = a.min((1, 2), keepdims=True)
            span = a.max((1, 2), keepdims=True) - lo
            a -= lo
            np.divide(a, span, out=a, where=span > 0)
            return a, np.arange(len(a))
        xs, owner = [], []
        for i, f in enumerate(frames_of(x)):
            t = to_inputs(f, self.size, fit)
            xs.append(t)
            owner += [i] * len(t)
        return np.concatenate(xs), np.asarray(owner)

    def _orient(self, orient: str | None) -> str:
        orient = orient or self.config.orient
        if orient not in ("canonical", "none"):
            raise InputError(f"orient must be 'canonical' or 'none', got {orient!r}")
        return orient

    def encode_inputs(self, x: np.ndarray, tta: int = 1, orient: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)``, each ``(M, latent)`` float32, of prepared inputs ``(M, size, size)`` in [0, 1];
        each input turned into its canonical view (``orient="canonical"``, the config's default), then
        ``tta`` views (flips/rotations) averaged."""
        from ...nn.device import place

        net = self._check_fitted().eval()
        views = check_views(tta)
        orient = self._orient(orient)
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.size, self.size):
            raise InputError(f"prepared inputs must be (M, {self.size}, {self.size}), got shape {x.shape}")
        if orient == "canonical" and views < 8:  # all 8 views averaged: already invariant
            x = canonicalize(x)[0]
        dev = place(net, self.device)
        lat = self.latent
        mu = np.zeros((len(x), lat), np.float32)
        sig = np.zeros_like(mu)
        bs = self.config.batch_size
        enc = self._encoder(net, dev, x)
        with torch.inference_mode():
            for i in range(0, len(x), bs):
                t = torch.from_numpy(x[i:i + bs])[:, None].to(dev)
                for k in range(views):
                    h = enc(dihedral(t, k).contiguous() if k else t).float().cpu().numpy()
                    mu[i:i + len(t)] += h[:, :lat]
                    sig[i:i + len(t)] += h[:, lat:]
        return mu / views, sig / views

    def _encoder(self, net, dev, x: np.ndarray):
        """``f(x) -> [mu, sigma]``: the oneDNN fast path on the CPU (built once per network), else eager."""
        view = _EncoderView(net).eval()
        if dev.type != "cpu" or not self.fast_cpu or not len(x):
            return view
        if self._fast is None or self._fast[0] is not net:
            from ...nn.fast import checked_fast_forward

            example = torch.from_numpy(np.ascontiguousarray(x[:4], np.float32))[:, None]
            self._fast = (net, checked_fast_forward(view, example, rtol=1e-4))
        return self._fast[1] or view

    def encode(self, x: Any, *, tta: int = 1, fit: str | None = None,
               orient: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)``, each ``(N, latent)`` float32, one row per 2-D image of ``x`` (tiles averaged)."""
        inputs, owner = self._inputs(x, fit)
        mu, sig = self.encode_inputs(inputs, tta, orient)
        n = int(owner.max()) + 1
        if len(owner) == n:
            return mu, sig
        counts = np.bincount(owner, minlength=n)[:, None].astype(np.float32)
        M = np.zeros((n, mu.shape[1]), np.float32)
        S = np.zeros_like(M)
        np.add.at(M, owner, mu)
        np.add.at(S, owner, sig)
        return M / counts, S / counts

    def predict(self, x: Any, *, tta: int = 1, fit: str | None = None, orient: str | None = None) -> np.ndarray:
        """The codes (latent means) of ``x``.

        Parameters
        ----------
        x : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Any size and intensity units (each image is resized or tiled to 96 px and min-max scaled).
        tta : int
            Flipped/rotated views averaged (1..8); 8 makes codes invariant to 90-degree rotations and
            flips of square inputs (8 network passes; the canonical view does it with one).
        fit : {"resize", "tiles"}, optional
            Overrides ``config.fit``.
        orient : {"canonical", "none"}, optional
            Overrides ``config.orient`` (default ``"canonical"``: each input in its canonical view).

        Returns
        -------
        ndarray float32 (N, latent): one row per 2-D image (a 2-D input gives one row).
        """
        return self.encode(x, tta=tta, fit=fit, orient=orient)[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Images ``(N, size, size)`` generated from codes ``(N, latent)`` (roughly in [0, 1])."""
        net = self._check_fitted().eval()
        z = torch.as_tensor(np.atleast_2d(np.asarray(codes, np.float32)))
        if z.shape[1] != self.latent:
            raise InputError(f"codes must have {self.latent} columns, got shape {tuple(z.shape)}")
        with torch.inference_mode():
            return net.decode(z)[:, 0].numpy()


def embed(images: Any, model: str | Embedder = "default", tta: int = 1, fit: str | None = None,
          orient: str | None = None) -> np.ndarray:
    """Codes ``(N, 64)`` of micrographs with a pretrained VAE (``sn.embed``).

    Parameters
    ----------
    images : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
        Any size: by default the central square is resized to 96 px (``fit="tiles"``: 96 px tiles at
        the image's own pixel size, their codes averaged).
    model : str or Embedder
        Installed model name (``"default"`` = ``embed-default``), a path stem, or an estimator.
    tta : int
        Flipped/rotated views averaged (1..8). Not needed for invariance: by default each input is
        encoded in its canonical orientation, so rotated and flipped copies get the same code.
    fit : {"resize", "tiles"}, optional
    orient : {"canonical", "none"}, optional
        Overrides the model's ``config.orient`` (``"canonical"``).

    Returns
    -------
    ndarray float32 (N, 64), one row per 2-D image; Euclidean distance between rows measures similarity.
    """
    est = model if isinstance(model, Embedder) else \
        cached(("embed", str(model)), lambda: Embedder.pretrained(str(model)))
    return est.predict(images, tta=tta, fit=fit, orient=orient)
