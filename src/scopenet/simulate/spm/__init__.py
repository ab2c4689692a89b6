"""Simulated STM images of model surfaces with tip artefacts, and their labels.

Pipeline (one image): a model surface in metres (:mod:`.surfaces`: H:Si(100)-2x1, Au(111),
Cu(111), HOPG, a generic lattice; steps, defects, adsorbates) -> one or more tip states
(:mod:`.tips`: resolution, asymmetry, ghost apices, Villarrubia dilation) that switch at random
scan lines -> a raster scan with drift and creep (:mod:`.scan`) -> line offsets, 1/f and white
noise, scars -> X-flattening (as MATRIX does while scanning) -> per-image min-max scaling.

Labels follow the six categories of the Nottingham H:Si(100) study and DeepSPM's good/bad tip;
the rules are in :mod:`scopenet.simulate.spm.labels`.

Feeding training: ``simulate_batch(n, workers=2)`` and :func:`stream_batches` spread the images
over processes (identical output for any number of workers); :class:`SPMStream` is a torch
``IterableDataset`` sharded over DataLoader workers.

>>> from scopenet.simulate import spm
>>> s = spm.simulate_image(0, size=64)
>>> s.image.shape, s.labels6.shape
((64, 64), (6,))
"""
from .core import SPMSample, SPMSimConfig, simulate_image
from .batch import simulate_batch, write_dataset
from .stream import simulate_batch_parallel, stream_batches
from .gallery import demo_section, gallery_png
from .labels import CATEGORIES
from .scan import drift_positions, flatten_lines, line_offsets, pink_noise, scan_times, scars
from .surfaces import SURFACES, Surface, height_map, height_spectrum, make_surface
from .tips import TipState, dilate, dilate_paraboloid, paraboloid_tip, tip_transfer

__all__ = [
    "CATEGORIES", "SURFACES", "SPMSample", "SPMSimConfig", "Surface", "TipState",
    "demo_section", "dilate", "dilate_paraboloid", "drift_positions", "flatten_lines", "gallery_png",
    "height_map", "height_spectrum", "line_offsets", "make_surface", "paraboloid_tip", "pink_noise",
    "scan_times", "scars", "simulate_batch", "simulate_batch_parallel", "simulate_image", "stream_batches",
    "tip_transfer", "write_dataset", "SPMStream",
]


def __getattr__(name):  # SPMStream imports torch: load it on first use only
    if name == "SPMStream":
        from .dataset import SPMStream

        return SPMStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
