"""Faces followed across frames: tracks, votes over a track, one appearance per track.

A doorbell should not say "Alice" on one frame and "unknown" on the next. The
:class:`Tracker` links each frame's faces to the tracks of the frames before by box
overlap (IoU) and embedding continuity (cosine to the track's running embedding), so
two people crossing are not merged and a fast move is not a new person. Each frame of
a track casts a vote (a name, unknown, or nothing when the face is too small or
blurred to tell); the track reads "deciding…" until one answer has ``min_votes``
votes and ``min_share`` of them. A track is one :class:`Appearance` (who, first and
last seen, frames, best and mean score), reported twice: once *decided*, at the frame
its vote becomes confident (or at its end if it never does), so a doorbell can ring
while the person is still there; and once *ended*, summed up, when it ends.

Nothing here knows about cameras, detectors or models: it consumes
:class:`Observation` objects, so the same tracker serves video files, live cameras
and the events the MQTT bridge publishes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

DECIDING = "deciding…"
CANT_TELL = "can't tell"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    """One face in one frame: where, its embedding, and what matching said of it.

    ``problem`` is set (and ``name`` ignored) when the face is too small or blurred for
    a decision (see :func:`edge.faces.quality.assess`).
    """

    box: tuple[float, float, float, float]
    embedding: np.ndarray | None
    name: str | None
    score: float
    problem: str | None = None


@dataclass(frozen=True)
class Appearance:
    """One person's visit: what is known of it when it is decided, or when it ends.

    ``name`` is ``None`` for a stranger (``status`` ``"unknown"``) and for a face that
    was never clear enough to decide on (``status`` ``"unclear"``). Times are what the
    caller passed to :meth:`Tracker.update` (seconds into a video, or epoch seconds);
    ``last_seen`` and ``box`` are the latest so far. ``best_score``/``mean_score`` are
    the match confidences (see :mod:`edge.gallery.confidence`) of the frames that voted
    for the decision (for a stranger: of their nearest enrolled person).
    """

    track_id: int
    name: str | None
    status: str  # "known", "unknown" or "unclear"
    first_seen: float
    last_seen: float
    frames: int
    best_score: float
    mean_score: float
    box: tuple[float, float, float, float]  # x, y, width, height where last seen
    votes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("first_seen", "last_seen"):
            d[key] = round(d[key], 3)
        for key in ("best_score", "mean_score"):
            d[key] = round(d[key], 4)
        d["box"] = [round(float(v), 1) for v in self.box]
        return d


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """A face followed across frames, with the votes its frames cast."""

    id: int
    box: tuple[float, float, float, float]
    embedding: np.ndarray | None
    first_seen: float
    last_seen: float
    frames: int = 0
    missed: int = 0
    decided: bool = False  # reported as decided (see Tracker.update)
    votes: Counter = field(default_factory=Counter)  # name (or UNKNOWN) -> frames
    scores: dict[str, list[float]] = field(default_factory=dict)
    # the latest frames in a row that voted against the decision, held back: a few odd
    # frames join the track when it agrees again, ``min_votes`` of them split it
    dissent: list[tuple[Observation, float]] = field(default_factory=list)

    def add(self, obs: Observation, t: float) -> None:
        self.box = obs.box
        self.last_seen = t
        self.frames += 1
        self.missed = 0
        if obs.embedding is not None:
            # a running mean, so one odd frame does not break continuity
            e = obs.embedding if self.embedding is None else self.embedding + 0.3 * obs.embedding
            self.embedding = e / max(float(np.linalg.norm(e)), 1e-12)
        if obs.problem is None:
            key = obs.name or UNKNOWN
            self.votes[key] += 1
            self.scores.setdefault(key, []).append(float(obs.score))

    def settle(self) -> None:
        """The held-back frames were odd ones: count them."""
        held, self.dissent = self.dissent, []
        for obs, t in held:
            self.add(obs, t)


@dataclass(frozen=True)
class TrackedFace:
    """An observation and the label of the track it joined."""

    track_id: int
    label: str  # a name, UNKNOWN, DECIDING or CANT_TELL
    observation: Observation


class Step(NamedTuple):
    """What one :meth:`Tracker.update` found: each face's track and label, and the
    appearances decided and ended at that frame (each appearance is decided once, and
    ends once)."""

    faces: list[TrackedFace]
    decided: list[Appearance]
    ended: list[Appearance]


class Tracker:
    """Links faces across frames and decides each track by voting.

    A face joins a track when their boxes overlap by ``min_iou``, or when its embedding
    is within ``strong_similarity`` of the track's and it is near (a fast move); never
    when the embeddings disagree (cosine below ``min_similarity``: two people crossing).
    A track unseen for ``max_missed`` frames ends, or, when ``max_gap_s`` is given, one
    unseen for ``max_gap_s`` seconds (so a person who looks away for less is one
    appearance at any frame rate); tracks shorter than ``min_frames`` are dropped as
    detector noise. With ``split_below`` (a cosine: the model's match threshold), a
    decided track whose face votes otherwise ``min_votes`` frames in a row, each less
    like the track than that, has become someone else (one person stepping in where
    another stood, alike enough, above ``min_similarity``, to be linked): it ends, and
    those frames start a new track. A face turning away votes otherwise too, but stays
    like its own track, so it does not split.
    """

    def __init__(
        self,
        min_iou: float = 0.3,
        min_similarity: float = 0.3,
        strong_similarity: float = 0.6,
        max_missed: int = 10,
        min_votes: int = 3,
        min_share: float = 0.6,
        min_frames: int = 3,
        max_gap_s: float | None = None,
        split_below: float | None = None,
    ) -> None:
        self.min_iou = min_iou
        self.min_similarity = min_similarity
        self.strong_similarity = strong_similarity
        self.max_missed = max_missed
        self.max_gap_s = max_gap_s
        self.split_below = split_below
        self.min_votes = min_votes
        self.min_share = min_share
        self.min_frames = min_frames
        self.tracks: list[Track] = []
        self._next_id = 1

    def decision(self, track: Track) -> str:
        """The track's label now: its leading vote once confident, else DECIDING/CANT_TELL."""
        total = sum(track.votes.values())
        if not total:
            return CANT_TELL if track.frames >= self.min_votes else DECIDING
        leader, count = track.votes.most_common(1)[0]
        if count >= self.min_votes and count >= self.min_share * total:
            return leader
        return DECIDING

    def _affinity(self, track: Track, obs: Observation) -> float | None:
        overlap = iou(track.box, obs.box)
        sim = None
        if track.embedding is not None and obs.embedding is not None:
            sim = float(track.embedding @ obs.embedding)
            if sim < self.min_similarity:
                return None
        if overlap >= self.min_iou:
            return overlap + (sim or 0.0)
        if sim is not None and sim >= self.strong_similarity:
            tx, ty, tw, th = track.box
            ox, oy, ow, oh = obs.box
            dist = np.hypot(tx + tw / 2 - ox - ow / 2, ty + th / 2 - oy - oh / 2)
            if dist <= 1.5 * max(tw, th):
                return overlap + sim
        return None

    def _gone(self, track: Track, t: float) -> bool:
        if self.max_gap_s is not None:
            return t - track.last_seen > self.max_gap_s
        return track.missed > self.max_missed

    def _end(self, t: float) -> list[Track]:
        """Remove the tracks that have ended by time ``t``; returns them."""
        ended = [tr for tr in self.tracks if self._gone(tr, t)]
        self.tracks = [tr for tr in self.tracks if not self._gone(tr, t)]
        return ended

    def update(self, t: float, observations: list[Observation]) -> Step:
        """Add one frame's faces, seen at time ``t`` (seconds)."""
        ended = self._end(t)  # long gone (max_gap_s): a face now starts a new track
        pairs = []
        for i, track in enumerate(self.tracks):
            for j, obs in enumerate(observations):
                a = self._affinity(track, obs)
                if a is not None:
                    pairs.append((a, i, j))
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for _, i, j in sorted(pairs, reverse=True):  # greedy: most alike first
            if i not in used_tracks and j not in assigned:
                used_tracks.add(i)
                assigned[j] = self.tracks[i]
        for i, track in enumerate(self.tracks):
            if i not in used_tracks:
                track.missed += 1
        faces, decided = [], []
        for j, obs in enumerate(observations):
            track = assigned.get(j)
            if track is not None and self._dissents(track, obs):
                track.dissent.append((obs, t))
                track.missed = 0
                if len(track.dissent) < self.min_votes:
                    faces.append(TrackedFace(track.id, self.decision(track), obs))
                    continue
                # someone else now: the track ends at its last agreeing frame
                held, track.dissent = track.dissent, []
                self.tracks.remove(track)
                ended.append(track)
                track = self._new_track(held[0][0], held[0][1])
                for o, ht in held[:-1]:
                    track.add(o, ht)
            elif track is not None:
                track.settle()
            if track is None:
                track = self._new_track(obs, t)
            track.add(obs, t)
            label = self.decision(track)
            faces.append(TrackedFace(track.id, CANT_TELL if obs.problem else label, obs))
            confident = label not in (DECIDING, CANT_TELL)
            if confident and not track.decided and track.frames >= self.min_frames:
                track.decided = True
                decided.append(self._appearance(track))
        return Step(faces, decided, self._close(ended + self._end(t), decided))

    def _new_track(self, obs: Observation, t: float) -> Track:
        track = Track(self._next_id, obs.box, None, t, t)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _dissents(self, track: Track, obs: Observation) -> bool:
        """``obs`` votes for another answer than the track's decision, and does not look
        like the track's face."""
        if self.split_below is None or not track.decided or obs.problem is not None:
            return False
        if track.embedding is None or obs.embedding is None:
            return False
        label = self.decision(track)
        if label in (DECIDING, CANT_TELL) or (obs.name or UNKNOWN) == label:
            return False
        return float(track.embedding @ obs.embedding) < self.split_below

    def finish(self) -> Step:
        """End every open track (the source ended)."""
        ended, self.tracks = self.tracks, []
        decided: list[Appearance] = []
        return Step([], decided, self._close(ended, decided))

    def _close(self, tracks: list[Track], decided: list[Appearance]) -> list[Appearance]:
        """The appearances of ended tracks; those never decided are decided now."""
        out = []
        for tr in tracks:
            tr.settle()
            if tr.frames < self.min_frames:
                continue
            out.append(self._appearance(tr))
            if not tr.decided:
                tr.decided = True
                decided.append(out[-1])
        return out

    def _appearance(self, tr: Track) -> Appearance:
        label = self.decision(tr)
        if label in (DECIDING, CANT_TELL):
            # not confident: a stranger if most votes said so, else unclear
            status = "unclear" if not tr.votes else "unknown"
            name, key = None, UNKNOWN
        elif label == UNKNOWN:
            status, name, key = "unknown", None, UNKNOWN
        else:
            status, name, key = "known", label, label
        scores = tr.scores.get(key) or [s for v in tr.scores.values() for s in v] or [0.0]
        return Appearance(
            track_id=tr.id,
            name=name,
            status=status,
            first_seen=tr.first_seen,
            last_seen=tr.last_seen,
            frames=tr.frames,
            best_score=float(max(scores)),
            mean_score=float(np.mean(scores)),
            box=tr.box,
            votes=dict(tr.votes),
        )
