"""Format module hdf5_io (to be written)."""
