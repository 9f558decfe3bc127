"""A hostile client against a real `edge serve` on loopback: no input gets a 5xx or a traceback.

Three sources of requests, all through real HTTP to one server (the tiny bundle, the
real YuNet detector, a fresh gallery):

- schemathesis, from the server's own OpenAPI schema (``--docs``, behind the token):
  valid and invalid parameters and bodies for every route, the DeepStack and
  CompreFace ones included;
- multipart bodies built by Hypothesis from real LFW photos, damaged photos, empty
  parts and hostile file and field names, on every route that takes a form;
- the cases of issue 20 written out: 7 photos, duplicates, long, spaced, invisible,
  bidi and invalid-UTF-8 names, huge and missing boundaries, bombs, empty parts.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="edge serve needs the serve extra (FastAPI, uvicorn)")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (dev group)")
httpx = pytest.importorskip("httpx", reason="the HTTP tests need httpx (a dev dependency)")
import requests  # noqa: E402  (schemathesis' own dependency)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from edge.service.http.connections import HEADER_TIMEOUT_S  # noqa: E402

from .test_serve import TOKEN, Server, person_photos, start_server  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _bombs  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_OPERATION = 50  # examples per route and mode at most (a route with few inputs has fewer)
FORM_ROUTES = [
    ("PUT", "/v1/people/Ada", "image"),
    ("POST", "/v1/identify", "image"),
    ("POST", "/v1/verify", "a"),
    ("POST", "/v1/vision/face/register", "image"),
    ("POST", "/v1/vision/face/recognize", "image"),
    ("POST", "/v1/vision/face/match", "image1"),
    ("POST", "/api/v1/recognition/recognize", "file"),
    ("POST", "/api/v1/recognition/faces?subject=Ada", "file"),
    ("POST", "/api/v1/verification/verify", "source_image"),
]
HOSTILE_NAMES = [
    "x" * 150, " Ada", "Ada ", "Ada\u200b", "\u202eAda", "Ada%FF", "%00", "..", "Ada%2FB",
    "A" * 5000, "Ada\r\nX-Injected: 1", "🙂" * 101,
]  # fmt: skip


class Tally:
    """Every response's status, and the requests that got a 5xx."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def add(self, status: int, what: str) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.failures.append(f"{status}: {what}"[:300])

    def assert_clean(self, server: Server) -> None:
        assert self.failures == [], self.failures[:10]
        log = server.output.read_text(errors="replace")
        assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_bundle, yunet_path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hostile")  # (the autouse YuNet fixture is per test)
    s = start_server(folder, tiny_bundle.path, "--docs", "--detector", str(yunet_path))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def photos(lfw_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in person_photos(lfw_dir, "Tony_Blair")[:8]]


def multipart(parts: list[tuple[bytes, bytes, bytes]], boundary: bytes) -> bytes:
    """A multipart body of (field, filename, data) parts, byte for byte as given."""
    out = b""
    for field, filename, data in parts:
        out += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + field
        out += b'"; filename="' + filename + b'"\r\n\r\n' + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def send(http: httpx.Client, method: str, path: str, body: bytes, boundary: bytes | None):
    ctype = "multipart/form-data" + (f"; boundary={boundary.decode()}" if boundary else "")
    return http.request(method, path, content=body, headers={"Content-Type": ctype})


@pytest.mark.slow
def test_requests_generated_from_the_openapi_schema_get_no_5xx(server: Server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/v1/people/{name}", "/v1/vision/face/register", "/api/v1/verification/verify"} <= paths
    tally = Tally()
    session = requests.Session()
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=PER_OPERATION,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def call(case) -> None:
                r = case.call(base_url=server.url, session=session, headers=AUTH, timeout=60)
                tally.add(r.status_code, f"{case.method} {case.formatted_path} {case.query}")

            try:
                call()
            except Unsatisfiable:  # nothing to make invalid (a route without parameters)
                assert mode is GenerationMode.NEGATIVE
    print(f"{sum(tally.statuses.values())} generated requests: {dict(tally.statuses)}")
    assert sum(tally.statuses.values()) >= 1000
    assert tally.statuses[200] > 0  # some got through: not everything refused
    tally.assert_clean(server)


def _names() -> st.SearchStrategy[bytes]:
    hostile = st.sampled_from([n.encode("utf-8", "surrogatepass") for n in HOSTILE_NAMES])
    return st.one_of(st.text(max_size=60).map(lambda t: t.encode("utf-8", "replace")), hostile)


@pytest.mark.slow
def test_generated_forms_of_real_photos_get_no_5xx(server: Server, photos: list[bytes]):
    contents = st.one_of(
        st.sampled_from(photos),
        st.sampled_from(photos).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n])),
        st.just(b""),
        st.binary(max_size=64),
    )
    boundaries = st.text("abcXYZ019'()+_,-./:=?", min_size=1, max_size=70).map(str.encode)
    tally = Tally()

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(route=st.sampled_from(FORM_ROUTES), boundary=boundaries, data=st.data())
    def call(route, boundary, data) -> None:
        method, path, field = route  # the route's own field most often, so some get through
        fields = st.one_of(st.just(field.encode()), st.just(b"image2"), _names())
        parts = data.draw(st.lists(st.tuples(fields, _names(), contents), max_size=8))
        r = send(http, method, path, multipart(parts, boundary), boundary)
        tally.add(r.status_code, f"{method} {path} {len(parts)} parts")

    with server.client() as http:
        call()
    print(f"{sum(tally.statuses.values())} generated forms: {dict(tally.statuses)}")
    assert tally.statuses[200] > 0
    tally.assert_clean(server)


@pytest.mark.slow
def test_the_hostile_cases_of_issue_20_get_no_5xx(server: Server, photos: list[bytes]):
    tally = Tally()
    jp2, tiff, png = _bombs.jp2_fake_size(), _bombs.tiff_width_twice(), _bombs.largest_png()
    with server.client() as http:

        def put(path: str, *datas: bytes, expect: int | None = None) -> httpx.Response:
            body = multipart([(b"image", b"p%d.jpg" % i, d) for i, d in enumerate(datas)], b"B")
            r = send(http, "PUT", path, body, b"B")
            tally.add(r.status_code, f"PUT {path} {len(datas)} photos")
            assert expect is None or r.status_code == expect, r.text
            return r

        seven = put("/v1/people/Tony Blair", *photos[:7], expect=200).json()["photos"]
        assert [p["photo"] for p in seven] == [f"p{i}.jpg" for i in range(7)]
        twice = put("/v1/people/Twice", photos[0], photos[0], expect=200).json()["photos"]
        assert len(twice) == 2 and [p["kept"] for p in twice].count(True) == 1
        for name in HOSTILE_NAMES:
            assert 400 <= put(f"/v1/people/{quote(name, safe='%')}", photos[0]).status_code < 500
        for bomb in (jp2, tiff):
            assert put("/v1/people/Bomb", bomb, expect=422).json()["field"] == "image"
        assert put("/v1/people/Bombs", *[png] * 6, expect=413).status_code == 413
        six = multipart([(b"userid", b"", b"Ada"), *[(b"image", b"p.png", png)] * 6], b"B")
        r = send(http, "POST", "/v1/vision/face/register", six, b"B")  # DeepStack's enrol
        tally.add(r.status_code, "register 6 x 100 MP")
        assert r.status_code == 413, r.text
        # the two-photo compat routes decode within the same budget: 2 x 100 MP is refused
        for path, a, b in (
            ("/v1/vision/face/match", b"image1", b"image2"),
            ("/api/v1/verification/verify", b"source_image", b"target_image"),
        ):
            two = multipart([(a, b"a.png", png), (b, b"b.png", png)], b"B")
            r = send(http, "POST", path, two, b"B")
            tally.add(r.status_code, f"{path} 2 x 100 MP")
            assert r.status_code == 413 and "2 photos hold" in r.text, r.text
        for boundary in (b"x" * 2000, b""):
            r = send(
                http, "POST", "/v1/identify", multipart([(b"image", b"a", b"")], b"B"), boundary
            )
            tally.add(r.status_code, f"boundary of {len(boundary)}")
            assert r.status_code in (400, 415), r.text
        many = multipart([(b"image", b"", b"")] * 100_000, b"B")  # ~5 MB of empty parts
        for method, path, _ in FORM_ROUTES:
            r = send(http, method, path, many, b"B")
            tally.add(r.status_code, f"{method} {path} 100k empty parts")
    tally.assert_clean(server)


def test_idle_connections_and_bodies_sent_a_byte_at_a_time_are_closed(server: Server):
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /v1/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n"
    )
    idle = socket.create_connection(("127.0.0.1", port))
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(head.replace("{TOKEN}", TOKEN).encode())  # the headers whole, then the body
    open_ = {idle, slow}
    deadline = time.monotonic() + 5 * HEADER_TIMEOUT_S  # a bound, to end the test if not
    try:
        while open_ and time.monotonic() < deadline:
            try:
                slow.send(b"-")  # a byte a second: far under MIN_BODY_RATE
            except OSError:
                open_.discard(slow)
            readable, _, _ = select.select(list(open_), [], [], 1.0)
            for sock in readable:
                try:
                    if sock.recv(4096) == b"":  # the server closed it
                        open_.discard(sock)
                except OSError:
                    open_.discard(sock)
        assert open_ == set(), f"{len(open_)} of 2 still open after {5 * HEADER_TIMEOUT_S} s"
    finally:
        idle.close()
        slow.close()
    with server.client() as http:  # the service still answers, and logged no traceback
        assert http.get("/v1/people").status_code == 200
    Tally().assert_clean(server)
