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
import errno
import json
import logging
import os
import secrets
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.base.errors import GalleryError
from edge.base.names import check_name, lookup_name
from edge.base.paths import cannot_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
MIN_FREE_BYTES = 1 << 20  # what a few encrypted embeddings and their journal need
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction
# sqlite3 decodes SQLite's own messages as UTF-8: a damaged file can make that fail too
_DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)
KEY_ENV = "FACELENS_KEY"
_KEY_CHECK = b"facelens gallery key check"
_TABLES = """
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
# Made in one transaction, so writers starting together on a new file see all or none.
_SCHEMA = f"BEGIN IMMEDIATE;{_TABLES}COMMIT;"
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
        self._writable = False
        self._opened = 0  # connections opened so far: data_version is per connection
        self._key: bytes | None = None
        self._connect(write=False)  # a file that is not a gallery is refused right away

    # -- connection -------------------------------------------------------------------
    # Reading never creates or changes anything (``people`` on another program's SQLite
    # file leaves it as it was); the schema is made in one transaction on the first
    # write, so writers starting together on a new file all see all of it or none.

    def _connect(self, write: bool = True) -> sqlite3.Connection | None:
        """The open connection (read-only unless ``write``); ``None``: no gallery file yet."""
        if self._conn is not None and (self._writable or not write):
            return self._conn
        self.close()
        if not write and not self.path.exists():
            return None
        # A crash mid-write leaves a hot journal that only a read-write open rolls back; a
        # read-only open of such a file fails, so open it read-write (it repairs it).
        write = write or self._hot_journal()
        conn = self._open_file(write)
        try:
            legacy = self._prepare(conn, write)
        except BaseException:
            conn.close()
            raise
        self._conn, self._writable = conn, write
        self._opened += 1
        if legacy:  # schema 1: upgraded once, which needs a write connection and the key
            if not write:
                return self._connect(write=True)
            try:
                self._upgrade_v1()
            except BaseException:
                self.close()
                raise
        return conn

    def _open_file(self, write: bool) -> sqlite3.Connection:
        """A connection to the gallery file, created (0600) for writing when missing."""
        # FaceLens serialises calls from several threads with its own lock, so the
        # connection may be used by a thread other than the one that opened it.
        options = {"isolation_level": None, "timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():  # 0600 before SQLite touches it (no O_EXCL:
                    # writers racing on a new gallery may all get here)
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                return sqlite3.connect(self.path, **options)
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            return sqlite3.connect(uri, uri=True, **options)
        except OSError as exc:
            raise GalleryError(
                f"cannot {'create' if write else 'open'} the gallery {self.path} "
                f"({exc.strerror or exc}); {_os_advice(exc)}"
            ) from exc
        except _DB_ERRORS as exc:
            raise self._sqlite_error(exc, "open") from exc

    def _prepare(self, conn: sqlite3.Connection, write: bool) -> bool:
        """Check ``conn`` holds a facelens gallery of a schema this version reads (making
        the schema in a new file when ``write``); True: it is schema 1, to upgrade."""
        # A damaged file may hold text that is not UTF-8: show it replaced, do not crash.
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if tables and not tables & {"chunks", _V1_TABLE}:  # someone else's database
                raise GalleryError(
                    f"{self.path} is not a facelens gallery (it holds other tables: "
                    f"{', '.join(sorted(tables)[:5])}); pass another --gallery"
                )
            if write:
                conn.execute("PRAGMA secure_delete = ON")
                if not tables & {"chunks", _V1_TABLE}:
                    conn.executescript(_SCHEMA)
            version = (
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if tables or write
                else None
            )
        except _DB_ERRORS as exc:
            raise self._sqlite_error(exc, "open") from exc
        if version is not None and str(version[0]) not in ("1", str(SCHEMA_VERSION)):
            raise GalleryError(
                f"{self.path} has gallery schema {str(version[0])[:20]!r}; this facelens reads "
                f"{SCHEMA_VERSION}: use the facelens version that wrote it, or pass another "
                "--gallery"
            )
        return _V1_TABLE in tables

    def _hot_journal(self) -> bool:
        journal = self.path.with_name(self.path.name + "-journal")
        try:
            return journal.stat().st_size > 0
        except OSError:
            return False

    def version(self) -> tuple[int, int] | None:
        """Changes when any process commits to the gallery (``None``: no file yet).

        SQLite's ``data_version`` moves when another connection commits; this
        connection's own writes are followed by whoever made them.
        """
        conn = self._connect(write=False)
        if conn is None:
            return None
        try:
            return self._opened, conn.execute("PRAGMA data_version").fetchone()[0]
        except _DB_ERRORS as exc:
            raise self._sqlite_error(exc, "read") from exc

    def _sqlite_error(self, exc: Exception, action: str) -> GalleryError:
        """What an SQLite failure means for the user, with advice that is true for it."""
        if isinstance(exc, UnicodeDecodeError):  # SQLite quoting a damaged schema
            return GalleryError(
                f"{self.path} is not a facelens gallery (its schema is damaged); pass another "
                "--gallery, or restore the file from a backup if it was one"
            )
        text = " ".join(str(exc).split())[:200]  # one line, whatever SQLite quotes
        code = getattr(exc, "sqlite_errorcode", None)
        if "locked" in text or "busy" in text:
            advice = (
                f"another process has held it for {BUSY_TIMEOUT_S:.0f} s; wait for it to finish "
                "and try again (nothing was changed)"
            )
        elif "disk is full" in text or code == 13:  # SQLITE_FULL
            advice = "the disk is full: free some space and try again (nothing was changed)"
        elif "readonly" in text or code == 8:  # SQLITE_READONLY
            advice = (
                "the file or its folder is read-only: make both writable (a crash may have "
                "left a journal that needs them writable to be rolled back; nothing was lost)"
            )
        elif "disk I/O error" in text:
            advice = (
                "the disk may be full or failing: free some space, check the disk, and try "
                "again (nothing was changed)"
            )
        elif "unable to open" in text:
            advice = "check the path and its permissions"
        elif "not a database" in text or "malformed" in text:
            return GalleryError(
                f"{self.path} is not a facelens gallery ({text}); pass another --gallery, or "
                "restore the file from a backup if it was one"
            )
        else:
            advice = "check the disk and the file's permissions"
        return GalleryError(f"cannot {action} the gallery {self.path} ({text}): {advice}")

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
        conn = self._connect(write=True)
        assert conn is not None
        if conn.in_transaction:  # inside a caller's transaction: join it (one commit)
            yield conn
            return
        try:
            try:
                self._begin(conn)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except _DB_ERRORS as exc:
            raise self._sqlite_error(exc, "write to") from exc

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE; when another process holds the lock, say so before waiting."""
        conn.execute("PRAGMA busy_timeout = 500")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            log.warning(
                "the gallery %s is in use by another process; waiting up to %.0f s",
                self.path,
                BUSY_TIMEOUT_S,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("BEGIN IMMEDIATE")

    def check_writable(self) -> None:
        """Refuse now, before minutes of work, a gallery that could not store the result.

        Changes nothing, not even the file's change counter: a refused command leaves the
        gallery byte-identical. A new gallery's folder is probed with a temporary file.
        """
        folder = next(p for p in [self.path.parent, *self.path.parents] if p.exists())
        if not self.path.exists():
            exc = cannot_write(self.path.parent)
            if exc is not None:
                raise GalleryError(
                    f"cannot create the gallery {self.path} ({exc.strerror or exc}); "
                    f"{_os_advice(exc)}"
                ) from exc
        elif not (os.access(self.path, os.W_OK) and os.access(folder, os.W_OK)):
            raise GalleryError(
                f"the gallery {self.path} is read-only (SQLite needs to write the file and "
                "its folder): make them writable (another --gallery is another, empty gallery)"
            )
        if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
            raise GalleryError(
                f"the disk holding {self.path} is full: free some space and try again"
            )
        if self.path.exists():
            conn = self._connect(write=True)
            assert conn is not None
            try:  # waits out (or reports) another process's write lock; writes nothing
                self._begin(conn)
                conn.execute("ROLLBACK")
            except _DB_ERRORS as exc:
                raise self._sqlite_error(exc, "write to") from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect(write=False)
        if conn is None:  # no file yet: an empty gallery
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except _DB_ERRORS as exc:
            if "no such table" in str(exc):  # an empty SQLite file: an empty gallery
                return []
            raise self._sqlite_error(exc, "read") from exc

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
        elif self.key_path.is_file() or (check is None and create and self._create_key()):
            key = self._read_key_file()
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

    def _read_key_file(self) -> bytes:
        if self.key_path.stat().st_mode & 0o077:
            log.warning("key file %s is readable by others: chmod 600 it", self.key_path)
        try:
            text = self.key_path.read_bytes()[:1024].decode("ascii")
        except UnicodeDecodeError:
            raise GalleryError(
                f"the key file {self.key_path} is not a text key (it holds binary bytes): "
                f"restore the key it was created with, or set ${KEY_ENV}"
            ) from None
        except OSError as exc:
            raise GalleryError(
                f"cannot read the key file {self.key_path} ({exc.strerror}); check its permissions"
            ) from exc
        try:
            return parse_key(text)
        except GalleryError:
            raise GalleryError(
                f"the key file {self.key_path} does not hold a 32-byte key (64 hex characters "
                "or base64): restore the key it was created with"
            ) from None

    def _create_key(self) -> bool:
        """Write a new random key file, atomically: writers racing on a new gallery all end
        up with the one key that won (a complete file, never a half-written one)."""
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".key-", dir=self.key_path.parent)
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp files are 0600
                f.write(secrets.token_bytes(32).hex() + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.key_path)
                log.info("created the gallery key %s (mode 0600)", self.key_path)
            except FileExistsError:
                pass  # another writer made it first: use theirs
        finally:
            os.unlink(tmp)
        return True

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
        self,
        person: str,
        embeddings: np.ndarray,
        fingerprint: str,
        bundle_name: str = "",
        bundle_path: Path | str | None = None,
    ) -> int:
        """Enrol ``person`` with one or more embeddings, all in one transaction."""
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        return self.add_many(
            [person] * len(vectors), vectors, fingerprint, bundle_name, bundle_path
        )

    def add_many(
        self,
        names: Sequence[str],
        embeddings: np.ndarray,
        fingerprint: str,
        bundle_name: str = "",
        bundle_path: Path | str | None = None,
    ) -> int:
        """Enrol many people at once (row ``i`` is ``names[i]``'s), all in one transaction.

        Each person's rows become one encrypted chunk; this is how a large gallery is
        imported without a transaction (and a disk sync) per person.
        """
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        if len(names) != len(vectors):
            raise GalleryError(f"{len(names)} names for {len(vectors)} embeddings")
        if vectors.ndim != 2 or not vectors.size or not np.isfinite(vectors).all():
            raise GalleryError("embeddings must be a non-empty finite (N, D) array")
        rows_of: dict[str, list[int]] = {}
        for i, person in enumerate(names):
            rows_of.setdefault(check_name(person), []).append(i)
        self._connect(write=True)
        self.check_bundle(fingerprint, bundle_name)
        aes = AESGCM(self._load_key(create=True))
        dim, created = vectors.shape[1], _now()
        with self._transaction() as conn:
            self._init_meta(conn, fingerprint, bundle_name, bundle_path)
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
        return len(vectors)

    def _init_meta(
        self,
        conn: sqlite3.Connection,
        fingerprint: str,
        bundle_name: str,
        bundle_path: Path | str | None,
    ) -> None:
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
            if bundle_path is not None:  # so later commands find it without --bundle
                path = str(Path(bundle_path).resolve())
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('bundle_path', ?)", (path,))

    def bundle_path(self) -> Path | None:
        """The bundle folder this gallery was first enrolled with (``None``: not known)."""
        value = self._meta("bundle_path")
        return Path(value) if value else None

    def set_threshold(
        self, fingerprint: str, info: dict[str, Any], cohort: np.ndarray | None = None
    ) -> None:
        """Store a calibrated threshold (``info["cosine"]`` and how it was chosen).

        ``cohort`` (impostor embeddings for open-set scoring) is stored encrypted in the
        same transaction, replacing any earlier one; without it an earlier one is dropped.
        """
        self._connect(write=True)
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
                self._init_meta(conn, fingerprint, "", None)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"threshold:{fingerprint}", json.dumps(info, sort_keys=True)),
            )
            conn.execute("DELETE FROM meta WHERE key = ?", (f"cohort:{fingerprint}",))
            if blob is not None:
                conn.execute("INSERT INTO meta VALUES (?, ?)", (f"cohort:{fingerprint}", blob))

    def forget(self, person: str) -> int:
        """Erase every embedding of ``person`` for good; returns how many were removed."""
        person = lookup_name(person)
        if not any(p.name == person for p in self.people()):
            return 0  # nothing to erase: do not touch (or create) the file
        with self._transaction() as conn:
            (removed,) = conn.execute(
                "SELECT COALESCE(SUM(count), 0) FROM chunks WHERE person = ?", (person,)
            ).fetchone()
            conn.execute("DELETE FROM chunks WHERE person = ?", (person,))
        if removed:
            self.compact()
        return removed

    # -- what else the file keeps (edge.gallery.recent) ---------------------------------

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; gallery writes made inside it join it (one commit)."""
        return self._transaction()

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read (none when the file or the table does not exist yet)."""
        return self._query(sql, args)

    def cipher(self, fingerprint: str, create: bool = True) -> AESGCM:
        """The gallery's AES-256-GCM (with ``create``, the key and its check made if new)."""
        if not create:
            return AESGCM(self._load_key(create=False))
        self._connect(write=True)
        aes = AESGCM(self._load_key(create=True))
        if self._meta("key_check") is None:
            with self._transaction() as conn:
                self._init_meta(conn, fingerprint, "", None)
        return aes

    def compact(self) -> None:
        """After a delete: secure_delete zeroed the freed cells; VACUUM also drops freed pages."""
        try:
            self._connect(write=True).execute("VACUUM")
        except _DB_ERRORS as exc:
            raise self._sqlite_error(exc, "compact") from exc

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
            for statement in filter(str.strip, _TABLES.split(";")):
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


def _os_advice(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only: pass a --gallery in a folder you can write to"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full: free some space and try again"
    return "check the path"


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
