"""Decisions over time on a generated clip: one event per appearance, no wrong names.

Three LFW people are enrolled from one photo each; the clip shows *other* photos of
them (and a stranger) walking in and out, two at once for a while, one coming back.
Faces are followed between full detections (every third frame) and each track is
decided by voting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import FaceLens
from edge.media.images import read_image
from edge.media.sources import Frame, VideoSource
from edge.video.track import CANT_TELL, DECIDING, UNKNOWN

sys.path.append(str(Path(__file__).resolve().parent))
from walkclip import H, W, default_walks, owner, write_walk_clip

PEOPLE = ["Colin_Powell", "Serena_Williams", "Junichiro_Koizumi"]
STRANGER = "Hugo_Chavez"


def _single_face_photo(lens: FaceLens, folder: Path) -> np.ndarray:
    """A photo other than the enrolment one (the first) with exactly one face."""
    for path in sorted(folder.glob("*.jpg"))[1:]:
        image = read_image(path)
        if len(lens.faces(image)) == 1:
            return image
    raise AssertionError(f"no single-face photo in {folder}")


@pytest.fixture(scope="module")
def walk(faceres_bundle, lfw_dir, nonface_dir, yunet_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("walk")
    # the bundle's threshold; YuNet named (module scope runs before the offline setting)
    lens = FaceLens(faceres_bundle, tmp / "g.sqlite", threads=2, detector=yunet_path)
    images = lfw_dir / "images"
    for person in PEOPLE:
        lens.enroll(person, [sorted((images / person).glob("*.jpg"))[0]])
    photos = {p: _single_face_photo(lens, images / p) for p in [*PEOPLE, STRANGER]}
    background = cv2.resize(read_image(nonface_dir / "opencv_samples" / "building.jpg"), (W, H))
    walks = default_walks(PEOPLE, STRANGER)
    truth = write_walk_clip(tmp / "walk.avi", photos, walks, background)
    yield lens, walks, truth, tmp / "walk.avi", photos
    lens.close()


@pytest.mark.parametrize("detect_every", [1, 5])
def test_one_event_per_appearance_and_no_wrong_names(walk, detect_every):
    lens, walks, truth, clip, _ = walk
    with VideoSource(clip) as source:
        recognizer = lens.video(detect_every, fps=source.fps)
        appearances, decided, labels = [], [], []
        for frame in source:
            result = recognizer(frame)
            appearances += result.appearances
            decided += result.decided
            for face in result.faces:
                labels.append((face.label, owner(face.box, truth[frame.index])))
        end = recognizer.finish()
        appearances += end.ended
        decided += end.decided

    named = [(label, o) for label, o in labels if label not in (DECIDING, CANT_TELL, UNKNOWN)]
    wrong = [(label, o) for label, o in named if o is None or o.person != label]
    print(f"{len(labels)} tracked faces, {len(named)} named, {len(wrong)} wrong")
    assert len(labels) > 300
    assert len(wrong) <= 0.01 * len(labels)  # issue 11: <= 1 % of tracked frames
    assert sum(label == DECIDING for label, _ in labels) < 0.1 * len(labels)

    # one event per walk, in time order, with the right name (None for the stranger)
    assert len(appearances) == len(walks), [a.to_dict() for a in appearances]
    fps = 25.0
    for walk_ in walks:
        start, end = walk_.start / fps, (walk_.start + walk_.frames - 1) / fps
        match = [a for a in appearances if a.first_seen <= end and a.last_seen >= start]
        expected = walk_.person if walk_.person in PEOPLE else None
        assert [a.name for a in match if a.name == expected], (walk_, match)
    for a in appearances:
        assert a.status == ("unknown" if a.name is None else "known")
        assert a.frames >= 30 and a.best_score >= a.mean_score > 0
        assert a.last_seen > a.first_seen
    # each decided once, soon after it came into view (the doorbell rings on arrival),
    # as what it is when it ends
    assert sorted(a.track_id for a in decided) == sorted(a.track_id for a in appearances)
    ended = {a.track_id: a for a in appearances}
    for a in decided:
        print(f"track {a.track_id} ({a.name}) decided after {a.last_seen - a.first_seen:.2f} s")
        assert (a.name, a.status) == (ended[a.track_id].name, ended[a.track_id].status)
        assert a.last_seen - a.first_seen < 0.5 and a.frames < ended[a.track_id].frames


def test_a_blurred_face_is_cant_tell_not_a_guess(walk):
    lens, _, _, _, photos = walk
    frame_image = np.zeros((H, W, 3), np.uint8)
    frame_image[100:350, 200:450] = cv2.GaussianBlur(photos[PEOPLE[0]], (0, 0), 4)
    recognizer = lens.video(detect_every=1, fps=25)
    labels = []
    for i in range(5):
        result = recognizer(Frame(frame_image, i, "blurred", 0.0))
        labels += [f.label for f in result.faces]
        assert all(f.name is None and "blurred" in f.problem for f in result.faces)
    assert labels and set(labels) == {CANT_TELL}
    (identity,) = lens.identify(frame_image)  # a photo: can't tell either, not a guess
    assert identity.name is None and "too blurred" in identity.problem
    (appearance,) = recognizer.finish().ended
    assert appearance.name is None and appearance.status == "unclear"
