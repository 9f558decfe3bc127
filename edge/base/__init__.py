"""The bottom room: errors, paths, progress, names, numeric helpers and pinned assets."""
