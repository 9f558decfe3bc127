"""Errors a user can act on.

Every error facelens raises on bad input is a :class:`FacelensError` whose message
names the input and says what to do; the command-line tools print it as one line
and exit non-zero instead of showing a traceback.
"""


class FacelensError(Exception):
    """A problem with the user's input, files or environment that they can fix."""


class BundleError(FacelensError):
    """A model bundle is missing, of an unknown version, or has been tampered with."""


class ImageError(FacelensError):
    """An image cannot be read, or holds no usable face."""


class NoFaceError(ImageError):
    """A photo that should show a face shows none the detector can find."""


class AmbiguousFacesError(ImageError):
    """A photo that should show one person shows several alike faces."""


class CropError(FacelensError):
    """A face cannot be cut out as the model's crop rule says (off the image, no landmarks)."""


class DetectorError(FacelensError):
    """The face detector cannot be loaded or downloaded."""


class GalleryError(FacelensError):
    """The gallery cannot be opened, decrypted, or does not match the bundle."""


class NotKeptError(GalleryError):
    """A recent appearance or visitor that is not (or no longer) kept."""


class SourceError(FacelensError):
    """A camera, video or image source cannot be opened or stopped delivering frames."""
