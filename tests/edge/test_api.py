"""The Python API, ``edge.FaceLens``, on real bundles, real LFW photos and a real gallery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge
from edge import FaceLens
from edge.base.errors import AmbiguousFacesError, BundleError, ImageError, NoFaceError
from edge.gallery.confidence import DECISION


def lfw(lfw_dir: Path, person: str, i: int) -> Path:
    return sorted((lfw_dir / "images" / person).glob("*.jpg"))[i]


@pytest.fixture
def lens(faceres_bundle, tmp_path):
    with FaceLens(faceres_bundle.path, tmp_path / "people.db", threads=1) as fl:
        yield fl


def test_verify_enroll_identify_on_real_people(lens, lfw_dir):
    powell_a, powell_b = lfw(lfw_dir, "Colin_Powell", 0), lfw(lfw_dir, "Colin_Powell", 1)
    serena = lfw(lfw_dir, "Serena_Williams", 0)
    same = lens.verify(powell_a, powell_b)
    other = lens.verify(powell_a, serena)
    assert same.same and not other.same, (same, other)
    assert same.score > same.threshold > other.score
    assert same.threshold == DECISION  # the score unit: named at confidence 0.5
    if lens.threshold.open_set is None:  # a bundle without its own open-set rule
        assert same.cosine > lens.bundle.threshold > other.cosine

    enrolled = lens.enroll("Colin Powell", [powell_a])
    assert [p.path for p in enrolled] == [str(powell_a)] and enrolled[0].faces_found >= 1
    assert [(p.name, p.embeddings) for p in lens.people()] == [("Colin Powell", 1)]
    (who,) = [f for f in lens.identify(powell_b) if f.detection_score > 0.8][:1]
    assert who.name == "Colin Powell" and who.nearest == "Colin Powell"
    assert who.score == pytest.approx(same.score, abs=1e-4)
    x, y, w, h = who.box
    assert 0 <= x < 250 and 0 <= y < 250 and w > 40 and h > 40
    stranger = max(lens.identify(serena), key=lambda f: f.detection_score)
    assert stranger.name is None and stranger.nearest == "Colin Powell"
    assert stranger.score < lens.threshold.confidence
    assert stranger.cosine is not None and who.cosine == pytest.approx(same.cosine, abs=1e-4)

    assert lens.forget("Colin Powell") == 1
    assert lens.people() == [] and lens.forget("Colin Powell") == 0
    assert all(f.name is None for f in lens.identify(powell_b))


def test_arrays_and_paths_give_the_same_answers(lens, lfw_dir):
    path = lfw(lfw_dir, "Serena_Williams", 0)
    image = cv2.imread(str(path))
    faces = lens.faces(path)
    assert [f.box for f in faces] == [f.box for f in lens.faces(image)] and len(faces) >= 1
    assert faces[0].landmarks.shape == (5, 2)
    emb = lens.embed(image)
    assert emb.shape == (len(faces), lens.bundle.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(lens.embed(path), emb, atol=1e-6)
    # face= picks one face, by index (faces() order) or by the Face itself
    np.testing.assert_allclose(lens.embed(image, face=0), emb[:1], atol=1e-6)
    np.testing.assert_allclose(lens.embed(image, face=faces[0]), emb[:1], atol=1e-6)
    assert lens.verify(path, image).score == pytest.approx(1.0, abs=1e-5)


def test_recognize_times_every_stage(lens, lfw_dir):
    path = lfw(lfw_dir, "Tony_Blair", 0)
    lens.enroll("Tony", path)  # a single image works as well as a list
    result = lens.recognize(path)
    assert set(result.ms) == {"decode", "detect", "align", "embed", "match", "total"}
    assert all(v >= 0 for v in result.ms.values()) and result.ms["decode"] > 0
    assert result.ms["total"] == pytest.approx(sum(result.ms[s] for s in edge.results.STAGES))
    assert "Tony" in [f.name for f in result.faces]
    assert lens.recognize(cv2.imread(str(path))).ms["decode"] == 0.0  # nothing to decode


def test_which_face_a_photo_is_about(lens, lfw_dir):
    a = cv2.imread(str(lfw(lfw_dir, "Colin_Powell", 0)))
    b = cv2.imread(str(lfw(lfw_dir, "Serena_Williams", 0)))
    pair = np.hstack([a, b])  # two alike faces: neither dominates
    with pytest.raises(AmbiguousFacesError, match=r"none clearly dominates.*--face N"):
        lens.enroll("Who", [pair])
    with pytest.raises(AmbiguousFacesError):
        lens.verify(pair, a)
    assert lens.people() == []  # a refused enrolment writes nothing
    chosen = lens.enroll("Who", [pair], face=1)[0]
    assert chosen.path == "image #0" and chosen.faces_found >= 2
    assert chosen.face.box == lens.faces(pair)[1].box
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="no face found in image #0"):
        lens.enroll("Nobody", [blank])
    with pytest.raises(ImageError, match="no face #7"):
        lens.enroll("Who", [a], face=7)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((10, 10), np.uint8), r"shape \(10, 10\).*HxWx3 BGR uint8"),
        (np.zeros((10, 10, 3), np.float32), "float32 array"),
        (np.zeros((0, 10, 3), np.uint8), r"shape \(0, 10, 3\)"),
        (42, "is a int; give a file path, a BGR numpy array"),  # (bytes are decoded)
        ("no/such/photo.jpg", "no/such/photo.jpg does not exist"),
    ],
)
def test_bad_images_are_refused_clearly(lens, image, match):
    with pytest.raises(ImageError, match=match):
        lens.faces(image)


def test_gallery_calls_need_no_model(tmp_path):
    # No bundle exists at the default place, yet listing and forgetting work.
    fl = FaceLens(bundle=tmp_path / "none", gallery=tmp_path / "g.db")
    assert fl.people() == [] and fl.forget("Ada") == 0
    assert not (tmp_path / "g.db").exists()  # reading creates no gallery file
    with pytest.raises(BundleError, match="no model bundle at"):
        fl.faces(np.zeros((8, 8, 3), np.uint8))


def test_defaults_are_the_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELENS_HOME", str(tmp_path))
    fl = FaceLens()
    assert fl.gallery_path == tmp_path / "gallery.sqlite"
    with pytest.raises(BundleError, match=str(tmp_path / "bundle")):
        fl.load()


def test_an_explicit_threshold_wins(faceres_bundle, tmp_path, lfw_dir):
    with FaceLens(faceres_bundle, tmp_path / "g.db", threshold=0.99) as fl:
        assert fl.threshold.confidence == 0.99 and fl.threshold.origin.startswith("--threshold")
        powell = [lfw(lfw_dir, "Colin_Powell", i) for i in (0, 1)]
        v = fl.verify(*powell)
        assert v.threshold == 0.99 and v.same == (v.score >= 0.99)
        assert not fl.verify(powell[0], lfw(lfw_dir, "Serena_Williams", 0)).same


def test_import_edge_has_no_side_effects():
    code = (
        "import os, sys, warnings; env = dict(os.environ); filters = list(warnings.filters); "
        "import edge; "
        "assert dict(os.environ) == env and warnings.filters == filters; "
        "heavy = {'cv2', 'numpy', 'tensorflow', 'keras', 'ai_edge_litert', 'onnxruntime'}; "
        "assert not heavy & set(sys.modules), heavy & set(sys.modules); "
        "assert set(edge.__all__) == set(edge._EXPORTS); "
        "[getattr(edge, n) for n in edge.__all__]; "
        "assert 'tensorflow' not in sys.modules and 'convert' not in sys.modules"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ
    )
    assert run.returncode == 0, run.stderr
