"""The tracker a bundle gets (``tracker_for``): linking floor and split rule follow the
model's threshold, on real faces through real models."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from edge import FaceLens
from edge.video.recognizer import LINK_FLOOR, tracker_for
from edge.video.track import UNKNOWN, Observation, Tracker

PEOPLE = [
    "Colin_Powell",
    "Serena_Williams",
    "Junichiro_Koizumi",
    "Hugo_Chavez",
    "Tony_Blair",
    "Gerhard_Schroeder",
    "Jacques_Chirac",
    "Vladimir_Putin",
    "Ariel_Sharon",
    "John_Ashcroft",
    "Jean_Chretien",
    "Donald_Rumsfeld",
]


@pytest.fixture(scope="module")
def sface_lens(sface_bundle, lfw_dir: Path, yunet_path: Path, tmp_path_factory):
    lens = FaceLens(sface_bundle, tmp_path_factory.mktemp("g") / "g.sqlite", detector=yunet_path)
    yield lens
    lens.close()


def _first_photo_embeddings(lens: FaceLens, images: Path) -> dict[str, np.ndarray]:
    return {p: lens.embed(sorted((images / p).glob("*.jpg"))[0], 0)[0] for p in PEOPLE}


def _at(emb: np.ndarray, name: str | None) -> Observation:
    return Observation((100.0, 100.0, 80.0, 80.0), emb, name, 0.7)


def _splits(tracker: Tracker, a: np.ndarray, b: np.ndarray) -> bool:
    """Person A decided on a track, then B standing in the same place for 4 frames
    (unknown to the matcher): does the track end and B get one of their own?"""
    steps = [tracker.update(float(t), [_at(a, "a")]) for t in range(5)]
    steps += [tracker.update(float(t), [_at(b, None)]) for t in range(5, 9)]
    ids = {f.track_id for s in steps for f in s.faces}
    ended = [e.name for s in steps for e in s.ended]
    return len(ids) == 2 and ended == ["a"]


def test_the_linking_floor_lies_under_the_match_threshold(request, lfw_dir: Path):
    dlib = FaceLens(request.getfixturevalue("dlib_bundle"), None)
    sface = FaceLens(request.getfixturevalue("sface_bundle"), None)
    dlib_tracker, sface_tracker = tracker_for(dlib), tracker_for(sface)
    # dlib's threshold (~0.91) is far above the floor: its tracking is as before
    assert dlib_tracker.min_similarity == LINK_FLOOR
    assert dlib_tracker.split_below == dlib.threshold.value
    # SFace's (~0.3) is not: the floor goes under it, so the split rule can fire
    assert sface_tracker.split_below == sface.threshold.value
    assert sface_tracker.min_similarity == pytest.approx(sface.threshold.value / 2)
    assert tracker_for(sface, min_similarity=0.1).min_similarity == 0.1  # asked: kept


def test_with_sface_someone_else_stepping_in_is_a_new_appearance(sface_lens, lfw_dir: Path):
    emb = _first_photo_embeddings(sface_lens, lfw_dir / "images")
    threshold = sface_lens.threshold.value
    tracker = tracker_for(sface_lens)
    # the most alike two different people that the matcher still tells apart
    pairs = [(float(emb[a] @ emb[b]), a, b) for a, b in itertools.combinations(PEOPLE, 2)]
    cos, a, b = max(p for p in pairs if p[0] < threshold)
    assert tracker.min_similarity <= cos < threshold, (a, b, cos)
    assert _splits(tracker, emb[a], emb[b])
    # with the fixed floor 0.3 (at SFace's threshold) the two stayed one appearance
    assert not _splits(Tracker(min_similarity=LINK_FLOOR, split_below=threshold), emb[a], emb[b])


def test_with_sface_the_same_person_in_another_photo_stays_one_track(sface_lens, lfw_dir):
    images = lfw_dir / "images"
    photos = sorted((images / "Colin_Powell").glob("*.jpg"))[:6]
    emb = [sface_lens.embed(p, 0)[0] for p in photos]
    tracker = tracker_for(sface_lens)
    steps = [tracker.update(float(t), [_at(emb[0], "colin")]) for t in range(5)]
    # other photos of him, some too unlike to be named: one track, no split
    for t, e in enumerate(emb[1:], start=5):
        name = "colin" if float(emb[0] @ e) >= sface_lens.threshold.value else None
        steps.append(tracker.update(float(t), [_at(e, name)]))
    assert {f.track_id for s in steps for f in s.faces} == {1}
    (a,) = tracker.finish().ended
    assert a.name == "colin" and a.frames == 10 and set(a.votes) <= {"colin", UNKNOWN}
