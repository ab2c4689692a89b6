"""Format module em (to be written)."""
