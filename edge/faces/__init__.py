"""Faces in a picture: detection, which face a photo is about, and whether it is good enough."""
