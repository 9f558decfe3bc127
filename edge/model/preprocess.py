"""The input contract of an embedding model: how a face is cut out and normalised.

One implementation, read from the bundle's manifest, is used by ``convert`` (for
INT8 calibration and fidelity checks) and by ``edge`` at run time, so no
preprocessing constant is written twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.base.errors import BundleError, CropError

if TYPE_CHECKING:
    from edge.faces.detect import Face

CROP_KINDS = ("detector_box", "landmarks", "whole_image")
MAX_SIDE = 4096  # no face model takes a larger input; a bigger size is a broken spec
MAX_MARGIN_PX = 1000
MAX_MARGIN_FRAC = 2.0

# ArcFace's canonical positions of the 5 landmarks in a 112x112 crop (right eye,
# left eye, nose tip, right and left mouth corners, in image coordinates).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class CropRule:
    """How a face is cut out of a photo before it is resized.

    ``detector_box``: the detector's box widened by ``margin_px`` pixels plus
    ``margin_frac`` of its longer side on every side, optionally made square,
    clipped to the image. ``landmarks``: a similarity transform of the 5 landmarks
    onto ``template`` (5 (x, y) points in a ``template_size`` (width, height) crop;
    default the ArcFace template in 112x112). ``whole_image``: no detection (the
    notebook's mode).
    """

    kind: str = "detector_box"
    margin_px: int = 0
    margin_frac: float = 0.0
    square: bool = False
    template: tuple[tuple[float, float], ...] | None = None
    template_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in CROP_KINDS:
            raise BundleError(
                f"unknown crop rule {self.kind!r}: use one of {', '.join(CROP_KINDS)}"
            )
        if not 0 <= self.margin_px <= MAX_MARGIN_PX:
            raise BundleError(f"crop.margin_px {self.margin_px} must be in [0, {MAX_MARGIN_PX}]")
        if not 0 <= self.margin_frac <= MAX_MARGIN_FRAC:  # also refuses nan
            raise BundleError(
                f"crop.margin_frac {self.margin_frac} must be in [0, {MAX_MARGIN_FRAC}]"
            )
        if (self.template is None) != (self.template_size is None) or (
            self.template is not None
            and (np.shape(self.template) != (5, 2) or np.shape(self.template_size) != (2,))
        ):
            raise BundleError(
                "a landmarks crop template needs 5 (x, y) points and its template_size "
                "[width, height]; fix the crop rule"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CropRule:
        """Read a crop rule; ``align: true`` (input_spec.json) means ``landmarks``."""
        kind = d.get("from", d.get("kind", "detector_box"))
        if d.get("align"):
            kind = "landmarks"
        return cls(
            kind=kind,
            margin_px=int(d.get("margin_px", 0)),
            margin_frac=float(d.get("margin_frac", 0.0)),
            square=bool(d.get("square", False)),
            template=tuple(tuple(map(float, p)) for p in d["template"])
            if "template" in d
            else None,
            template_size=tuple(map(int, d["template_size"])) if "template_size" in d else None,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "from": self.kind,
            "margin_px": self.margin_px,
            "margin_frac": self.margin_frac,
            "square": self.square,
            "align": self.kind == "landmarks",
        }
        if self.template is not None:  # only then: older bundles keep their fingerprints
            d |= {
                "template": [list(p) for p in self.template],
                "template_size": list(self.template_size),
            }
        return d


@dataclass(frozen=True)
class InputSpec:
    """Size, colour order and normalisation of a model's input: ``(x - mean) * scale``."""

    height: int = 224
    width: int = 224
    channels: int = 3
    layout: str = "NHWC"
    color: str = "BGR"
    mean: tuple[float, float, float] = (103.939, 116.779, 123.68)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop: CropRule = field(default_factory=CropRule)

    def __post_init__(self) -> None:
        if self.color not in ("BGR", "RGB"):
            raise BundleError(f"unknown colour order {self.color!r}: use BGR or RGB")
        if self.layout != "NHWC":
            raise BundleError(f"unsupported input layout {self.layout!r}: facelens uses NHWC")
        if self.channels != 3:
            raise BundleError(f"unsupported channel count {self.channels}: facelens needs 3")
        if not (1 <= self.height <= MAX_SIDE and 1 <= self.width <= MAX_SIDE):
            raise BundleError(
                f"size {self.height}x{self.width} must be 1 to {MAX_SIDE} pixels a side"
            )
        for name, values in (("mean", self.mean), ("scale", self.scale)):
            if len(values) != self.channels or not all(np.isfinite(values)):
                raise BundleError(
                    f"{name} {list(values)} must be {self.channels} finite numbers, one a channel"
                )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        """Read the manifest's ``input`` block or an ``input_spec.json`` file's contents."""
        try:
            if "size" in d:
                height, width = (int(v) for v in d["size"])
            else:
                height, width = int(d["height"]), int(d["width"])
            scale = d.get("scale", 1.0)
            scale3 = (
                tuple(float(s) for s in scale) if isinstance(scale, list) else (float(scale),) * 3
            )
            return cls(
                height=height,
                width=width,
                channels=int(d.get("channels", 3)),
                layout=d.get("layout", "NHWC"),
                color=d.get("color", "BGR"),
                mean=tuple(float(m) for m in d.get("mean", (0.0, 0.0, 0.0))),
                scale=scale3,
                crop=CropRule.from_dict(d.get("crop", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise BundleError(
                f"input spec is malformed ({exc!r}): it needs size or height/width, "
                "color, mean, scale and crop"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["scale"] = list(self.scale)
        d["crop"] = self.crop.to_dict()
        return d

    def normalize(self, face_bgr: np.ndarray) -> np.ndarray:
        """Resize a BGR uint8 crop to the model's size and normalise it (HxWxC float32)."""
        if face_bgr.ndim != 3 or face_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {face_bgr.shape}")
        if face_bgr.shape[:2] != (self.height, self.width):
            face_bgr = cv2.resize(
                face_bgr, (self.width, self.height), interpolation=cv2.INTER_LINEAR
            )
        x = face_bgr.astype(np.float32)
        if self.color == "RGB":
            x = x[..., ::-1]
        return (x - np.asarray(self.mean, np.float32)) * np.asarray(self.scale, np.float32)


def crop_box(
    image: np.ndarray, box: tuple[float, float, float, float], rule: CropRule
) -> np.ndarray:
    """Cut the detector box, widened and clipped as ``rule`` says, out of ``image``."""
    x, y, w, h = box
    pad = rule.margin_px + rule.margin_frac * max(w, h)
    x0, y0, x1, y1 = x - pad, y - pad, x + w + pad, y + h + pad
    if rule.square:
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    ih, iw = image.shape[:2]
    x0, y0 = max(0, round(x0)), max(0, round(y0))
    x1, y1 = min(iw, round(x1)), min(ih, round(y1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise CropError(f"face box {box} lies outside the {iw}x{ih} image")
    return image[y0:y1, x0:x1]


def align_landmarks(image: np.ndarray, landmarks: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Warp ``image`` so the 5 landmarks land on the crop rule's template at the model's size."""
    rule = spec.crop
    points = ARCFACE_TEMPLATE_112 if rule.template is None else np.array(rule.template, np.float32)
    width, height = rule.template_size or (112, 112)
    template = points * np.array([spec.width / width, spec.height / height], np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float32).reshape(5, 2), template, method=cv2.LMEDS
    )
    if matrix is None:
        raise CropError("the 5 landmarks are degenerate; cannot align this face")
    return cv2.warpAffine(image, matrix, (spec.width, spec.height), borderMode=cv2.BORDER_REPLICATE)


def cut_face(image: np.ndarray, spec: InputSpec, face: Face | None = None) -> np.ndarray:
    """Cut one face out of a BGR photo exactly as the model's crop rule says.

    ``face`` may be ``None`` only for the ``whole_image`` rule (no detection). Raises
    :class:`CropError` when the face cannot be cut that way.
    """
    rule = spec.crop
    if rule.kind == "whole_image":
        return image
    if face is None:
        raise CropError(f"the {rule.kind!r} crop rule needs a detected face")
    if rule.kind == "landmarks":
        if face.landmarks is None:
            raise CropError(
                "this model aligns faces on 5 landmarks, but the detector gave none "
                "(the Haar fallback has none): use the YuNet detector"
            )
        return align_landmarks(image, face.landmarks, spec)
    return crop_box(image, face.box, rule)
