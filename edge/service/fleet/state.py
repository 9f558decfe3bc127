"""What a device knows of its fleet, kept beside its gallery (``<gallery>.fleet.json``, 0600).

Per person: the version of the record the gallery holds, the gallery's own summary of
them when it was written (to notice changes made while the device was offline), and
whether the broker acknowledged it; per forgotten person, only the keyed hash of their
name and the tombstone's version (so a replayed old record cannot bring them back);
the device's id and clock. No embedding is kept here.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from edge.base.names import topic_name
from edge.service.fleet.records import Clock, Version


def state_file(gallery: Path) -> Path:
    return gallery.with_name(gallery.name + ".fleet.json")


class FleetState:
    """The device's fleet knowledge; :meth:`save` writes it atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        # a random part: two devices with one hostname must never tie
        device = data.get("device") or f"{topic_name(socket.gethostname())}-{secrets.token_hex(3)}"
        self.clock = Clock(device, *data.get("clock", (0, 0)))
        self.people: dict[str, dict[str, Any]] = data.get("people", {})
        self.calibration: dict[str, dict[str, Any]] = data.get("calibration", {})
        self.forgotten: dict[str, list[Any]] = data.get("forgotten", {})

    @property
    def device(self) -> str:
        return self.clock.device

    def version(self, entry: dict[str, Any] | None) -> Version | None:
        return Version.from_list(entry["version"]) if entry else None

    def held(self, name: str, pid: str) -> Version | None:
        """The newest version this device applied for a person: theirs, or their tombstone's."""
        versions = [self.version(self.people.get(name))]
        if pid in self.forgotten:
            versions.append(Version.from_list(self.forgotten[pid]))
        return max((v for v in versions if v is not None), default=None)

    def keep(self, name: str, version: Version, digest: Any, acked: bool) -> None:
        self.people[name] = {"version": version.to_list(), "digest": digest, "acked": acked}

    def forget(self, name: str, pid: str, version: Version | None) -> None:
        self.people.pop(name, None)
        if version is not None:
            self.forgotten[pid] = version.to_list()

    def save(self) -> None:
        data = {
            "device": self.device,
            "clock": [self.clock.ms, self.clock.counter],
            "people": self.people,
            "calibration": self.calibration,
            "forgotten": self.forgotten,
        }
        tmp = self.path.with_name(f".{self.path.name}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self.path)
