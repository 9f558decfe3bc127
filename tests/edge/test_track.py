"""The tracker on hand-made observations: linking, crossing, voting, appearances."""

from __future__ import annotations

import numpy as np

from edge.video.track import CANT_TELL, DECIDING, UNKNOWN, Observation, Tracker, iou


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
    decided = []
    for t in range(5):
        faces, now_decided, ended = tracker.update(t / 25, [obs(10 + 5 * t, ALICE, "alice")])
        labels.append(faces[0].label)
        decided.append([(a.name, a.frames, a.last_seen) for a in now_decided])
        assert not ended
    assert labels == [DECIDING, DECIDING, "alice", "alice", "alice"]
    # decided once, at the frame the vote became confident, with what was known then
    assert decided == [[], [], [("alice", 3, 2 / 25)], [], []]
    assert len({f.track_id for f in tracker.update(0.2, [obs(35, ALICE, "alice")])[0]}) == 1


def test_one_odd_frame_does_not_change_the_decision_and_the_event_sums_up():
    tracker = Tracker(min_votes=3, max_missed=2)
    names = ["alice"] * 6 + ["bob"] + ["alice"] * 3
    for t, name in enumerate(names):
        faces = tracker.update(float(t), [obs(10 + 3 * t, ALICE, name, 0.6 + t / 100)]).faces
        if t >= 3:
            assert faces[0].label == "alice"
    ended = []
    for t in range(10, 14):  # the face has gone: after max_missed frames the track ends
        step = tracker.update(float(t), [])
        assert not step.decided  # decided long before (frame 2), not again at its end
        ended += step.ended
    (a,) = ended
    assert (a.name, a.status, a.frames, a.first_seen, a.last_seen) == ("alice", "known", 10, 0, 9)
    assert a.votes == {"alice": 9, "bob": 1}
    assert a.best_score == 0.69  # alice's frames only
    assert abs(a.mean_score - np.mean([0.6 + t / 100 for t in range(10) if t != 6])) < 1e-9
    assert a.to_dict()["name"] == "alice" and a.to_dict()["box"] == [37.0, 100.0, 80.0, 80.0]


def test_two_people_crossing_keep_their_tracks():
    tracker = Tracker()
    ids = {}
    for t in range(12):
        # alice walks right, bob walks left; their boxes overlap in the middle frames
        a, b = obs(100 + 20 * t, ALICE, "alice"), obs(320 - 20 * t, BOB, "bob")
        faces, _, _ = tracker.update(float(t), [a, b])
        for f in faces:
            ids.setdefault(f.observation.name, set()).add(f.track_id)
    assert len(ids["alice"]) == 1 and len(ids["bob"]) == 1 and ids["alice"] != ids["bob"]


def test_a_fast_move_with_the_same_embedding_stays_one_track():
    tracker = Tracker()
    tracker.update(0.0, [obs(100, ALICE, "alice")])
    faces = tracker.update(0.04, [obs(200, ALICE, "alice")]).faces  # no overlap, same face
    assert faces[0].track_id == 1
    faces = tracker.update(0.08, [obs(300, BOB, "bob")]).faces  # no overlap, another face
    assert faces[0].track_id == 2


def test_strangers_unclear_faces_and_noise():
    tracker = Tracker(min_votes=3, min_frames=3)
    for t in range(6):
        tracker.update(float(t), [obs(10, BOB, None, 0.3)])
    faces = tracker.update(6.0, [obs(10, BOB, None, 0.3, problem="face too blurred")]).faces
    assert faces[0].label == CANT_TELL
    tracker.update(7.0, [obs(400, ALICE, "alice")])  # one frame only: detector noise
    end = tracker.finish()
    (stranger,) = end.ended
    assert (stranger.name, stranger.status, stranger.frames) == (None, "unknown", 7)
    assert stranger.votes == {UNKNOWN: 6}
    assert end.decided == []  # decided as a stranger at frame 2, and the noise never

    tracker = Tracker(min_votes=3)
    for t in range(4):
        step = tracker.update(float(t), [obs(10, None, None, 0.0, problem="face too small")])
        assert not step.decided  # never clear enough: nothing to decide while in view
    assert step.faces[0].label == CANT_TELL
    end = tracker.finish()
    (unclear,) = end.ended
    assert (unclear.name, unclear.status) == (None, "unclear")
    assert end.decided == [unclear]  # decided once, at its end


def test_with_a_gap_in_seconds_a_short_absence_is_one_appearance():
    tracker = Tracker(max_gap_s=2.0)
    decided, ended = [], []
    for t in [*range(10), *range(40, 50), *range(90, 100)]:  # frames at 10 FPS
        step = tracker.update(t / 10, [obs(10, ALICE, "alice")])
        decided += step.decided
        ended += step.ended
    # away 3 s (frames 10-39): a new appearance; away 4 s more: a third (ended by finish)
    assert [(a.first_seen, a.last_seen) for a in ended] == [(0.0, 0.9), (4.0, 4.9)]
    ended += tracker.finish().ended
    assert [a.name for a in decided] == ["alice"] * 3 and len(ended) == 3

    tracker = Tracker(max_gap_s=2.0)
    decided = []
    for t in [*range(10), *range(25, 35)]:  # away 1.5 s, under the gap: the same one
        decided += tracker.update(t / 10, [obs(10, ALICE, "alice")]).decided
    assert len(decided) == 1
    (a,) = tracker.finish().ended
    assert (a.frames, a.first_seen, a.last_seen) == (20, 0.0, 3.4)


def test_photos_each_decide_on_one_vote():
    # unrelated photos an hour apart, the same face at the same place: one appearance each
    tracker = Tracker(max_gap_s=2.0, min_votes=1, min_frames=1)
    steps = [tracker.update(3600.0 * i, [obs(10, ALICE, "alice")]) for i in range(3)]
    assert [len(s.decided) for s in steps] == [1, 1, 1]
    assert len({s.faces[0].track_id for s in steps}) == 3
    assert [len(s.ended) for s in steps] == [0, 1, 1]


def test_someone_else_stepping_into_the_same_place_is_a_new_appearance():
    # alike enough to stay linked (cosine 0.6 > min_similarity), not to be one person (0.7)
    other = unit(0.6, 0.8, 0)
    tracker = Tracker(min_votes=3, split_below=0.7)
    steps = [tracker.update(float(t), [obs(10, ALICE, "alice")]) for t in range(5)]
    steps += [tracker.update(float(t), [obs(10, other, "bob")]) for t in range(5, 7)]
    assert {f.track_id for s in steps for f in s.faces} == {1}  # two odd frames: still alice
    steps += [tracker.update(7.0, [obs(10, other, "bob")])]  # the third in a row: bob now
    (alice,) = steps[-1].ended
    assert (alice.name, alice.frames, alice.last_seen, alice.votes) == (
        "alice",
        5,
        4.0,
        {"alice": 5},
    )
    (bob,) = steps[-1].decided
    assert (bob.name, bob.track_id, bob.frames, bob.first_seen) == ("bob", 2, 3, 5.0)
    assert steps[-1].faces[0].track_id == 2 and steps[-1].faces[0].label == "bob"
    assert [a.name for s in steps for a in s.decided] == ["alice", "bob"]


def test_a_face_turning_away_does_not_split_its_track():
    # the same person, unrecognisable for a while (votes unknown), still like their track
    turned = unit(0.9, 0.436, 0)  # cosine 0.9 to alice
    tracker = Tracker(min_votes=3, split_below=0.7)
    for t in range(7):
        tracker.update(float(t), [obs(10, ALICE, "alice")])
    for t in range(7, 11):
        step = tracker.update(float(t), [obs(10, turned, None, 0.4)])
        assert step.faces[0].track_id == 1 and not step.decided and not step.ended
    (a,) = tracker.finish().ended
    assert (a.name, a.frames, a.votes) == ("alice", 11, {"alice": 7, UNKNOWN: 4})
