"""Format module matrix (to be written)."""
