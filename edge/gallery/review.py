"""Corrections on kept appearances, and recurring visitors: what a person reviewing says.

- **confirm**: the appearance was who it said (or ``name``): its face is enrolled;
- **rename**: it was someone else ("this was Ben"): enrolled as them, and kept as a
  negative of the name it was given (see :mod:`edge.gallery.negatives`);
- **reject**: it was not who it said ("not Ada"): a negative of that name, so the same
  face is not named so again, and the appearance becomes unknown;
- **delete**: erased for good.

Each is one gallery transaction (the enrolment, the negative and the mark together).
Unknown appearances whose faces match each other (their cosine at the lens's
threshold, linked transitively) are one *visitor*; naming a visitor enrols the person from the
group's best distinct views (:func:`edge.faces.quality.select_views`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.base.errors import GalleryError, NotKeptError
from edge.base.names import check_name
from edge.base.numeric import l2_normalize
from edge.faces.quality import FaceQuality, View, select_views
from edge.gallery.enroll import MAX_VIEWS, NEAR_DUPLICATE
from edge.gallery.recent import Kept, Recent
from edge.gallery.store import Gallery
from edge.model.bundle import Bundle


class Reviewed(Protocol):
    """What corrections need of :class:`edge.FaceLens` (it lives in a room above)."""

    @property
    def gallery(self) -> Gallery: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def bundle(self) -> Bundle: ...

    def reload(self, enrolled: Iterable[str] = ()) -> None: ...


@dataclass(frozen=True)
class Visitor:
    """Unknown appearances of one face: ``number`` is its first appearance's id."""

    number: int
    appearances: list[Kept]  # newest first

    @property
    def last(self) -> Kept:
        return self.appearances[0]

    def describe(self) -> str:
        """``visitor 3: seen 5 times, last Tue 14 May 18:02 at door``."""
        times = "once" if len(self.appearances) == 1 else f"{len(self.appearances)} times"
        return f"visitor {self.number}: seen {times}, last {self.last.when} at {self.last.camera}"


class Review:
    """Corrections and visitors over one lens's gallery (use :attr:`edge.FaceLens.review`)."""

    def __init__(self, lens: Reviewed) -> None:
        self.lens = lens
        self.recent = Recent(lens.gallery)

    def _enrol(self, name: str, embeddings: np.ndarray) -> None:
        bundle = self.lens.bundle
        self.lens.gallery.add(name, embeddings, self.lens.fingerprint, bundle.name, bundle.path)

    def _done(self, *enrolled: str) -> None:
        self.lens.reload(enrolled)  # the lens tells its listeners (events, fleet) who came

    def confirm(self, kept_id: int, name: str | None = None) -> Kept:
        """It was ``name`` (default: who it was named): enrol its face as them."""
        kept = self.recent.get(kept_id)
        name = check_name(name if name is not None else _named(kept, "confirm"))
        face = self.recent.face(kept)
        with self.lens.gallery.transaction() as conn:
            self._enrol(name, face.embedding)
            self.recent.mark(conn, kept.id, name, "confirmed")
        self._done(name)
        return self.recent.get(kept.id)

    def rename(self, kept_id: int, name: str) -> Kept:
        """It was ``name``, not who it was named: enrol it as them, a negative of the other."""
        kept = self.recent.get(kept_id)
        name = check_name(name)
        face = self.recent.face(kept)
        with self.lens.gallery.transaction() as conn:
            if kept.name is not None and kept.name != name:
                self.recent.add_negative(conn, kept.name, face.embedding, self.lens.fingerprint)
            self._enrol(name, face.embedding)
            self.recent.mark(conn, kept.id, name, "renamed")
        self._done(name)
        return self.recent.get(kept.id)

    def reject(self, kept_id: int) -> Kept:
        """It was not who it was named: never name this face so again; it becomes unknown."""
        kept = self.recent.get(kept_id)
        wrong = _named(kept, "reject")
        face = self.recent.face(kept)
        with self.lens.gallery.transaction() as conn:
            self.recent.add_negative(conn, wrong, face.embedding, self.lens.fingerprint)
            self.recent.mark(conn, kept.id, None, f"not {wrong}")
        self._done()
        return self.recent.get(kept.id)

    def delete(self, kept_id: int) -> int:
        """Erase the appearance for good."""
        self.recent.get(kept_id)  # a clear error for an id not kept
        return self.recent.delete([kept_id])

    # -- visitors -------------------------------------------------------------------------

    def visitors(self, threshold: float) -> list[Visitor]:
        """Unknown appearances grouped by face (cosine ``threshold``), most seen first."""
        return self._visitors(threshold)[0]

    def _visitors(self, threshold: float) -> tuple[list[Visitor], dict[int, np.ndarray]]:
        """The visitors, and the embedding of each appearance (decrypted once)."""
        unknown = [k for k in self.recent.list("unknown") if k.fingerprint == self.lens.fingerprint]
        if not unknown:
            return [], {}
        faces = l2_normalize(np.stack([self.recent.face(k).embedding for k in unknown]))
        alike = faces @ faces.T >= threshold
        group = list(range(len(unknown)))  # union-find over "alike" pairs

        def root(i: int) -> int:
            while group[i] != i:
                group[i] = group[group[i]]
                i = group[i]
            return i

        for i, j in zip(*np.nonzero(alike), strict=True):
            group[root(int(i))] = root(int(j))
        members: dict[int, list[Kept]] = {}
        for i, kept in enumerate(unknown):  # newest first, as listed
            members.setdefault(root(i), []).append(kept)
        found = [Visitor(min(k.id for k in v), v) for v in members.values()]
        ordered = sorted(found, key=lambda v: (-len(v.appearances), -v.last.seen))
        return ordered, {k.id: face for k, face in zip(unknown, faces, strict=True)}

    def name_visitor(self, number: int, name: str, threshold: float) -> list[Kept]:
        """Enrol visitor ``number`` as ``name`` from its best distinct views; those views."""
        visitors, embeddings = self._visitors(threshold)
        visitor = next((v for v in visitors if v.number == number), None)
        if visitor is None:
            raise NotKeptError(
                f"no visitor {number} among the recent unknown appearances (named, deleted or "
                "expired meanwhile?): `edge recent --visitors` lists them"
            )
        name = check_name(name)
        views = [
            View(
                str(k.id),
                FaceQuality(k.size, k.sharpness, None, None, None),
                embeddings[k.id],
            )
            for k in visitor.appearances
        ]
        distance = NEAR_DUPLICATE * (1.0 - self.lens.bundle.threshold)
        kept = select_views(views, MAX_VIEWS, distance).kept
        with self.lens.gallery.transaction() as conn:
            self._enrol(name, np.stack([v.embedding for v in kept]))
            for k in visitor.appearances:
                self.recent.mark(conn, k.id, name, "confirmed")
        self._done(name)
        return [self.recent.get(int(v.source)) for v in kept]


def _named(kept: Kept, what: str) -> str:
    if kept.name is None:
        raise GalleryError(
            f"recent appearance #{kept.id} was not named, so there is no one to {what}: "
            "give the name it was (confirm NAME, or rename)"
        )
    return kept.name
