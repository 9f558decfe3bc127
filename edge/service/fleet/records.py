"""A fleet's records: the fleet key, versions, and the sealed record of one person.

Every record a device publishes for the fleet is sealed with AES-256-GCM under a key
derived from the fleet key (distinct from each device's gallery key), with the record's
topic as associated data: a record moved to another person's topic, or made without the
key, fails to open and is ignored. Topics name a person by a keyed hash, never by name.

Versions are hybrid logical clocks: (wall-clock ms, counter) stamped by a device, which
never go backwards on that device and always move past every version it has seen, so
"later" is what people expect when clocks agree and still a total order when they do
not. Two versions of one person compare by (ms, counter, tombstone, device): the last
writer wins per person, a forget wins a tie (an erasure is never undone by a concurrent
change), and the device id settles the rest, so every device picks the same winner
whatever order, how often and how late the records arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.base.errors import FacelensError, GalleryError
from edge.gallery.store import parse_key

FLEET_KEY_ENV = "FACELENS_FLEET_KEY"
MAGIC = b"FLF1"  # format of a sealed record
PERSON, FORGET, CALIBRATION, MARKER = "person", "forget", "calibration", "marker"


class FleetError(FacelensError):
    """No fleet key, a malformed one, or a malformed fleet URL."""


def new_key() -> str:
    """A new fleet key: 64 hex characters (``edge fleet init`` prints it)."""
    return secrets.token_hex(32)


def key_file(gallery: Path) -> Path:
    """Where ``edge fleet join`` keeps the fleet key: beside the gallery, mode 0600."""
    return gallery.with_name(gallery.name + ".fleet-key")


def _parse(text: str, source: str) -> bytes:
    try:
        return parse_key(text)
    except GalleryError:
        raise FleetError(
            f"{source} is not a fleet key: give the 64 hex characters `edge fleet init` printed"
        ) from None


def store_key(gallery: Path, text: str) -> Path:
    """Keep ``text`` (checked) as the fleet key of ``gallery``'s device, mode 0600."""
    _parse(text, "the key given")
    path = key_file(gallery)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text.strip() + "\n")
    os.replace(tmp, path)
    return path


def load_key(gallery: Path) -> bytes:
    """The fleet key from ``$FACELENS_FLEET_KEY``, else from ``edge fleet join``'s file."""
    if os.environ.get(FLEET_KEY_ENV):
        return _parse(os.environ[FLEET_KEY_ENV], f"${FLEET_KEY_ENV}")
    path = key_file(gallery)
    if not path.is_file():
        raise FleetError(
            f"no fleet key for {gallery}: run `edge fleet init` once for the fleet, then on "
            f"each device `edge fleet join KEY --gallery {gallery}` (or set ${FLEET_KEY_ENV})"
        )
    return _parse(path.read_text(), f"the fleet key file {path}")


@dataclass(frozen=True, order=True)
class Version:
    """When and where a record was made; compares as the fleet's conflict rule says."""

    ms: int
    counter: int
    tombstone: bool
    device: str

    def to_list(self) -> list[Any]:
        return [self.ms, self.counter, self.tombstone, self.device]

    @classmethod
    def from_list(cls, value: list[Any]) -> Version:
        ms, counter, tombstone, device = value
        return cls(int(ms), int(counter), bool(tombstone), str(device))


class Clock:
    """A hybrid logical clock: ahead of every version this device made or saw."""

    def __init__(self, device: str, ms: int = 0, counter: int = 0) -> None:
        self.device, self.ms, self.counter = device, ms, counter

    def tick(self, tombstone: bool = False) -> Version:
        now = int(time.time() * 1000)
        if now > self.ms:
            self.ms, self.counter = now, 0
        else:  # the wall clock is behind what we have seen: count on from there
            self.counter += 1
        return Version(self.ms, self.counter, tombstone, self.device)

    def see(self, version: Version) -> None:
        if (version.ms, version.counter) > (self.ms, self.counter):
            self.ms, self.counter = version.ms, version.counter


@dataclass(frozen=True)
class Record:
    """One person's state in the fleet (their embeddings, or that they were forgotten),
    or one bundle's calibration (``name`` None)."""

    kind: str
    name: str | None
    version: Version
    fingerprint: str
    matrix: np.ndarray | None = None  # a person's embeddings, or the calibration cohort
    info: dict[str, Any] | None = None  # the calibration's threshold and how it was chosen


class FleetKey:
    """Seals and opens the fleet's records; names people in topics by a keyed hash."""

    def __init__(self, key: bytes) -> None:
        self._aes = AESGCM(hmac.digest(key, b"facelens fleet records", hashlib.sha256))
        self._names = hmac.digest(key, b"facelens fleet names", hashlib.sha256)

    def person_id(self, name: str) -> str:
        return hmac.digest(self._names, name.encode(), hashlib.sha256)[:16].hex()

    def calibration_id(self, fingerprint: str) -> str:
        return self.person_id("\0calibration\0" + fingerprint)

    def record_id(self, record: Record) -> str:
        """The last level of the record's topic: whose record it is (never their name)."""
        if record.kind == MARKER:
            return MARKER
        if record.kind == CALIBRATION:
            return self.calibration_id(record.fingerprint)
        return self.person_id(str(record.name))

    def seal(self, topic: str, record: Record) -> bytes:
        body = b"" if record.matrix is None else np.ascontiguousarray(record.matrix, "<f4")
        header = {
            "kind": record.kind,
            "name": record.name,
            "version": record.version.to_list(),
            "fingerprint": record.fingerprint,
            "shape": None if record.matrix is None else list(record.matrix.shape),
            "info": record.info,
        }
        head = json.dumps(header).encode()
        plain = struct.pack("<I", len(head)) + head + bytes(body)
        nonce = secrets.token_bytes(12)
        return MAGIC + nonce + self._aes.encrypt(nonce, plain, topic.encode())

    def open(self, topic: str, payload: bytes) -> Record:
        """The record in ``payload``; ``ValueError`` when it is not one sealed with this key
        for this topic (or is malformed)."""
        if not payload.startswith(MAGIC) or len(payload) < len(MAGIC) + 12 + 16:
            raise ValueError("not a sealed fleet record")
        nonce = payload[len(MAGIC) : len(MAGIC) + 12]
        try:
            plain = self._aes.decrypt(nonce, payload[len(MAGIC) + 12 :], topic.encode())
        except InvalidTag:
            raise ValueError("it fails authentication with the fleet key") from None
        try:  # sealed with the key, so from a fleet device: malformed only by a bug
            (size,) = struct.unpack_from("<I", plain)
            header = json.loads(plain[4 : 4 + size])
            matrix = None
            if header["shape"] is not None:
                matrix = np.frombuffer(plain[4 + size :], "<f4").reshape(header["shape"])
            version = Version.from_list(header["version"])
            record = Record(
                header["kind"],
                header["name"],
                version,
                header["fingerprint"],
                matrix,
                header["info"],
            )
        except (KeyError, TypeError, ValueError, struct.error) as exc:
            raise ValueError(f"it is malformed ({exc})") from None
        if not topic.endswith("/" + self.record_id(record)):  # a key holder's mistake
            raise ValueError("its topic does not match the person it holds")
        return record
