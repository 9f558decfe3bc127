"""The tracker on hand-made observations: linking, crossing, voting, appearances."""

from __future__ import annotations

import numpy as np

from edge.track import CANT_TELL, DECIDING, UNKNOWN, Observation, Tracker, iou


def unit(*v: float) -> np.ndarray:
    x = np.asarray(v, np.float32)
    return x / np.linalg.norm(x)


ALICE, BOB = unit(1, 0, 0), unit(0, 1, 0)


def obs(x: float, emb: np.ndarray, name: str | None, score: float = 0.7, problem=None):
    return Observation((x, 100.0, 80.0, 80.0), emb, name, score, problem)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_a_track_reads_deciding_until_enough_votes_then_the_name():
    tracker = Tracker(min_votes=3)
    labels = []
    for t in range(5):
        faces, ended = tracker.update(t / 25, [obs(10 + 5 * t, ALICE, "alice")])
        labels.append(faces[0].label)
        assert not ended
    assert labels == [DECIDING, DECIDING, "alice", "alice", "alice"]
    assert len({f.track_id for f in tracker.update(0.2, [obs(35, ALICE, "alice")])[0]}) == 1


def test_one_odd_frame_does_not_change_the_decision_and_the_event_sums_up():
    tracker = Tracker(min_votes=3, max_missed=2)
    names = ["alice"] * 6 + ["bob"] + ["alice"] * 3
    for t, name in enumerate(names):
        faces, _ = tracker.update(float(t), [obs(10 + 3 * t, ALICE, name, 0.6 + t / 100)])
        if t >= 3:
            assert faces[0].label == "alice"
    ended = []
    for t in range(10, 14):  # the face has gone: after max_missed frames the track ends
        ended += tracker.update(float(t), [])[1]
    (a,) = ended
    assert (a.name, a.status, a.frames, a.first_seen, a.last_seen) == ("alice", "known", 10, 0, 9)
    assert a.votes == {"alice": 9, "bob": 1}
    assert a.best_score == 0.69  # alice's frames only
    assert abs(a.mean_score - np.mean([0.6 + t / 100 for t in range(10) if t != 6])) < 1e-9
    assert a.to_dict()["name"] == "alice"


def test_two_people_crossing_keep_their_tracks():
    tracker = Tracker()
    ids = {}
    for t in range(12):
        # alice walks right, bob walks left; their boxes overlap in the middle frames
        a, b = obs(100 + 20 * t, ALICE, "alice"), obs(320 - 20 * t, BOB, "bob")
        faces, _ = tracker.update(float(t), [a, b])
        for f in faces:
            ids.setdefault(f.observation.name, set()).add(f.track_id)
    assert len(ids["alice"]) == 1 and len(ids["bob"]) == 1 and ids["alice"] != ids["bob"]


def test_a_fast_move_with_the_same_embedding_stays_one_track():
    tracker = Tracker()
    tracker.update(0.0, [obs(100, ALICE, "alice")])
    faces, _ = tracker.update(0.04, [obs(200, ALICE, "alice")])  # no overlap, same face
    assert faces[0].track_id == 1
    faces, _ = tracker.update(0.08, [obs(300, BOB, "bob")])  # no overlap, another face
    assert faces[0].track_id == 2


def test_strangers_unclear_faces_and_noise():
    tracker = Tracker(min_votes=3, min_frames=3)
    for t in range(6):
        tracker.update(float(t), [obs(10, BOB, None, 0.3)])
    faces, _ = tracker.update(6.0, [obs(10, BOB, None, 0.3, problem="face too blurred")])
    assert faces[0].label == CANT_TELL
    tracker.update(7.0, [obs(400, ALICE, "alice")])  # one frame only: detector noise
    (stranger,) = tracker.finish()
    assert (stranger.name, stranger.status, stranger.frames) == (None, "unknown", 7)
    assert stranger.votes == {UNKNOWN: 6}

    tracker = Tracker(min_votes=3)
    for t in range(4):
        faces, _ = tracker.update(float(t), [obs(10, None, None, 0.0, problem="face too small")])
    assert faces[0].label == CANT_TELL
    (unclear,) = tracker.finish()
    assert (unclear.name, unclear.status) == (None, "unclear")
