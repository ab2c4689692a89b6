"""Super-resolution of uniformly sub-sampled scans: ``sn.super_resolve(coarse, factor=4)`` and the
:class:`SuperResolver` estimator; the benchmark is :mod:`.bench` (``scopenet bench superres``)."""
from .model import (SAMPLINGS, VDSR, SuperResolver, block_mean, check_factor, check_sampling, coarsen, decimate,
                    make_pairs, super_resolve, upsample)

__all__ = ["SAMPLINGS", "VDSR", "SuperResolver", "block_mean", "check_factor", "check_sampling", "coarsen",
           "decimate", "make_pairs", "super_resolve", "upsample"]
