"""One gallery for a fleet of devices, through the MQTT broker they already share.

``edge serve --sync mqtt://HOST:PORT/FLEET`` (and ``edge recognize --sync``): each change
to the gallery — a person enrolled or given more views, forgotten, a calibration — is
published as one retained, sealed record per person on
``facelens/fleet/FLEET/records/<id[:2]>/<id>``
(see :mod:`edge.service.fleet.records`: the fleet key seals it, ``<id>`` is a keyed hash of the
name). Every device with the key applies the records to its own encrypted gallery.

- Records are spread over 256 sub-topics by their id's first byte, and a device catching
  up subscribes to them one after another: a broker queues at most so many messages for
  a client (Mosquitto: 1,000) and drops the rest of a larger retained burst, which
  bounds a fleet to about 250,000 people on a broker with default settings.
- A record holds the person's whole current state (all their embeddings, with the bundle
  fingerprint: a device refuses another model's), so applying the newest record per person
  converges whatever the order, duplicates or replays (the conflict rule: records.py).
- A forget publishes a retained tombstone, then the empty retained message that removes
  the record: the broker keeps nothing of that person. Devices online apply the tombstone;
  one that was away learns it from the absence: once it has caught up (a message it sends
  itself comes back after every retained record), a person it had from the fleet whose
  record the broker no longer holds was forgotten meanwhile, and is erased. A retained
  marker tells a broker that lost its store (nothing retained, no marker) from a fleet
  that forgot: then the devices publish again what they hold.
- Changes made while away (this device's gallery differs from what it last synced) are
  published on reconnect, stamped then: they are the latest writes the fleet learns of.
- The broker is never in the way of recognition: the gallery is local, the connection is
  retried in the background, and changes wait for it.

A client that can publish on the broker without the key cannot add or change anyone (its
records are ignored and logged); deleting retained records needs only broker access, and
at worst makes devices forget — give the fleet's topics an ACL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from edge.base.names import topic_name
from edge.service.fleet.records import (
    CALIBRATION,
    FORGET,
    MARKER,
    PERSON,
    FleetError,
    FleetKey,
    Record,
    Version,
    load_key,
)
from edge.service.fleet.state import FleetState, state_file
from edge.service.mqtt import DEFAULT_PREFIX, Broker, paho_client

if TYPE_CHECKING:
    from edge.api import FaceLens
    from edge.gallery.store import Gallery

log = logging.getLogger(__name__)

APPLY_BATCH = 1000  # people written per gallery transaction when many records arrive
ACK_TIMEOUT_S = 30.0
SHARDS = 256  # sub-topics caught up one at a time: each must fit the broker's client queue


@dataclass(frozen=True)
class FleetUrl:
    """``mqtt://[user[:password]@]HOST[:PORT]/FLEET`` (``mqtts://`` for TLS)."""

    broker: Broker
    fleet: str

    @classmethod
    def parse(cls, url: str) -> FleetUrl:
        broker = Broker.parse(url)
        fleet = urlsplit(url).path.strip("/")
        if not fleet or topic_name(fleet) != fleet:
            raise FleetError(
                f"{url!r} names no fleet: give mqtt://HOST[:PORT]/FLEET, FLEET in letters, "
                f"digits, - and _ (e.g. {broker!s}/{topic_name(fleet) if fleet else 'home'})"
            )
        return cls(broker, fleet)

    @property
    def root(self) -> str:
        return f"{DEFAULT_PREFIX}/fleet/{self.fleet}"

    def __str__(self) -> str:
        return f"{self.broker}/{self.fleet}"


def _digests(gallery: Gallery) -> dict[str, list[Any]]:
    """The gallery's own summary of each person: a change made here shows in it."""
    return {p.name: [p.embeddings, p.enrolled] for p in gallery.people()}


def _calibration_digest(gallery: Gallery, fingerprint: str) -> str | None:
    info = gallery.threshold(fingerprint)
    return (
        None
        if info is None
        else hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()
    )


class FleetSync:
    """Keeps ``lens``'s gallery in step with the fleet at ``url``; :meth:`close` stops it."""

    def __init__(self, url: str, lens: FaceLens, key: bytes | None = None) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise FleetError("--sync needs paho-mqtt: pip install 'facelens[mqtt]'") from None
        self.url = FleetUrl.parse(url)
        self.lens = lens
        self.key = FleetKey(key if key is not None else load_key(lens.gallery_path))
        self.state = FleetState(state_file(lens.gallery_path))
        self.clock = self.state.clock
        self.ignored = 0  # records that failed to open: no key, another fleet, tampered
        self.caught_up = threading.Event()
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._retained: dict[str, Record] = {}
        self._marker = False
        self._pending: list[Record] = []
        self._records = f"{self.url.root}/records"
        self._barrier = f"{self.url.root}/barrier/{self.state.device}"
        self._marker_topic = f"{self.url.root}/{MARKER}"
        self._shard = 0  # the sub-topic being caught up (paho's thread only)
        self._client = paho_client(mqtt, self.url.broker, self.state.device)
        for name in ("connect", "disconnect", "subscribe", "message"):
            setattr(self._client, f"on_{name}", getattr(self, f"_on_{name}"))
        lens.on_change(lambda kind, name: self._queue.put(("local", kind, name)))
        self._worker = threading.Thread(target=self._work, name="fleet-sync", daemon=True)
        self._worker.start()
        self._client.connect_async(self.url.broker.host, self.url.broker.port, keepalive=30)
        self._client.loop_start()
        log.info("syncing the gallery with the fleet %s as device %s", self.url, self.state.device)

    def topic(self, record_id: str) -> str:
        if record_id == MARKER:
            return self._marker_topic
        return f"{self._records}/{record_id[:2]}/{record_id}"

    def _shard_topic(self, shard: int) -> str:
        return f"{self._records}/{shard:02x}/+"

    # -- paho's network thread: open what arrives, queue it for the worker --------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("the broker %s refused the fleet sync: %s", self.url.broker, reason_code)
            return
        self._queue.put(("connected",))
        self._shard = 0
        topics = [self._marker_topic, self._barrier, self._shard_topic(0)]
        client.subscribe([(t, 1) for t in topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # comes back after every retained record the subscription brought
        client.publish(self._barrier, str(self._shard).encode(), qos=1)

    def _on_barrier(self, client: Any, payload: bytes) -> None:
        """One sub-topic caught up: subscribe to the next, or say all are."""
        if payload != str(self._shard).encode():
            return  # from an earlier connection
        if self._shard + 1 < SHARDS:
            self._shard += 1
            client.subscribe(self._shard_topic(self._shard), 1)
        else:
            self._queue.put(("caught_up",))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._queue.put(("disconnected",))
        if reason_code != 0:
            log.warning(
                "lost the fleet's broker %s (%s); recognising on, reconnecting",
                self.url.broker,
                reason_code,
            )

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._barrier:
            self._on_barrier(client, message.payload)
        elif not message.payload:
            self._queue.put(("cleared", message.topic))
        else:
            try:
                record = self.key.open(message.topic, message.payload)
            except ValueError as exc:
                self.ignored += 1
                log.warning(
                    "ignored the fleet record on %s: %s (published without this fleet's key?)",
                    message.topic,
                    exc,
                )
                return
            self._queue.put(("record", message.topic, record))

    # -- the worker: every decision is taken here, one at a time -----------------------

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < APPLY_BATCH and not self._queue.empty():
                batch.append(self._queue.get())
            for event in batch:
                if event is None:
                    return
                try:
                    self._handle(*event)
                except Exception:  # the worker must outlive one bad record or write
                    log.exception("fleet sync: could not handle %s", event[0])
            self._guarded(self._flush)

    def _guarded(self, fn: Any) -> None:
        try:
            fn()
        except Exception:  # as in _work: logged, the next change is tried afresh
            log.exception("fleet sync: could not apply the fleet's records")

    def _handle(self, kind: str, *args: Any) -> None:
        if kind == "record":
            topic, record = args
            self.clock.see(record.version)
            if record.kind == MARKER:
                self._marker = True
            elif not self.caught_up.is_set():
                old = self._retained.get(topic)
                if old is None or record.version > old.version:
                    self._retained[topic] = record
            else:
                self._pending.append(record)
            return
        self._flush()
        if kind == "connected":
            self.caught_up.clear()
            self._retained, self._marker = {}, False
        elif kind == "disconnected":
            self.caught_up.clear()
        elif kind == "caught_up" and not self.caught_up.is_set():
            self._reconcile()
            self.caught_up.set()
        elif kind == "cleared" and self.caught_up.is_set():
            self._heal(args[0])
        elif kind == "local" and self.caught_up.is_set():
            change, name = args
            if change == "calibrate":
                self._publish_calibration()
            else:
                self._publish_people([name])

    # -- applying the fleet's records ---------------------------------------------------

    def _newer(self, record: Record) -> bool:
        if record.kind == CALIBRATION:
            held = self.state.version(self.state.calibration.get(record.fingerprint))
        else:
            held = self.state.held(str(record.name), self.key.person_id(str(record.name)))
        return held is None or record.version > held

    def _flush(self) -> None:
        newest: dict[str, Record] = {}
        for record in self._pending:
            topic = self.key.record_id(record)
            if topic not in newest or record.version > newest[topic].version:
                newest[topic] = record
        self._pending = []
        self._apply([r for r in newest.values() if self._newer(r)])

    def _fits(self, record: Record) -> bool:
        if record.fingerprint == self.lens.fingerprint:
            return True
        log.warning(
            "ignored the fleet's record of %s: made with bundle %s, this device runs %s "
            "(one fleet, one bundle)",
            record.name or "the calibration",
            record.fingerprint,
            self.lens.fingerprint,
        )
        return False

    def _apply(self, records: list[Record], erase: Iterable[str] = ()) -> None:
        """Write ``records`` (the newest of each person) into the gallery, and erase the
        people in ``erase`` (forgotten while this device was away)."""
        erase = list(erase)
        people = [r for r in records if r.kind == PERSON and self._fits(r)]
        gone = [r for r in records if r.kind == FORGET]
        calibrations = [r for r in records if r.kind == CALIBRATION and self._fits(r)]
        if not (people or gone or calibrations or erase):
            return
        fingerprint, bundle = self.lens.fingerprint, self.lens.bundle

        def write(gallery: Gallery) -> dict[str, list[Any]]:
            present = {p.name for p in gallery.people()}
            for name in ({str(r.name) for r in people + gone} | set(erase)) & present:
                gallery.forget(name)
            for i in range(0, len(people), APPLY_BATCH):
                part = people[i : i + APPLY_BATCH]
                names = [str(r.name) for r in part for _ in range(len(r.matrix))]
                matrix = np.concatenate([r.matrix for r in part])
                gallery.add_many(names, matrix, fingerprint, bundle.name, bundle.path)
            for r in calibrations:
                gallery.set_threshold(fingerprint, r.info or {}, r.matrix)
            return _digests(gallery)

        digests = self.lens.with_gallery(write, changes=True)
        for r in people:
            self.state.keep(str(r.name), r.version, digests.get(str(r.name)), acked=True)
        for r in gone:
            self.state.forget(str(r.name), self.key.person_id(str(r.name)), r.version)
        for name in erase:
            self.state.forget(name, self.key.person_id(name), None)
        for r in calibrations:
            digest = self.lens.with_gallery(lambda g: _calibration_digest(g, fingerprint))
            self.state.calibration[fingerprint] = {"version": r.version.to_list(), "digest": digest}
        self.state.save()
        log.info(
            "applied the fleet's records: %d people, %d forgotten, %d erased, %d calibrations",
            len(people),
            len(gone),
            len(erase),
            len(calibrations),
        )

    # -- catching up, and healing what the broker lost ----------------------------------

    def _reconcile(self) -> None:
        """Once caught up with the retained records: apply the newer ones, erase who was
        forgotten while away, publish this device's changes made while away."""
        retained, self._retained = self._retained, {}
        local = self.lens.with_gallery(_digests)
        state = self.state.people
        changed = {n for n, d in local.items() if (state.get(n) or {}).get("digest") != d}
        changed |= set(state) - set(local)  # forgotten here while away
        apply = []
        calibrated_here = self._calibration_changed()
        for record in retained.values():
            if record.name in changed or (record.kind == CALIBRATION and calibrated_here):
                continue  # this device's change while away is the later write
            if record.kind == FORGET:  # its removal was interrupted: finish it
                self._clear(self.topic(self.key.record_id(record)))
            if self._newer(record):
                apply.append(record)
            elif record.kind == PERSON and self._forgotten_after(record):
                self._publish_tombstone(str(record.name), self._forgotten_after(record))
        on_broker = {topic.rsplit("/", 1)[1] for topic in retained}
        missing = [n for n in state if n not in changed and self.key.person_id(n) not in on_broker]
        erase = [n for n in missing if self._marker and state[n]["acked"]]
        republish = [n for n in missing if n not in erase]
        if erase:
            log.warning("erasing %d people the fleet forgot while this device was away", len(erase))
        self._apply(apply, erase)
        if not self._marker:  # a new fleet, or a broker that lost its store
            self._publish(Record(MARKER, None, self.clock.tick(), ""))
        self._publish_people(sorted(changed))
        self._publish_people(republish, keep_versions=True)
        self._publish_calibration(keep_version=not calibrated_here)

    def _forgotten_after(self, record: Record) -> Version | None:
        """The tombstone this device holds that is newer than ``record`` (a replay)."""
        held = self.state.forgotten.get(self.key.person_id(str(record.name)))
        version = Version.from_list(held) if held else None
        return version if version is not None and version > record.version else None

    def _heal(self, topic: str) -> None:
        """A record this device holds was removed from the broker (a forget that raced a
        newer change, or a client deleting it): publish it again."""
        record_id = topic.rsplit("/", 1)[1]
        names = [n for n in self.state.people if self.key.person_id(n) == record_id]
        self._publish_people(names, keep_versions=True)

    # -- publishing this device's changes -----------------------------------------------

    def _publish(self, record: Record) -> Any:
        topic = self.topic(self.key.record_id(record))
        return self._client.publish(topic, self.key.seal(topic, record), qos=1, retain=True)

    def _clear(self, topic: str) -> None:
        self._client.publish(topic, b"", qos=1, retain=True)

    @staticmethod
    def _acked(info: Any) -> bool:
        try:
            info.wait_for_publish(ACK_TIMEOUT_S)
        except (RuntimeError, ValueError):  # not connected, or the queue is full
            return False
        return info.is_published()

    def _publish_people(self, names: list[str], keep_versions: bool = False) -> None:
        """Publish each person's whole current state (or a tombstone when they are gone)."""
        if not names:
            return
        fingerprint, bundle = self.lens.fingerprint, self.lens.bundle
        enrolled, digests = self.lens.with_gallery(
            lambda g: (g.load(fingerprint, bundle.name), _digests(g))
        )
        rows: dict[str, list[int]] = {}
        for i, name in enumerate(enrolled.names):
            rows.setdefault(name, []).append(i)
        sent = []
        for name in names:
            entry = self.state.people.get(name)
            if name in rows:
                version = self.state.version(entry) if keep_versions and entry else None
                record = Record(
                    PERSON,
                    name,
                    version or self.clock.tick(),
                    fingerprint,
                    enrolled.matrix[rows[name]],
                )
                sent.append((record, self._publish(record), digests[name]))
            elif entry is not None:  # forgotten here
                self._publish_tombstone(name, self.clock.tick(tombstone=True))
        for record, info, digest in sent:
            self.state.keep(str(record.name), record.version, digest, self._acked(info))
        self.state.save()

    def _publish_tombstone(self, name: str, version: Version) -> None:
        """A retained tombstone, then (once the broker has it) the empty message that
        removes the person's record from the broker."""
        pid = self.key.person_id(name)
        info = self._publish(Record(FORGET, name, version, self.lens.fingerprint))
        self.state.forget(name, pid, version)
        self.state.save()
        if self._acked(info):
            self._clear(self.topic(pid))

    def _calibration_changed(self) -> bool:
        fingerprint = self.lens.fingerprint
        digest = self.lens.with_gallery(lambda g: _calibration_digest(g, fingerprint))
        return digest != (self.state.calibration.get(fingerprint) or {}).get("digest")

    def _publish_calibration(self, keep_version: bool = False) -> None:
        """Publish this bundle's calibration (threshold, open-set rule and cohort)."""
        fingerprint = self.lens.fingerprint
        entry = self.state.calibration.get(fingerprint)
        if keep_version and (entry is None or self._marker):
            return  # unchanged, and the broker still has it (or never had it)
        info, cohort, digest = self.lens.with_gallery(
            lambda g: (
                g.threshold(fingerprint),
                g.cohort(fingerprint),
                _calibration_digest(g, fingerprint),
            )
        )
        if info is None:
            return
        version = self.state.version(entry) if keep_version and entry else self.clock.tick()
        self._publish(Record(CALIBRATION, None, version, fingerprint, cohort, info))
        self.state.calibration[fingerprint] = {"version": version.to_list(), "digest": digest}
        self.state.save()

    # -- lifetime -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``/v1/health``: the fleet, whether caught up, records ignored."""
        return {
            "fleet": str(self.url),
            "caught_up": self.caught_up.is_set(),
            "ignored": self.ignored,
            "device": self.state.device,
        }

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued (while connected), then disconnect."""
        self._queue.put(None)
        self._worker.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
