"""Format module gwy (to be written)."""
