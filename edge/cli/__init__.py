"""The ``edge`` command and what all facelens commands share (argument types, exits, demo)."""
