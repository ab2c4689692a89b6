"""Format module sxm (to be written)."""
