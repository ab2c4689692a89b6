"""scopenet: deep learning for scanning probe and electron microscopy.

>>> import scopenet as sn
>>> img = sn.read("scan.sxm")            # doctest: +SKIP
>>> clean = sn.denoise(img)              # doctest: +SKIP
"""
from __future__ import annotations

from ._version import __version__
from .errors import InputError, ReadError, ScopenetError, WriteError
from .image.micrograph import Axis, Micrograph
from .io import read, read_all, write

# Task façades are imported lazily so that `import scopenet` stays fast and light.
_LAZY = {
    "denoise": ("scopenet.tasks.denoise", "denoise"),
    "Denoiser": ("scopenet.tasks.denoise", "Denoiser"),
    "inpaint": ("scopenet.tasks.inpaint", "inpaint"),
    "Inpainter": ("scopenet.tasks.inpaint", "Inpainter"),
    "super_resolve": ("scopenet.tasks.superres", "super_resolve"),
    "SuperResolver": ("scopenet.tasks.superres", "SuperResolver"),
    "classify": ("scopenet.tasks.classify", "classify"),
    "TipClassifier": ("scopenet.tasks.classify", "TipClassifier"),
    "embed": ("scopenet.tasks.embed", "embed"),
    "Embedder": ("scopenet.tasks.embed", "Embedder"),
    "Index": ("scopenet.tasks.embed", "Index"),
    "exit_wave": ("scopenet.tasks.exitwave", "exit_wave"),
    "ExitWaveEstimator": ("scopenet.tasks.exitwave", "ExitWaveEstimator"),
    "AdaptiveScanner": ("scopenet.tasks.adaptive_scan", "AdaptiveScanner"),
    "segment": ("scopenet.tasks.segment", "segment"),
    "Segmenter": ("scopenet.tasks.segment", "Segmenter"),
    "track": ("scopenet.tasks.track", "track"),
    "find_atoms": ("scopenet.tasks.atoms", "find_atoms"),
    "AtomFinder": ("scopenet.tasks.atoms", "AtomFinder"),
    "flatten": ("scopenet.image.spm", "flatten"),
    "simulate": ("scopenet.simulate", None),
    "metrics": ("scopenet.metrics", None),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        m = importlib.import_module(mod)
        return m if attr is None else getattr(m, attr)
    raise AttributeError(f"module 'scopenet' has no attribute {name!r}")


__all__ = ["__version__", "Axis", "Micrograph", "read", "read_all", "write", "ReadError", "WriteError",
           "InputError", "ScopenetError", *_LAZY]


def __dir__() -> list[str]:
    """The module's names plus the lazily imported ones, so that ``dir(scopenet)`` and tab completion list
    ``denoise``, ``flatten``, ``classify`` ... before their first use."""
    return sorted(set(globals()) | set(__all__))
