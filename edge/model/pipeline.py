"""The model side of recognition: detect -> cut (per the manifest's crop rule) -> embed.

:class:`Pipeline` turns a BGR image into faces and embeddings exactly as a bundle's
manifest says. :class:`edge.FaceLens` adds the gallery on top; users call that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.base.errors import CropError, DetectorError, ImageError
from edge.faces.detect import Face, FaceDetector, create_detector
from edge.faces.dominant import choose_face
from edge.model.bundle import DEFAULT_FORMAT, Bundle
from edge.model.embedder import Embedder
from edge.model.preprocess import cut_face


class Pipeline:
    """Faces and embeddings from BGR images, exactly as the bundle's manifest says.

    With ``detect=False`` (or a bundle whose crop rule is ``whole_image``) the whole
    image is one face, as in the original notebook.
    """

    def __init__(self, bundle: Bundle, embedder: Embedder, detector: FaceDetector | None) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.detector = detector

    @classmethod
    def create(
        cls,
        bundle: Path | str | Bundle,
        fmt: str = DEFAULT_FORMAT,
        runtime: str | None = None,
        threads: int | None = None,
        detector: Path | str | FaceDetector | None = None,
        detect: bool = True,
        flip: bool = False,
    ) -> Pipeline:
        """Load a bundle's artifact and a face detector (a file: see :func:`create_detector`).

        ``flip`` embeds each face and its mirror image (see :class:`Embedder`).
        """
        bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        embedder = Embedder(bundle, fmt, runtime=runtime, threads=threads, flip=flip)
        if not detect or bundle.input_spec.crop.kind == "whole_image":
            return cls(bundle, embedder, None)
        if detector is None or isinstance(detector, Path | str):
            detector = create_detector(detector)
        return cls(bundle, embedder, detector)

    @property
    def detector_name(self) -> str:
        return self.detector.name if self.detector else "none (whole image)"

    def faces(self, image: np.ndarray) -> list[Face]:
        """Every face in the image; the whole image when detection is off."""
        if self.detector is None:
            h, w = image.shape[:2]
            return [Face(box=(0.0, 0.0, float(w), float(h)), score=1.0)]
        return self.detector.detect(image)

    def cut(self, image: np.ndarray, faces: list[Face]) -> tuple[list[Face], list[np.ndarray]]:
        """The faces that can be cut out (a box wholly off the image cannot) and their crops."""
        if self.detector is None:
            return faces, [image]
        kept, crops = [], []
        for face in faces:
            try:
                crops.append(cut_face(image, self.bundle.input_spec, face))
            except CropError as exc:
                if face.landmarks is None and self.bundle.input_spec.crop.kind == "landmarks":
                    raise DetectorError(str(exc)) from None  # no face could ever be cut
                continue
            kept.append(face)
        return kept, crops

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(N, D) unit embeddings of those of ``faces`` that can be cut out of ``image``."""
        return self.embedder.embed(self.cut(image, faces)[1])

    def face_embedding(self, image: np.ndarray, face: Face, name: str) -> np.ndarray:
        """The (D,) embedding of one face of ``image``; ImageError when it cannot be cut."""
        kept, crops = self.cut(image, [face])
        if not kept:
            raise ImageError(f"the chosen face of {name} lies outside the image; pick another")
        return self.embedder.embed(crops)[0]

    def photo_embedding(self, image: np.ndarray, name: str = "the photo") -> np.ndarray | None:
        """The embedding of the photo's most dominant face (``None`` when it has none).

        For labelled photos (calibration, evaluation), where one face per photo is meant.
        """
        try:
            face = choose_face(self.faces(image), image.shape, name, strict=False)
            return self.face_embedding(image, face, name)
        except ImageError:
            return None
