"""Face regions placed from the 5 landmarks, so they follow the face (not fixed fractions).

Geometry lives in a face frame: origin between the eyes, ``u`` along the eye line,
``v`` perpendicular towards the mouth, both in units of the eye distance (so the
eyes sit at u = -0.5 and +0.5, v = 0). Shapes are proportions of an average face,
anchored on the detected nose and mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REGIONS = ("eyes", "nose", "mouth", "forehead", "below_chin")
# Landmark order (YuNet): right eye, left eye, nose tip, right and left mouth corners.
R_EYE, L_EYE, NOSE, R_MOUTH, L_MOUTH = range(5)


@dataclass(frozen=True)
class FaceFrame:
    """A similarity frame fixed by the eyes, oriented so ``v`` grows towards the mouth."""

    origin: np.ndarray
    u_axis: np.ndarray
    v_axis: np.ndarray
    eye_distance: float

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> FaceFrame:
        pts = np.asarray(landmarks, np.float64).reshape(5, 2)
        origin = (pts[R_EYE] + pts[L_EYE]) / 2
        along = pts[L_EYE] - pts[R_EYE]
        d = max(float(np.linalg.norm(along)), 1e-6)
        u_axis = along / d
        v_axis = np.array([-u_axis[1], u_axis[0]])
        if np.dot((pts[R_MOUTH] + pts[L_MOUTH]) / 2 - origin, v_axis) < 0:
            v_axis = -v_axis  # whatever the photo's handedness
        return cls(origin, u_axis, v_axis, d)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) pixel coordinates (x, y) -> (..., 2) face-frame coordinates (u, v)."""
        rel = np.asarray(points, np.float64) - self.origin
        return np.stack([rel @ self.u_axis, rel @ self.v_axis], axis=-1) / self.eye_distance

    def grid(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of every pixel of an image of ``shape``."""
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        uv = self.project(np.stack([xs, ys], axis=-1))
        return uv[..., 0], uv[..., 1]


def _shapes(landmarks: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every named shape as a boolean mask (they may overlap)."""
    frame = FaceFrame.from_landmarks(landmarks)
    pts = frame.project(np.asarray(landmarks, np.float64).reshape(5, 2))
    nose_u, nose_v = pts[NOSE]
    mouth_u, mouth_v = (pts[R_MOUTH] + pts[L_MOUTH]) / 2
    mouth_half = abs(pts[L_MOUTH, 0] - pts[R_MOUTH, 0]) / 2
    chin_v = 1.5 * mouth_v  # the chin sits about half the eye-mouth distance below the mouth
    top_v = -0.9  # the hairline, about one eye distance above the eyes
    u, v = frame.grid(shape)
    eye = [((u - pts[i, 0]) / 0.3) ** 2 + ((v - pts[i, 1]) / 0.2) ** 2 <= 1 for i in (0, 1)]
    face_centre, face_half = (top_v + chin_v) / 2, (chin_v - top_v) / 2
    return {
        "eyes": eye[0] | eye[1],
        "eye_bar": (np.abs(u) <= 0.85) & (np.abs(v) <= 0.25),
        "nose": (np.abs(u - nose_u) <= 0.25) & (v >= 0.2 * nose_v) & (v <= nose_v + 0.15),
        "mouth": ((u - mouth_u) / (mouth_half + 0.15)) ** 2 + ((v - mouth_v) / 0.22) ** 2 <= 1,
        "forehead": (np.abs(u) <= 0.8) & (v >= top_v) & (v < -0.25),
        "below_chin": (np.abs(u) <= 1.2) & (v > chin_v + 0.05),
        "face": (u / 1.0) ** 2 + ((v - face_centre) / face_half) ** 2 <= 1,
    }


def region_masks(landmarks: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Disjoint masks of :data:`REGIONS` for an image of ``shape`` (earlier names win)."""
    shapes = _shapes(landmarks, shape)
    taken = np.zeros(shape[:2], bool)
    masks = {}
    for name in REGIONS:
        masks[name] = shapes[name] & ~taken
        taken |= masks[name]
    return masks


def anonymisation_masks(landmarks: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The notebook's masks, placed from landmarks: eyes (a bar), eyes + nose, the full face."""
    shapes = _shapes(landmarks, shape)
    return {
        "eyes": shapes["eye_bar"],
        "eyes_nose": shapes["eye_bar"] | shapes["nose"],
        "full_face": shapes["face"],
    }


def region_scores(heatmap: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Mean heatmap value inside each region (None for a region outside the image)."""
    return {
        name: float(np.mean(heatmap[mask])) if mask.any() else None for name, mask in masks.items()
    }
