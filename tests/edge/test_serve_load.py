"""Several concurrent clients against one `edge serve` for a bounded time: no 5xx, no lost or
duplicated enrolment, and the gallery still opens afterwards."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from edge.gallery.store import Gallery

pytest.importorskip("fastapi", reason="edge serve needs the serve extra (FastAPI, uvicorn)")
pytest.importorskip("httpx", reason="the HTTP tests need httpx (a dev dependency)")

from .test_serve import person_photos, start_server, upload  # after the skips

CLIENTS = 6
SECONDS = 12.0
MAX_REQUESTS_PER_CLIENT = 400


def test_concurrent_clients_keep_the_gallery_consistent(tmp_path: Path, faceres_bundle, lfw_dir):
    server = start_server(tmp_path, faceres_bundle.path)
    tony, serena = (person_photos(lfw_dir, n) for n in ("Tony_Blair", "Serena_Williams"))
    statuses: Counter[int] = Counter()
    enrolled: dict[str, int] = {}  # name -> embeddings the server said it stored
    forgotten: set[str] = set()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client(i: int) -> None:
        with server.client() as http:
            for j in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() > deadline:
                    return
                op = j % 5
                name = f"load-{i}-{j}"
                if op == 0:  # enrol a new person from two photos
                    r = http.put(
                        f"/v1/people/{name}",
                        files=[("image", (p.name, p.read_bytes())) for p in serena[:2]],
                    )
                    if r.status_code == 200:
                        with lock:
                            enrolled[name] = r.json()["embeddings"]
                elif op == 3 and j >= 5:  # forget the person this client enrolled 3 steps ago
                    gone = f"load-{i}-{j - 3}"
                    r = http.delete(f"/v1/people/{gone}")
                    if r.status_code == 200:
                        with lock:
                            forgotten.add(gone)
                elif op == 4:
                    r = http.get("/v1/people")
                    # a reader never sees a half-written person: 2 embeddings or none
                    half = [p for p in r.json()["people"] if p["embeddings"] != 2]
                    if half:
                        with lock:
                            failures.append(f"half-written: {half}")
                else:
                    r = http.post("/v1/identify", files=upload(tony[j % len(tony)]))
                with lock:
                    statuses[r.status_code] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        with server.client() as http:
            listed = {p["name"]: p["embeddings"] for p in http.get("/v1/people").json()["people"]}
    finally:
        assert server.stop() == 130  # Ctrl-C: a clean shutdown, exit code 130

    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert sum(statuses.values()) > 50, statuses  # the clients really did work
    assert all(s < 500 for s in statuses), statuses
    assert set(statuses) <= {200}, statuses  # every request here was a good one
    assert enrolled and forgotten
    assert set(enrolled.values()) == {2}  # no duplicated photo within an enrolment
    assert listed == {n: 2 for n in enrolled if n not in forgotten}  # none lost, none extra
    with Gallery(server.gallery) as gallery:  # the file is still a sound gallery
        people = gallery.people()
        assert {p.name: p.embeddings for p in people} == listed
        assert len(gallery.load(faceres_bundle.fingerprint).names) == 2 * len(listed)
