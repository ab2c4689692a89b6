"""Format module generic (to be written)."""
