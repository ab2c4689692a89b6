"""Format module ibw (to be written)."""
