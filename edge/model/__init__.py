"""The embedding model: bundle and manifest, runtimes, face cropping, detect-cut-embed."""
