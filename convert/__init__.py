"""facelens convert."""
