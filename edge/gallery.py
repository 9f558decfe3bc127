"""The gallery: enrolled people's embeddings in SQLite, encrypted at rest.

Face embeddings are biometric data, so:

- a person's embeddings from one enrolment are one *chunk*: a (count, dim) float32
  block encrypted with AES-256-GCM under a random 96-bit nonce, with associated data
  binding it to its person, position among that person's chunks, bundle fingerprint,
  dimension and count (a chunk copied to another person, place or model fails to
  decrypt). One chunk per enrolment rather than one row per embedding keeps opening a
  gallery of a million embeddings to seconds (``benchmarks/gallery.py``); a person is
  never mixed into another's chunk, so ``forget`` needs no key;
- the key comes from ``$FACELENS_KEY`` (32 bytes as 64 hex characters or as base64),
  else from a key file beside the gallery (``<gallery>.key``, created with mode 0600
  on first use). Keep that file out of backups that travel with the gallery;
- every row carries the fingerprint of the bundle that made it, and a gallery is
  never matched against another bundle's embeddings;
- no photo is stored; person names are stored in clear so ``people`` and
  ``forget`` work without the key;
- every write is one transaction (a crash or kill leaves the previous state), and
  ``forget`` deletes with ``secure_delete`` then ``VACUUM`` so no ciphertext remains.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import GalleryError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
KEY_ENV = "FACELENS_KEY"
_KEY_CHECK = b"facelens gallery key check"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    person TEXT NOT NULL,
    seq INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    count INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (person, seq)
);
"""
_V1_TABLE = "embeddings"  # schema 1: one row per embedding, upgraded on open
_READ_BATCH = 8192  # chunks decrypted per fetch: bounds the ciphertext held at once


def parse_key(text: str) -> bytes:
    """A 32-byte AES-256 key from 64 hex characters or base64 (standard or URL-safe)."""
    text = text.strip()
    candidates = []
    with suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == 32:
            return key
    raise GalleryError(
        f"{KEY_ENV} (or the key file) is not a 32-byte key: give 64 hex characters or base64 "
        "of 32 bytes, e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`"
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PersonInfo:
    """One enrolled person, as ``edge people`` lists them."""

    name: str
    embeddings: int
    fingerprint: str
    enrolled: str


@dataclass(frozen=True)
class Enrolled:
    """Decrypted embeddings of one bundle: row ``i`` of ``matrix`` belongs to ``names[i]``."""

    names: list[str]
    matrix: np.ndarray


class Gallery:
    """An encrypted SQLite gallery; the file and its key are created on the first write."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.key_path = self.path.with_name(self.path.name + ".key")
        self._conn: sqlite3.Connection | None = None
        self._key: bytes | None = None
        if self.path.exists():
            self._connect()

    # -- connection -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Created 0600 before SQLite touches it: only the owner may read it.
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA secure_delete = ON")
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                if tables and not tables & {"chunks", _V1_TABLE}:  # someone else's database
                    conn.close()
                    raise sqlite3.DatabaseError(f"it holds other tables: {sorted(tables)[:5]}")
                legacy = _V1_TABLE in tables
                if not legacy:
                    conn.executescript(_SCHEMA)
                version = conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                raise GalleryError(
                    f"{self.path} is not a facelens gallery ({exc}); pass another --gallery "
                    "or restore it from a backup"
                ) from exc
            if version is not None and int(version[0]) not in (1, SCHEMA_VERSION):
                conn.close()
                raise GalleryError(
                    f"{self.path} has gallery schema {version[0]}; this facelens reads "
                    f"{SCHEMA_VERSION}: use the facelens version that wrote it"
                )
            self._conn = conn
            if legacy:
                try:
                    self._upgrade_v1()
                except BaseException:
                    self.close()
                    raise
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._conn is None:  # no file yet: an empty gallery
            return []
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot read the gallery {self.path} ({exc})") from exc

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- key --------------------------------------------------------------------------

    def _key_source(self) -> str:
        return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else f"the key file {self.key_path}"

    def _load_key(self, create: bool) -> bytes:
        """The gallery's key, checked against the stored key check; created if allowed."""
        if self._key is not None:
            return self._key
        check = self._meta("key_check")
        if os.environ.get(KEY_ENV):
            key = parse_key(os.environ[KEY_ENV])
        elif self.key_path.is_file():
            if self.key_path.stat().st_mode & 0o077:
                log.warning("key file %s is readable by others: chmod 600 it", self.key_path)
            key = parse_key(self.key_path.read_text())
        elif check is None and create:
            key = secrets.token_bytes(32)
            self.key_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key.hex() + "\n")
            log.info("created the gallery key %s (mode 0600)", self.key_path)
        else:
            raise GalleryError(
                f"no key for the gallery {self.path}: set ${KEY_ENV} or restore its key file "
                f"{self.key_path}"
            )
        if check is not None:
            blob = bytes.fromhex(check)
            try:
                ok = AESGCM(key).decrypt(blob[:12], blob[12:], None) == _KEY_CHECK
            except InvalidTag:
                ok = False
            if not ok:
                raise GalleryError(
                    f"{self._key_source()} does not open the gallery {self.path} (wrong key): "
                    "use the key it was created with, or start a new gallery with --gallery"
                )
        self._key = key
        return key

    # -- reading ----------------------------------------------------------------------

    def people(self) -> list[PersonInfo]:
        """Everyone enrolled, with how many embeddings each has (no key needed)."""
        rows = self._query(
            "SELECT person, SUM(count), fingerprint, MIN(created) FROM chunks "
            "GROUP BY person, fingerprint ORDER BY person"
        )
        return [PersonInfo(*row) for row in rows]

    def fingerprint(self) -> str | None:
        """The fingerprint of the bundle this gallery's embeddings were made with."""
        rows = self._query("SELECT fingerprint FROM chunks LIMIT 1")
        return rows[0][0] if rows else None

    def check_bundle(self, fingerprint: str, bundle_name: str = "") -> None:
        """Refuse a bundle other than the one this gallery's embeddings were made with."""
        have = self.fingerprint()
        if have is not None and have != fingerprint:
            made_with = self._meta("bundle_name") or "another bundle"
            raise GalleryError(
                f"the gallery {self.path} was built with {made_with} (fingerprint {have}), "
                f"not with {bundle_name or 'this bundle'} (fingerprint {fingerprint}): pass "
                "the --bundle it was built with, or re-enrol everyone into a new --gallery"
            )

    def load(self, fingerprint: str, bundle_name: str = "") -> Enrolled:
        """Decrypt every embedding made with the bundle ``fingerprint``, in enrolment order."""
        self.check_bundle(fingerprint, bundle_name)
        sizes = self._query("SELECT SUM(count), MAX(dim) FROM chunks")
        if not sizes or not sizes[0][0]:
            return Enrolled([], np.zeros((0, 0), np.float32))
        total, dim = sizes[0]
        aes = AESGCM(self._load_key(create=False))
        matrix = np.empty((total, dim), np.float32)
        names: list[str] = []
        cursor = self._conn.execute(
            "SELECT person, seq, count, nonce, ciphertext FROM chunks ORDER BY id"
        )
        try:
            while rows := cursor.fetchmany(_READ_BATCH):
                plain = []
                for person, seq, count, nonce, ciphertext in rows:
                    ad = _associated(person, seq, fingerprint, dim, count)  # any other dim fails
                    try:
                        plain.append(aes.decrypt(nonce, ciphertext, ad))
                    except InvalidTag:
                        raise GalleryError(
                            f"an embedding of {person!r} in {self.path} fails authentication: "
                            "the gallery was tampered with; `edge forget` that person and "
                            "re-enrol them"
                        ) from None
                    names.extend([person] * count)
                block = np.frombuffer(b"".join(plain), np.float32).reshape(-1, dim)
                matrix[len(names) - len(block) : len(names)] = block
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot read the gallery {self.path} ({exc})") from exc
        return Enrolled(names, matrix)

    def threshold(self, fingerprint: str) -> dict[str, Any] | None:
        """The threshold ``edge calibrate`` stored for this bundle, with how it was chosen."""
        value = self._meta(f"threshold:{fingerprint}")
        return json.loads(value) if value else None

    def cohort(self, fingerprint: str) -> np.ndarray | None:
        """The impostor cohort ``edge calibrate`` stored for this bundle (decrypted), if any.

        The cohort is embeddings of calibration faces (no enrolled person's): open-set
        scoring normalises every score against it. It is encrypted like the rest.
        """
        value = self._meta(f"cohort:{fingerprint}")
        if not value:
            return None
        blob = base64.b64decode(value)
        rows, dim = json.loads(blob[:64].rstrip(b" "))
        try:
            plain = AESGCM(self._load_key(create=False)).decrypt(
                blob[64:76], blob[76:], _cohort_associated(fingerprint, dim)
            )
        except InvalidTag:
            raise GalleryError(
                f"the calibration cohort in {self.path} fails authentication: the gallery was "
                "tampered with; run `edge calibrate` again"
            ) from None
        return np.frombuffer(plain, np.float32).reshape(rows, dim)

    # -- writing ----------------------------------------------------------------------

    def add(
        self, person: str, embeddings: np.ndarray, fingerprint: str, bundle_name: str = ""
    ) -> int:
        """Enrol ``person`` with one or more embeddings, all in one transaction."""
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        return self.add_many([person] * len(vectors), vectors, fingerprint, bundle_name)

    def add_many(
        self,
        names: Sequence[str],
        embeddings: np.ndarray,
        fingerprint: str,
        bundle_name: str = "",
    ) -> int:
        """Enrol many people at once (row ``i`` is ``names[i]``'s), all in one transaction.

        Each person's rows become one encrypted chunk; this is how a large gallery is
        imported without a transaction (and a disk sync) per person.
        """
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        if len(names) != len(vectors):
            raise GalleryError(f"{len(names)} names for {len(vectors)} embeddings")
        rows_of: dict[str, list[int]] = {}
        for i, person in enumerate(names):
            if not person.strip():
                raise GalleryError("a person's name cannot be empty")
            rows_of.setdefault(person, []).append(i)
        self._connect()
        self.check_bundle(fingerprint, bundle_name)
        aes = AESGCM(self._load_key(create=True))
        dim, created = vectors.shape[1], _now()
        try:
            with self._transaction() as conn:
                self._init_meta(conn, fingerprint, bundle_name)
                next_seq = _next_seqs(conn, list(rows_of))
                records = []
                for person, rows in rows_of.items():
                    seq = next_seq.get(person, 0)
                    nonce = secrets.token_bytes(12)
                    ad = _associated(person, seq, fingerprint, dim, len(rows))
                    ciphertext = aes.encrypt(nonce, vectors[rows].tobytes(), ad)
                    records.append(
                        (person, seq, fingerprint, dim, len(rows), nonce, ciphertext, created)
                    )
                conn.executemany(
                    "INSERT INTO chunks (person, seq, fingerprint, dim, count, nonce, "
                    "ciphertext, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    records,
                )
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot write to the gallery {self.path} ({exc})") from exc
        return len(vectors)

    def _init_meta(self, conn: sqlite3.Connection, fingerprint: str, bundle_name: str) -> None:
        assert self._key is not None
        if self._meta("key_check") is None:
            nonce = secrets.token_bytes(12)
            check = nonce + AESGCM(self._key).encrypt(nonce, _KEY_CHECK, None)
            conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (check.hex(),))
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        if self.fingerprint() is None:  # the first embedding binds the gallery to a bundle
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('bundle_name', ?)", (bundle_name,))

    def set_threshold(
        self, fingerprint: str, info: dict[str, Any], cohort: np.ndarray | None = None
    ) -> None:
        """Store a calibrated threshold (``info["cosine"]`` and how it was chosen).

        ``cohort`` (impostor embeddings for open-set scoring) is stored encrypted in the
        same transaction, replacing any earlier one; without it an earlier one is dropped.
        """
        self._connect()
        blob = None
        if cohort is not None:
            matrix = np.ascontiguousarray(np.atleast_2d(cohort), np.float32)
            rows, dim = matrix.shape
            aes = AESGCM(self._load_key(create=True))
            nonce = secrets.token_bytes(12)
            header = json.dumps([rows, dim]).encode().ljust(64)
            sealed = aes.encrypt(nonce, matrix.tobytes(), _cohort_associated(fingerprint, dim))
            blob = base64.b64encode(header + nonce + sealed).decode()
        with self._transaction() as conn:
            if blob is not None:
                self._init_meta(conn, fingerprint, "")
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"threshold:{fingerprint}", json.dumps(info, sort_keys=True)),
            )
            conn.execute("DELETE FROM meta WHERE key = ?", (f"cohort:{fingerprint}",))
            if blob is not None:
                conn.execute("INSERT INTO meta VALUES (?, ?)", (f"cohort:{fingerprint}", blob))

    def forget(self, person: str) -> int:
        """Erase every embedding of ``person`` for good; returns how many were removed."""
        if self._conn is None:
            return 0
        try:
            with self._transaction() as conn:
                (removed,) = conn.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM chunks WHERE person = ?", (person,)
                ).fetchone()
                conn.execute("DELETE FROM chunks WHERE person = ?", (person,))
            if removed:
                # secure_delete zeroed the freed cells; VACUUM also drops freed pages.
                self._conn.execute("VACUUM")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot write to the gallery {self.path} ({exc})") from exc
        return removed

    # -- the layout of schema 1 -------------------------------------------------------

    def _upgrade_v1(self) -> None:
        """Re-encrypt a schema-1 gallery (one row per embedding) as chunks, in one transaction.

        Needs the key; without it the gallery is refused, untouched. The old rows are
        deleted with secure_delete and the file vacuumed, as ``forget`` does.
        """
        try:
            aes = AESGCM(self._load_key(create=False))
        except GalleryError as exc:
            raise GalleryError(
                f"{self.path} is a gallery of schema 1, which this facelens upgrades on first "
                f"open, and that needs its key: {exc}"
            ) from None
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT person, fingerprint, dim, nonce, ciphertext, created FROM {_V1_TABLE} "
            "ORDER BY person, id"
        ).fetchall()
        people: dict[tuple[str, str], list[tuple[bytes, str]]] = {}
        for person, fingerprint, dim, nonce, ciphertext, created in rows:
            ad = json.dumps([person, fingerprint, int(dim)]).encode()
            try:
                plain = aes.decrypt(nonce, ciphertext, ad)
            except InvalidTag:
                raise GalleryError(
                    f"an embedding of {person!r} in {self.path} fails authentication, so the "
                    "schema-1 gallery cannot be upgraded: restore it from a backup"
                ) from None
            people.setdefault((person, fingerprint), []).append((plain, created))
        with self._transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)  # executescript would commit the transaction
            for (person, fingerprint), items in people.items():
                dim = len(items[0][0]) // 4
                nonce = secrets.token_bytes(12)
                ad = _associated(person, 0, fingerprint, dim, len(items))
                ciphertext = aes.encrypt(nonce, b"".join(p for p, _ in items), ad)
                conn.execute(
                    "INSERT INTO chunks (person, seq, fingerprint, dim, count, nonce, "
                    "ciphertext, created) VALUES (?, 0, ?, ?, ?, ?, ?, ?)",
                    (person, fingerprint, dim, len(items), nonce, ciphertext, items[0][1]),
                )
            conn.execute(f"DELETE FROM {_V1_TABLE}")
            conn.execute(f"DROP TABLE {_V1_TABLE}")
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._conn.execute("VACUUM")
        log.info("upgraded %s to gallery schema %d (%d embeddings)", self.path, 2, len(rows))


def _next_seqs(conn: sqlite3.Connection, people: list[str]) -> dict[str, int]:
    """The next chunk position of each of ``people`` already enrolled (others start at 0)."""
    out: dict[str, int] = {}
    for i in range(0, len(people), 500):  # SQLite's bound-parameter limit
        part = people[i : i + 500]
        marks = ",".join("?" * len(part))
        out.update(
            conn.execute(
                f"SELECT person, MAX(seq) + 1 FROM chunks WHERE person IN ({marks}) "
                "GROUP BY person",
                part,
            ).fetchall()
        )
    return out


def _associated(person: str, seq: int, fingerprint: str, dim: int, count: int) -> bytes:
    """A chunk's associated data: fixed-size fields, then the (unbounded) person's name."""
    return (
        b"facelens-chunk\0"
        + struct.pack("<III", dim, count, seq)
        + fingerprint.encode()
        + b"\0"
        + person.encode()
    )


def _cohort_associated(fingerprint: str, dim: int) -> bytes:
    """The calibration cohort's associated data: never a person's chunk's."""
    return b"facelens-cohort\0" + struct.pack("<I", dim) + fingerprint.encode()
