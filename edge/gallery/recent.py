"""Recent appearances, kept on purpose, and the "not them" examples corrections leave.

Off unless asked for (``--keep-recent DAYS``): most faces a camera sees are of people who
never agreed to be kept. When on, each appearance's best face is kept in the gallery's
own file, so the gallery's guarantees hold for it:

- its embedding and a small JPEG thumbnail are one AES-256-GCM ciphertext under the
  gallery's key, bound (associated data) to the bundle, camera and time it was seen;
  camera, time, decision and score are in clear, like the gallery's names;
- an appearance older than the days kept, or deleted, is erased for good: deleted with
  ``secure_delete``, then the file vacuumed, as ``forget`` does;
- a *negative* ("not Ada": a face someone said was not Ada) is an encrypted embedding
  bound to the person it is not; forgetting the person erases their negatives and
  their appearances.

:mod:`edge.gallery.review` makes the corrections; this module only keeps and erases.
"""

from __future__ import annotations

import secrets
import struct
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag

from edge.base.errors import GalleryError, NotKeptError
from edge.base.names import lookup_name
from edge.gallery.store import Gallery

DAY_S = 86400.0
_TABLES = (
    """CREATE TABLE IF NOT EXISTS recent (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        camera TEXT NOT NULL,
        seen REAL NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        frames INTEGER NOT NULL,
        name TEXT,
        status TEXT NOT NULL,
        score REAL NOT NULL,
        size REAL NOT NULL,
        sharpness REAL NOT NULL,
        corrected TEXT,
        fingerprint TEXT NOT NULL,
        dim INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS negatives (
        id INTEGER PRIMARY KEY,
        person TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        dim INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created REAL NOT NULL
    )""",
)
_COLUMNS = "id, camera, seen, first_seen, last_seen, frames, name, status, score, size, "
_COLUMNS += "sharpness, corrected, fingerprint, dim"


@dataclass(frozen=True)
class Kept:
    """One kept appearance: where and when, what was decided, and (after a correction)
    what the person reviewing it said (``confirmed``, ``renamed``, ``rejected``)."""

    id: int
    camera: str
    seen: float  # epoch seconds when it was kept (what expiry counts from)
    first_seen: float  # the appearance's own times: video seconds, or epoch seconds
    last_seen: float
    frames: int
    name: str | None
    status: str  # "known", "unknown" or "unclear"
    score: float
    size: float  # the face's shorter side, px
    sharpness: float
    corrected: str | None
    fingerprint: str
    dim: int

    @property
    def when(self) -> str:
        """When it was kept, in local time, as people read it."""
        return datetime.fromtimestamp(self.seen).strftime("%a %d %b %H:%M")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seen"] = datetime.fromtimestamp(self.seen, timezone.utc).isoformat(timespec="seconds")
        for key in ("score", "size", "sharpness"):
            d[key] = round(d[key], 4)
        for key in ("fingerprint", "dim"):
            d.pop(key)
        return d


@dataclass(frozen=True)
class Face:
    """What is kept of an appearance's best face (decrypted)."""

    embedding: np.ndarray
    thumbnail: bytes  # JPEG


class Recent:
    """Kept appearances and negatives in ``gallery``'s file (see the module)."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery

    def _tables(self, conn: Any) -> None:
        for sql in _TABLES:
            conn.execute(sql)

    # -- appearances ----------------------------------------------------------------------

    def keep(
        self,
        camera: str,
        appearance: dict[str, Any],
        face: Face,
        fingerprint: str,
        quality: tuple[float, float],
        seen: float | None = None,
    ) -> int:
        """Keep one appearance (``Appearance.to_dict()`` fields) and its best face; its id."""
        seen = time.time() if seen is None else float(seen)
        embedding = np.ascontiguousarray(face.embedding, np.float32).ravel()
        aes = self.gallery.cipher(fingerprint)
        nonce = secrets.token_bytes(12)
        ad = _associated(camera, seen, fingerprint, len(embedding))
        sealed = aes.encrypt(nonce, embedding.tobytes() + face.thumbnail, ad)
        a = appearance
        row = (camera, seen, a["first_seen"], a["last_seen"], a["frames"], a["name"])
        row += (a["status"], a["best_score"], *quality, fingerprint, len(embedding))
        with self.gallery.transaction() as conn:
            self._tables(conn)
            cursor = conn.execute(
                "INSERT INTO recent (camera, seen, first_seen, last_seen, frames, name, status, "
                "score, size, sharpness, fingerprint, dim, nonce, sealed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, nonce, sealed),
            )
            return int(cursor.lastrowid)

    def list(self, status: str | None = None) -> list[Kept]:
        """Every kept appearance, newest first (``status``: only those, e.g. ``unknown``)."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self.gallery.query(f"SELECT {_COLUMNS} FROM recent {where} ORDER BY id DESC", args)
        return [Kept(*row) for row in rows]

    def get(self, kept_id: int) -> Kept:
        """One kept appearance, or a :class:`NotKeptError` saying it is not kept."""
        rows = self.gallery.query(f"SELECT {_COLUMNS} FROM recent WHERE id = ?", (int(kept_id),))
        if not rows:
            raise NotKeptError(
                f"no recent appearance #{kept_id} in {self.gallery.path} (deleted, expired or "
                "never kept): `edge recent` lists them"
            )
        return Kept(*rows[0])

    def face(self, kept: Kept) -> Face:
        """The kept appearance's embedding and thumbnail, decrypted."""
        rows = self.gallery.query("SELECT nonce, sealed FROM recent WHERE id = ?", (kept.id,))
        if not rows:
            raise GalleryError(f"recent appearance #{kept.id} was erased meanwhile")
        aes = self.gallery.cipher(kept.fingerprint, create=False)
        ad = _associated(kept.camera, kept.seen, kept.fingerprint, kept.dim)
        try:
            plain = aes.decrypt(rows[0][0], rows[0][1], ad)
        except InvalidTag:
            raise GalleryError(
                f"recent appearance #{kept.id} in {self.gallery.path} fails authentication: "
                "the gallery was tampered with; delete it (`edge recent --delete`)"
            ) from None
        cut = kept.dim * 4
        return Face(np.frombuffer(plain[:cut], np.float32).copy(), plain[cut:])

    def mark(self, conn: Any, kept_id: int, name: str | None, corrected: str) -> None:
        """Record a correction on an appearance (inside the correction's transaction)."""
        status = "known" if name is not None else "unknown"
        conn.execute(
            "UPDATE recent SET name = ?, status = ?, corrected = ? WHERE id = ?",
            (name, status, corrected, int(kept_id)),
        )

    def delete(self, kept_ids: list[int]) -> int:
        """Erase these appearances for good; how many there were."""
        ids = [int(i) for i in kept_ids]
        if not ids or not self.gallery.query("SELECT 1 FROM recent LIMIT 1"):
            return 0
        with self.gallery.transaction() as conn:
            marks = ",".join("?" * len(ids))
            removed = conn.execute(f"DELETE FROM recent WHERE id IN ({marks})", ids).rowcount
        if removed:
            self.gallery.compact()
        return removed

    def expire(self, days: float, now: float | None = None) -> int:
        """Erase for good every appearance kept more than ``days`` ago; how many."""
        cutoff = (time.time() if now is None else now) - days * DAY_S
        if not self.gallery.query("SELECT 1 FROM recent WHERE seen < ? LIMIT 1", (cutoff,)):
            return 0  # nothing to erase: no write, no vacuum
        with self.gallery.transaction() as conn:
            removed = conn.execute("DELETE FROM recent WHERE seen < ?", (cutoff,)).rowcount
        self.gallery.compact()
        return removed

    # -- negatives ------------------------------------------------------------------------

    def add_negative(self, conn: Any, person: str, embedding: np.ndarray, fingerprint: str) -> None:
        """Record that ``embedding`` is not ``person`` (inside the caller's transaction)."""
        vector = np.ascontiguousarray(embedding, np.float32).ravel()
        aes = self.gallery.cipher(fingerprint)
        nonce = secrets.token_bytes(12)
        sealed = aes.encrypt(
            nonce, vector.tobytes(), _negative_ad(person, fingerprint, len(vector))
        )
        self._tables(conn)
        conn.execute(
            "INSERT INTO negatives (person, fingerprint, dim, nonce, ciphertext, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (person, fingerprint, len(vector), nonce, sealed, time.time()),
        )

    def negatives(self, fingerprint: str) -> dict[str, np.ndarray]:
        """Each person's negatives made with the bundle ``fingerprint``, decrypted."""
        rows = self.gallery.query(
            "SELECT person, dim, nonce, ciphertext FROM negatives WHERE fingerprint = ? "
            "ORDER BY id",
            (fingerprint,),
        )
        if not rows:
            return {}
        aes = self.gallery.cipher(fingerprint, create=False)
        found: dict[str, list[np.ndarray]] = {}
        for person, dim, nonce, sealed in rows:
            try:
                plain = aes.decrypt(nonce, sealed, _negative_ad(person, fingerprint, dim))
            except InvalidTag:
                raise GalleryError(
                    f"a 'not {person}' example in {self.gallery.path} fails authentication: "
                    f"the gallery was tampered with; `edge forget` {person!r} and re-enrol them"
                ) from None
            found.setdefault(person, []).append(np.frombuffer(plain, np.float32))
        return {person: np.stack(v) for person, v in found.items()}

    def forget(self, person: str, compact: bool = True) -> int:
        """Erase ``person``'s negatives and the appearances named ``person`` (and their name
        from the notes of rejections); how many appearances and negatives went. With
        ``compact=False`` the caller compacts the file (one VACUUM after several deletes)."""
        person = lookup_name(person)
        note = f"not {person}"
        has = self.gallery.query(
            "SELECT (SELECT COUNT(*) FROM negatives WHERE person = ?) + "
            "(SELECT COUNT(*) FROM recent WHERE name = ? OR corrected = ?)",
            (person, person, note),
        )
        if not has or not has[0][0]:
            return 0
        with self.gallery.transaction() as conn:
            removed = conn.execute("DELETE FROM negatives WHERE person = ?", (person,)).rowcount
            removed += conn.execute("DELETE FROM recent WHERE name = ?", (person,)).rowcount
            conn.execute("UPDATE recent SET corrected = 'rejected' WHERE corrected = ?", (note,))
        if compact:
            self.gallery.compact()
        return removed


def _associated(camera: str, seen: float, fingerprint: str, dim: int) -> bytes:
    """A kept face's associated data: never a chunk's, a cohort's or a negative's."""
    head = b"facelens-recent\0" + struct.pack("<Id", dim, seen)
    return head + fingerprint.encode() + b"\0" + camera.encode()


def _negative_ad(person: str, fingerprint: str, dim: int) -> bytes:
    return (
        b"facelens-negative\0"
        + struct.pack("<I", dim)
        + fingerprint.encode()
        + b"\0"
        + person.encode()
    )
