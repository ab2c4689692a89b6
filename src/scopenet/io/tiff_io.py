"""Format module tiff_io (to be written)."""
