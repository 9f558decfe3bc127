"""Masks land on the face parts the landmarks name, and hiding more of the face costs more."""

import numpy as np
import pytest

from edge.faces.detect import YuNetDetector
from explain.anonymize import MASKS, apply_mask, pick_people, prepare_probes, study
from explain.crops import FaceLoader, read_image
from explain.models import load_keras_model


@pytest.fixture(scope="module")
def faceres(faceres_dir, faceres_model):
    return load_keras_model(faceres_model, faceres_dir / "input_spec.json")


def test_masks_cover_what_they_say_and_nothing_far_away(lfw_dir, yunet_path):
    image = read_image(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    face = YuNetDetector(yunet_path).detect(image)[0]
    (rx, ry), (lx, ly), (nx, ny), (mx, my), _ = face.landmarks.round().astype(int)
    eyes = apply_mask(image, face.landmarks, "eyes")
    assert eyes[ry, rx].sum() == 0 and eyes[ly, lx].sum() == 0
    np.testing.assert_array_equal(eyes[my, mx], image[my, mx])  # the mouth is untouched
    nose = apply_mask(image, face.landmarks, "eyes_nose")
    assert nose[ny - 3, nx].sum() == 0
    full = apply_mask(image, face.landmarks, "full_face")
    assert full[my, mx].sum() == 0 and full[ny, nx].sum() == 0
    blur = apply_mask(image, face.landmarks, "blur")
    assert np.abs(blur.astype(int) - image)[ry - 5 : ry + 5, rx - 5 : rx + 5].mean() > 2
    for masked in (eyes, nose, full, blur):
        np.testing.assert_array_equal(masked[:10, :10], image[:10, :10])  # a far corner
    np.testing.assert_array_equal(apply_mask(image, face.landmarks, "none"), image)


def test_hiding_the_whole_face_costs_more_than_hiding_the_eyes(
    faceres, faceres_dir, lfw_dir, yunet_path
):
    people = pick_people(lfw_dir / "images", 8, seed=1)
    assert len({p[0] for p in people}) == 8 and all(p[1] != p[2] for p in people)
    loader = FaceLoader(faceres.spec, detector=YuNetDetector(yunet_path))
    probes, skipped = prepare_probes(people, loader, progress=False)
    assert len(probes) + len(skipped) == 8 and len(probes) >= 6
    result = study(probes, {"float": faceres.features()}, threshold=0.5)
    r = result["models"]["float"]
    assert list(r) == list(MASKS)
    assert r["none"]["similarity_drop_mean"] == 0.0
    assert r["none"]["rank1_rate"] >= 0.8  # a face-trained model names unmasked people
    assert r["full_face"]["similarity_drop_mean"] > r["eyes"]["similarity_drop_mean"] > 0
    assert r["full_face"]["named_rate"] < r["none"]["named_rate"]
