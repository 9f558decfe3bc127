"""Fleet sync (`edge serve --sync`): how fast a change reaches the other doors, and what
a large gallery costs to bring to a new device.

A real Mosquitto (loopback, persistence on, so its store can be weighed) and real
`edge serve` processes:

1. propagation: two devices; real LFW people enrolled one by one over HTTP on the first,
   timed until the second lists them (polled every 20 ms), then a second photo of each
   identified there;
2. a 10,000-person gallery of SYNTHETIC embeddings (random unit vectors of the bundle's
   dimension, ``--views`` per person, written straight into a gallery with the bundle's
   fingerprint: no photo could give 10,000 identities here) is published by a device
   started on it, then a new device with an empty gallery syncs it: time from its launch
   to 10,000 people (its start-up and model load included: the sync runs meanwhile; an
   empty device's start-up is reported by step 1), and the bytes the broker sent ($SYS
   counters; a device also receives its own records back);
3. what the broker stores: retained messages and their bytes ($SYS, all topics: the
   fleet's records, its marker, Mosquitto's own) and the size of its persistence file.

    uv run python benchmarks/fleet.py --bundle tests/.bundle-cache/faceres-... --people 10000
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import LFW, machine_info, machine_line, new_parser, out_dir, run_cli, write_json
from serve import free_port, start

from edge.api import FaceLens
from edge.base.errors import FacelensError
from edge.gallery.store import Gallery
from edge.service.fleet.records import FLEET_KEY_ENV, new_key

FLEET = "bench"
POLL_S = 0.02


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = new_parser(__doc__)
    p.add_argument("--people", type=int, default=10_000, help="synthetic people to sync")
    p.add_argument("--views", type=int, default=3, help="embeddings per synthetic person")
    p.add_argument("--enrol", type=int, default=5, help="LFW people timed for propagation")
    p.add_argument("--threads", type=int, default=1, help="each server's inference threads")
    return p.parse_args(argv)


class Broker:
    """Mosquitto on a free loopback port, persistence on, $SYS every second."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port, self.folder = free_port(), folder
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nsys_interval 1\nlog_dest none\n"
            f"user {getpass.getuser()}\n"  # as root it would switch to a user who cannot write here
        )
        self.proc = subprocess.Popen([binary, "-c", str(config)])
        time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{FLEET}"

    def read(self, topic: str, quiet_s: float = 2.0) -> dict[str, bytes]:
        """The retained messages under ``topic`` (and live ones within ``quiet_s``)."""
        import paho.mqtt.client as mqtt

        got: dict[str, bytes] = {}
        last = [time.monotonic()]

        def on_message(client, userdata, message) -> None:
            got[message.topic] = message.payload
            last[0] = time.monotonic()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = on_message
        client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        while time.monotonic() - last[0] < quiet_s:
            time.sleep(0.1)
        client.disconnect()
        client.loop_stop()
        return got

    def sys(self, name: str) -> int:
        """One of Mosquitto's $SYS counters (a plain subscription to every retained record
        would lose most of them: the broker queues 1,000 per client)."""
        topic = f"$SYS/broker/{name}"
        return int(self.read(topic, 1.5)[topic])

    def stop(self) -> int:
        """Stop (Mosquitto writes its store on exit); the store's size in bytes."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return (self.folder / "mosquitto.db").stat().st_size


def synthetic_gallery(args: argparse.Namespace, path: Path) -> None:
    """``--people`` random identities with the bundle's fingerprint."""
    bundle, people, views = args.bundle, args.people, args.views
    with FaceLens(bundle, path, detector=args.detector) as lens:
        fingerprint, dim, name = lens.fingerprint, lens.bundle.embedding_dim, lens.bundle.name
    rng = np.random.default_rng(0)
    gallery = Gallery(path)
    for start_at in range(0, people, 1000):
        count = min(1000, people - start_at)
        vectors = rng.standard_normal((count * views, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        names = [f"person {start_at + i:05d}" for i in range(count) for _ in range(views)]
        gallery.add_many(names, vectors, fingerprint, name, bundle)
    gallery.close()


class Device:
    """One `edge serve --sync` with its own home and gallery."""

    def __init__(self, args: argparse.Namespace, root: Path, name: str, url: str, key: str):
        self.home, self.token = root / name, secrets.token_urlsafe(16)
        self.gallery = self.home / "gallery.sqlite"
        self.home.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.proc, base = start(
            args,
            self.home,
            self.token,
            "--gallery",
            str(self.gallery),
            "--sync",
            url,
            env={FLEET_KEY_ENV: key},
        )
        self.startup_s = time.perf_counter() - t0
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )

    def health(self) -> dict[str, Any]:
        return self.http.get("/v1/health").json()

    def until(self, check: Any, bound_s: float = 1800) -> float:
        """Seconds until ``check(self)`` is true (polled)."""
        t0 = time.perf_counter()
        while not check(self):
            if time.perf_counter() - t0 > bound_s:
                raise FacelensError(f"not within {bound_s:.0f} s")
            time.sleep(POLL_S)
        return time.perf_counter() - t0

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def propagation(args: argparse.Namespace, root: Path, url: str, key: str) -> dict[str, Any]:
    """Enrol on one device, time until the other lists the person; then identify there."""
    people = [p for p in sorted((LFW / "images").iterdir()) if len(list(p.glob("*.jpg"))) >= 2]
    a, b = (Device(args, root, n, url, key) for n in ("front", "back"))
    times, named = [], 0
    try:
        for d in (a, b):
            d.until(lambda d: d.health()["sync"]["caught_up"], 60)
        for folder in people[: args.enrol]:
            photos = sorted(folder.glob("*.jpg"))
            name = folder.name.replace("_", " ")
            r = a.http.put(
                f"/v1/people/{name}", files={"image": (photos[0].name, photos[0].read_bytes())}
            )
            if r.status_code != 200:
                continue  # no usable face in the first photo: not this benchmark's subject
            times.append(
                b.until(
                    lambda d, name=name: d.http.get(f"/v1/people/{name}").status_code == 200, 60
                )
            )
            r = b.http.post("/v1/identify", files={"image": ("p.jpg", photos[1].read_bytes())})
            named += [f["name"] for f in r.json()["faces"]][:1] == [name]
    finally:
        a.stop()
        b.stop()
    return {
        "enrolled": len(times),
        "named_elsewhere": named,
        "propagation_ms": [round(t * 1000, 1) for t in times],
        "median_ms": round(float(np.median(times)) * 1000, 1) if times else None,
    }


def large_sync(args: argparse.Namespace, root: Path, broker: Broker, key: str) -> dict[str, Any]:
    """A device on a gallery of ``--people`` publishes it; a new device syncs it."""
    big = root / "big"
    big.mkdir()
    synthetic_gallery(args, big / "gallery.sqlite")
    before = broker.sys("bytes/sent")
    t0 = time.perf_counter()
    source = Device(args, root, "big", broker.url, key)
    published = source.until(lambda d: d.health()["sync"]["caught_up"]) + source.startup_s
    source.stop()
    retained, stored = broker.sys("retained messages/count"), broker.sys("store/messages/bytes")
    sent_publish = broker.sys("bytes/sent") - before
    before = broker.sys("bytes/sent")
    new = Device(args, root, "new", broker.url, key)
    synced = new.until(lambda d: d.health()["people"] >= args.people) + new.startup_s
    sent = broker.sys("bytes/sent") - before
    new.stop()
    return {
        "people": args.people,
        "views": args.views,
        "publish_s": round(published, 2),
        "publish_total_s": round(time.perf_counter() - t0, 2),
        "new_device_startup_s": round(new.startup_s, 2),
        "new_device_synced_s": round(synced, 2),
        "broker_bytes_sent_to_new_device": sent,
        "broker_bytes_sent_while_publishing": sent_publish,
        "retained_messages": retained,
        "store_message_bytes": stored,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(f"# fleet sync\n\nmachine: {machine_line(info)}\n", flush=True)
    key = new_key()
    with tempfile.TemporaryDirectory(prefix="facelens-fleet-bench-") as tmp:
        root = Path(tmp)
        (root / "broker").mkdir()
        broker = Broker(root / "broker")
        try:
            prop = propagation(args, root, broker.url, key)
            print(f"propagation: {prop}", flush=True)
            large = large_sync(args, root, broker, key)
            print(f"large gallery: {large}", flush=True)
        finally:
            store = broker.stop()
    print(f"broker store on disk (mosquitto.db, persistence on): {store} bytes")
    dest = out_dir(args, "fleet")
    result = {"machine": info, "propagation": prop, "large": large, "broker_store_bytes": store}
    write_json(dest / "fleet.json", result)
    print(f"wrote {dest / 'fleet.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
