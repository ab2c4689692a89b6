"""The Micrograph type, calibration, preprocessing and tiling."""
from .micrograph import Axis, Micrograph, as_micrograph, provenance_entry, to_metres

__all__ = ["Axis", "Micrograph", "as_micrograph", "provenance_entry", "to_metres"]
