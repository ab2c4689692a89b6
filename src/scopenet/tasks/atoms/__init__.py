"""Atom finding: ``sn.find_atoms(img)`` and the :class:`AtomFinder` estimator; the benchmark is
:mod:`.bench` (``scopenet bench atoms``)."""
from .model import AtomFinder, find_atoms

__all__ = ["AtomFinder", "find_atoms"]
