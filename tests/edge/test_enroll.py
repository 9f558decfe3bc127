"""Enrolment from several photos, a folder or a video: the best distinct views, bad ones refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import FaceLens
from edge.base.errors import ImageError
from edge.gallery.enroll import choose_views
from edge.media.images import read_image

PERSON = "Tony_Blair"


@pytest.fixture(scope="module")
def lens(faceres_bundle, yunet_path, tmp_path_factory):
    gallery = tmp_path_factory.mktemp("enrol") / "g.sqlite"
    # YuNet named: module scope runs before the per-test offline setting
    with FaceLens(faceres_bundle, gallery, threads=2, detector=yunet_path) as fl:
        yield fl


@pytest.fixture(scope="module")
def pipeline(lens):
    return lens.pipeline


@pytest.fixture(scope="module")
def photos(lfw_dir) -> list[Path]:
    return sorted((lfw_dir / "images" / PERSON).glob("*.jpg"))[:4]


def _write(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


def test_several_photos_are_kept_with_their_quality(pipeline, photos):
    views = choose_views(pipeline, PERSON, photos[:3])
    assert [v.path for v in views] and {v.path for v in views} <= {str(p) for p in photos[:3]}
    assert views.embeddings.shape == (len(views), pipeline.bundle.embedding_dim)
    assert all(v.quality.ok and v.quality.size > 60 for v in views)


def test_a_blurred_or_tiny_named_photo_is_refused_and_nothing_is_written(lens, photos, tmp_path):
    image = read_image(photos[1])
    blurred = _write(tmp_path / "blurred.jpg", cv2.GaussianBlur(image, (0, 0), 4))
    tiny = np.full((400, 400, 3), 128, np.uint8)
    tiny[180:212, 180:212] = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    tiny = _write(tmp_path / "tiny.png", tiny)
    with pytest.raises(ImageError, match=r"blurred\.jpg: face too blurred \(sharpness"):
        lens.enroll(PERSON, [photos[0], blurred])
    with pytest.raises(ImageError, match=r"tiny\.png: face too small \(\d+ px, needs 40\)"):
        lens.enroll(PERSON, [tiny])
    assert lens.people() == []
    enrolment = lens.enroll(PERSON, [photos[0], read_image(photos[1])])  # arrays too
    assert sorted(v.path for v in enrolment) == sorted([str(photos[0]), "image #1"])
    assert [p.embeddings for p in lens.people()] == [2]
    assert lens.forget(PERSON) == 2


def test_a_folder_leaves_out_bad_photos_and_says_why(pipeline, photos, tmp_path):
    folder = tmp_path / "tony"
    folder.mkdir()
    for p in photos[:2]:
        _write(folder / p.name, read_image(p))
    _write(folder / "zz_blurred.jpg", cv2.GaussianBlur(read_image(photos[2]), (0, 0), 4))
    (folder / "notes.txt").write_text("not a photo")
    views = choose_views(pipeline, PERSON, [folder])
    assert sorted(Path(v.path).name for v in views) == sorted(p.name for p in photos[:2])
    reasons = dict(views.left_out)
    assert "too blurred" in reasons[str(folder / "zz_blurred.jpg")]


def test_a_video_gives_at_most_k_distinct_views_and_names_them(pipeline, photos, tmp_path):
    clip = tmp_path / "me.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    segments = []
    for i, photo in enumerate(photos):  # four photos, 15 near-identical frames each
        image = cv2.resize(read_image(photo), (300, 300))
        for t in range(15):
            frame = np.full((480, 640, 3), 90, np.uint8)
            x, y = 170 + 2 * t, 90 + (t % 3)
            frame[y : y + 300, x : x + 300] = cv2.GaussianBlur(image, (0, 0), 5) if t < 3 else image
            writer.write(frame)
            segments.append(i)
    writer.release()

    views = choose_views(pipeline, PERSON, video=str(clip), max_views=3)
    assert 1 <= len(views) <= 3
    frames = [int(v.path.rsplit(" ", 1)[1]) for v in views]
    assert all(v.path == f"{clip} frame {f}" for v, f in zip(views, frames, strict=True))
    assert len({segments[f] for f in frames}) == len(frames)  # each from another photo
    reasons = [r for _, r in views.left_out]
    assert any(r.startswith("too like a kept view") for r in reasons)
    assert any("too blurred" in r for r in reasons)
    assert all(v.quality.ok for v in views)


def test_distinct_photos_stay_distinct_views_whatever_the_model(dlib_bundle, lfw_dir, yunet_path):
    # dlib's same-person cosines sit above 0.93 (its threshold is 0.911): a fixed
    # near-duplicate distance of 0.08 kept one of these three photos
    from edge.model.pipeline import Pipeline

    pipeline = Pipeline.create(dlib_bundle, threads=2, detector=yunet_path)
    three = sorted((lfw_dir / "images" / "Alan_Greenspan").glob("*.jpg"))[:3]
    views = choose_views(pipeline, "Alan_Greenspan", three)
    assert len(views) == 3, views.left_out
    assert min(1 - float(a @ b) for a, b in _pairs(views.embeddings)) < 0.08
    # the same photo twice is still a near-duplicate
    again = choose_views(pipeline, "Alan_Greenspan", [three[0], three[0]])
    assert len(again) == 1 and again.left_out[0][1].startswith("too like a kept view")


def _pairs(rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(rows[i], rows[j]) for i in range(len(rows)) for j in range(i + 1, len(rows))]
