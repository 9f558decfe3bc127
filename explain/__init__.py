"""facelens explain."""
