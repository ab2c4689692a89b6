"""Micrograph search engine: VAE embeddings (``sn.embed``), a searchable on-disk index
(:class:`Index`) and maps of a collection (:mod:`.map`); the benchmark is :mod:`.bench`
(``scopenet bench embed``).

>>> import scopenet as sn
>>> codes = sn.embed(images)                              # doctest: +SKIP
>>> idx = sn.Index.build(paths); idx.search(query, k=5)   # doctest: +SKIP
"""
from .config import EmbedConfig, EmbedTrainConfig
from .model import Embedder, embed

__all__ = ["EmbedConfig", "EmbedTrainConfig", "Embedder", "Index", "embed"]


def __getattr__(name):  # the index pulls in pandas: load it on first use
    if name == "Index":
        from .index import Index

        return Index
    raise AttributeError(name)
