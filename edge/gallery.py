"""The gallery: enrolled people's embeddings in SQLite, encrypted at rest.

Face embeddings are biometric data, so:

- each embedding is encrypted with AES-256-GCM under a random 96-bit nonce, with
  associated data binding it to its person, bundle fingerprint and size (a row
  copied to another person or model fails to decrypt);
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
from collections.abc import Iterator
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

SCHEMA_VERSION = 1
KEY_ENV = "FACELENS_KEY"
_KEY_CHECK = b"facelens gallery key check"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_person ON embeddings (person);
"""


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
                if tables and "embeddings" not in tables:  # someone else's database
                    conn.close()
                    raise sqlite3.DatabaseError(f"it holds other tables: {sorted(tables)[:5]}")
                conn.executescript(_SCHEMA)
                version = conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                raise GalleryError(
                    f"{self.path} is not a facelens gallery ({exc}); pass another --gallery "
                    "or restore it from a backup"
                ) from exc
            if version is not None and int(version[0]) != SCHEMA_VERSION:
                raise GalleryError(
                    f"{self.path} has gallery schema {version[0]}; this facelens reads "
                    f"{SCHEMA_VERSION}: use the facelens version that wrote it"
                )
            self._conn = conn
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
            "SELECT person, COUNT(*), fingerprint, MIN(created) FROM embeddings "
            "GROUP BY person, fingerprint ORDER BY person"
        )
        return [PersonInfo(*row) for row in rows]

    def fingerprint(self) -> str | None:
        """The fingerprint of the bundle this gallery's embeddings were made with."""
        rows = self._query("SELECT DISTINCT fingerprint FROM embeddings LIMIT 1")
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
        """Decrypt every embedding made with the bundle ``fingerprint``."""
        self.check_bundle(fingerprint, bundle_name)
        rows = self._query(
            "SELECT person, dim, nonce, ciphertext FROM embeddings ORDER BY person, id"
        )
        if not rows:
            return Enrolled([], np.zeros((0, 0), np.float32))
        aes = AESGCM(self._load_key(create=False))
        names, vectors = [], []
        for person, dim, nonce, ciphertext in rows:
            try:
                plain = aes.decrypt(nonce, ciphertext, _associated(person, fingerprint, dim))
            except InvalidTag:
                raise GalleryError(
                    f"an embedding of {person!r} in {self.path} fails authentication: the "
                    "gallery was tampered with; `edge forget` that person and re-enrol them"
                ) from None
            names.append(person)
            vectors.append(np.frombuffer(plain, np.float32))
        return Enrolled(names, np.stack(vectors))

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
        if not person.strip():
            raise GalleryError("a person's name cannot be empty")
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        self._connect()
        self.check_bundle(fingerprint, bundle_name)
        aes = AESGCM(self._load_key(create=True))
        dim = vectors.shape[1]
        try:
            with self._transaction() as conn:
                self._init_meta(conn, fingerprint, bundle_name)
                for vector in vectors:
                    nonce = secrets.token_bytes(12)
                    ciphertext = aes.encrypt(
                        nonce, vector.tobytes(), _associated(person, fingerprint, dim)
                    )
                    conn.execute(
                        "INSERT INTO embeddings (person, fingerprint, dim, nonce, ciphertext, "
                        "created) VALUES (?, ?, ?, ?, ?, ?)",
                        (person, fingerprint, dim, nonce, ciphertext, _now()),
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
                cursor = conn.execute("DELETE FROM embeddings WHERE person = ?", (person,))
                removed = cursor.rowcount
            if removed:
                # secure_delete zeroed the freed cells; VACUUM also drops freed pages.
                self._conn.execute("VACUUM")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"cannot write to the gallery {self.path} ({exc})") from exc
        return removed


def _associated(person: str, fingerprint: str, dim: int) -> bytes:
    return json.dumps([person, fingerprint, int(dim)]).encode()


def _cohort_associated(fingerprint: str, dim: int) -> bytes:
    return b"cohort " + _associated("", fingerprint, dim)  # never a person's row
