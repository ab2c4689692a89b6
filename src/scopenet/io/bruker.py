"""Format module bruker (to be written)."""
