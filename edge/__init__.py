"""facelens edge."""
