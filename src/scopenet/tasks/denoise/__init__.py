"""Denoising micrographs: the compact default model, Ede's atrous-xception, N2N/N2V fine-tuning,
classical baselines and the benchmark (J. M. Ede's thesis, chapter 6)."""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("Denoiser", "AutoDenoiser", "denoise"):
        from . import model

        return getattr(model, name)
    raise AttributeError(name)


__all__ = ["Denoiser", "AutoDenoiser", "denoise"]
