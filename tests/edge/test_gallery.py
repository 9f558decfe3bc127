"""The encrypted gallery on real SQLite files: no plaintext, kill-safe writes, forget for good."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.base.errors import GalleryError
from edge.gallery.store import KEY_ENV, Gallery, parse_key

FP = "a1b2c3d4e5f60708"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def unit(rng: np.random.Generator, n: int, dim: int = 64) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(vectors: np.ndarray, size: int = 16) -> list[bytes]:
    raw = vectors.astype(np.float32).tobytes()
    return [raw[i : i + size] for i in range(0, len(raw) - size + 1, size)]


def test_roundtrip_creates_private_files_and_keeps_embeddings(tmp_path: Path):
    rng = np.random.default_rng(0)
    alice, bob = unit(rng, 2), unit(rng, 1)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        assert g.add("alice", alice, FP, "b1") == 2
        g.add("bob", bob, FP, "b1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "g.sqlite.key").stat().st_mode) == 0o600
    with Gallery(path) as g:  # a fresh process-like open reads the key file back
        enrolled = g.load(FP)
        assert enrolled.names == ["alice", "alice", "bob"]
        np.testing.assert_array_equal(enrolled.matrix, np.concatenate([alice, bob]))
        assert [(p.name, p.embeddings, p.fingerprint) for p in g.people()] == [
            ("alice", 2, FP),
            ("bob", 1, FP),
        ]


def test_raw_file_holds_no_plaintext_embedding_bytes(tmp_path: Path):
    vectors = unit(np.random.default_rng(1), 5, dim=512)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("carol", vectors, FP)
        np.testing.assert_array_equal(g.load(FP).matrix, vectors)  # they are in there
    raw = path.read_bytes()
    leaked = [c for c in chunks(vectors) if c in raw]
    assert not leaked, f"{len(leaked)} plaintext 16-byte chunks found in the gallery file"
    assert b"carol" in raw  # the search works: names are stored in clear, by design


def test_wrong_key_is_refused_and_gallery_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("alice", unit(np.random.default_rng(2), 1), FP)
    before = path.read_bytes()
    monkeypatch.setenv(KEY_ENV, "11" * 32)
    with Gallery(path) as g, pytest.raises(GalleryError, match="wrong key"):
        g.load(FP)
    with Gallery(path) as g, pytest.raises(GalleryError, match="wrong key"):
        g.add("mallory", unit(np.random.default_rng(3), 1), FP)
    assert path.read_bytes() == before


def test_missing_key_file_is_an_error_not_a_new_key(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("alice", unit(np.random.default_rng(4), 1), FP)
    (tmp_path / "g.sqlite.key").unlink()
    with Gallery(path) as g, pytest.raises(GalleryError, match="no key"):
        g.add("bob", unit(np.random.default_rng(5), 1), FP)
    assert not (tmp_path / "g.sqlite.key").exists()


def test_env_key_in_hex_or_base64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import base64

    key = bytes(range(32))
    assert parse_key(key.hex()) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    with pytest.raises(GalleryError, match="32-byte"):
        parse_key("too short")
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("alice", unit(np.random.default_rng(6), 1), FP)
    assert not (tmp_path / "g.sqlite.key").exists()  # the env key is used, no file made
    monkeypatch.setenv(KEY_ENV, key.hex())  # the same key, spelled in hex
    with Gallery(path) as g:
        assert g.load(FP).names == ["alice"]


def test_another_bundle_is_refused(tmp_path: Path):
    with Gallery(tmp_path / "g.sqlite") as g:
        g.add("alice", unit(np.random.default_rng(7), 1), FP, "faceres")
        with pytest.raises(GalleryError, match="built with faceres"):
            g.load("ffffffffffffffff", "vgg16")
        with pytest.raises(GalleryError, match="re-enrol"):
            g.add("bob", unit(np.random.default_rng(8), 1), "ffffffffffffffff", "vgg16")
        assert [p.name for p in g.people()] == ["alice"]


def test_a_row_moved_to_another_person_fails_authentication(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("alice", unit(np.random.default_rng(9), 1), FP)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE chunks SET person = 'eve'")
    with Gallery(path) as g, pytest.raises(GalleryError, match="tampered"):
        g.load(FP)


def test_not_a_gallery_file(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(GalleryError, match="not a facelens gallery"):
        Gallery(path)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = other.read_bytes()
    with pytest.raises(GalleryError, match="other tables"):
        Gallery(other)
    assert other.read_bytes() == before  # nothing was added to someone else's database


def test_thresholds_belong_to_one_bundle(tmp_path: Path):
    with Gallery(tmp_path / "g.sqlite") as g:
        assert g.threshold(FP) is None
        g.set_threshold(FP, {"cosine": 0.42, "how": "test"})
        assert g.threshold(FP) == {"cosine": 0.42, "how": "test"}
        assert g.threshold("0000000000000000") is None


def test_forget_leaves_no_trace_of_the_ciphertext(tmp_path: Path):
    rng = np.random.default_rng(10)
    path = tmp_path / "g.sqlite"
    keep = unit(rng, 2, dim=256)
    with Gallery(path) as g:
        g.add("alice", unit(rng, 2, dim=256), FP)
        g.add("bob", keep, FP)
        g.add("alice", unit(rng, 1, dim=256), FP)  # a second enrolment: a second chunk
    with sqlite3.connect(path) as conn:
        secrets_ = [
            bytes(c) for (c,) in conn.execute("SELECT ciphertext FROM chunks WHERE person='alice'")
        ]
    assert len(secrets_) == 2 and all(s in path.read_bytes() for s in secrets_)
    with Gallery(path) as g:
        assert g.forget("alice") == 3
        assert g.forget("alice") == 0
        assert [p.name for p in g.people()] == ["bob"]
        np.testing.assert_array_equal(g.load(FP).matrix, keep)
    raw = path.read_bytes()
    # Neither the whole ciphertext nor any 16-byte piece of it survives anywhere.
    assert not any(piece in raw for s in secrets_ for piece in chunks(np.frombuffer(s, np.uint8)))
    assert b"alice" not in raw


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edge.gallery.store import Gallery
    rng = np.random.default_rng(0)
    with Gallery(sys.argv[1]) as g:
        for i in range(100000):
            g.add(f"p{i:05d}", rng.normal(size=(4, 25088)).astype(np.float32), "{FP}")
            print(i, flush=True)
    """
).replace("{FP}", FP)


def test_sigkill_mid_enrolment_keeps_every_earlier_person(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    )
    done = [proc.stdout.readline() for _ in range(15)]
    proc.send_signal(signal.SIGKILL)  # somewhere inside the next enrolment's write
    proc.wait()
    committed = {f"p{int(line):05d}" for line in done}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Gallery(path) as g:
        people = {p.name: p.embeddings for p in g.people()}
        assert committed <= people.keys()
        assert set(people.values()) == {4}  # no half-written person
        enrolled = g.load(FP)  # every row still decrypts
        assert enrolled.matrix.shape == (4 * len(people), 25088)


def test_add_many_is_one_chunk_per_person_and_round_trips(tmp_path: Path):
    rng = np.random.default_rng(11)
    names = ["p1", "p0", "p1", "p2"]
    vectors = unit(rng, 4, dim=32)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        assert g.add_many(names, vectors, FP) == 4
        with pytest.raises(GalleryError, match="3 names for 4"):
            g.add_many(names[:3], vectors, FP)
        assert [(p.name, p.embeddings) for p in g.people()] == [("p0", 1), ("p1", 2), ("p2", 1)]
        enrolled = g.load(FP)
    rows = {n: vectors[[i for i, m in enumerate(names) if m == n]] for n in set(names)}
    assert sorted(enrolled.names) == sorted(names)
    for name in rows:
        got = enrolled.matrix[[i for i, m in enumerate(enrolled.names) if m == name]]
        np.testing.assert_array_equal(got, rows[name])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone() == (3,)


def test_chunks_moved_to_other_positions_fail_authentication(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    rng = np.random.default_rng(12)
    with Gallery(path) as g:
        g.add("alice", unit(rng, 1), FP)
        g.add("alice", unit(rng, 2), FP)
    with sqlite3.connect(path) as conn:  # the associated data binds each chunk's position
        conn.execute("UPDATE chunks SET seq = 1 - seq + 10")
    with Gallery(path) as g, pytest.raises(GalleryError, match="tampered"):
        g.load(FP)


def _schema1_gallery(path: Path, people: dict[str, np.ndarray]) -> bytes:
    """A gallery as facelens' schema 1 wrote it (one AES-GCM row per embedding)."""
    import json
    import secrets

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = secrets.token_bytes(32)
    path.with_name(path.name + ".key").write_text(key.hex() + "\n")
    aes = AESGCM(key)
    nonce = secrets.token_bytes(12)
    check = nonce + aes.encrypt(nonce, b"facelens gallery key check", None)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE embeddings (id INTEGER PRIMARY KEY, person TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL, dim INTEGER NOT NULL, nonce BLOB NOT NULL, "
            "ciphertext BLOB NOT NULL, created TEXT NOT NULL);"
        )
        conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (check.hex(),))
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        for person, vectors in people.items():
            for v in vectors:
                nonce = secrets.token_bytes(12)
                ad = json.dumps([person, FP, v.size]).encode()
                conn.execute(
                    "INSERT INTO embeddings (person, fingerprint, dim, nonce, ciphertext, created)"
                    " VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00+00:00')",
                    (person, FP, v.size, nonce, aes.encrypt(nonce, v.tobytes(), ad)),
                )
    return key


def test_schema1_gallery_is_upgraded_on_open_and_its_rows_erased(tmp_path: Path):
    rng = np.random.default_rng(13)
    people = {"alice": unit(rng, 2), "bob": unit(rng, 1)}
    path = tmp_path / "g.sqlite"
    _schema1_gallery(path, people)
    with sqlite3.connect(path) as conn:
        old = [bytes(c) for (c,) in conn.execute("SELECT ciphertext FROM embeddings")]
    with Gallery(path) as g:
        enrolled = g.load(FP)
        assert [(p.name, p.embeddings) for p in g.people()] == [("alice", 2), ("bob", 1)]
    assert enrolled.names == ["alice", "alice", "bob"]
    np.testing.assert_array_equal(enrolled.matrix, np.concatenate(list(people.values())))
    raw = path.read_bytes()
    assert not any(piece in raw for c in old for piece in chunks(np.frombuffer(c, np.uint8)))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            "2",
        )


def test_schema1_gallery_without_its_key_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    _schema1_gallery(path, {"alice": unit(np.random.default_rng(14), 1)})
    (tmp_path / "g.sqlite.key").unlink()
    before = path.read_bytes()
    with pytest.raises(GalleryError, match=r"schema 1.*needs its key"):
        Gallery(path)
    assert path.read_bytes() == before


def test_the_calibration_cohort_is_encrypted_and_replaced_with_the_threshold(tmp_path: Path):
    cohort = unit(np.random.default_rng(3), 40, dim=128)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        assert g.cohort(FP) is None
        g.set_threshold(FP, {"cosine": 0.5, "open_set": {"norm": "s"}}, cohort=cohort)
        np.testing.assert_array_equal(g.cohort(FP), cohort)
        assert g.cohort("0000000000000000") is None
    raw = path.read_bytes()
    assert not [c for c in chunks(cohort) if c in raw], "cohort embeddings stored in clear"
    with Gallery(path) as g:  # a new calibration without a cohort drops the old one
        np.testing.assert_array_equal(g.cohort(FP), cohort)
        g.set_threshold(FP, {"cosine": 0.6})
        assert g.cohort(FP) is None and g.threshold(FP) == {"cosine": 0.6}
    with sqlite3.connect(path) as conn:
        assert not conn.execute("SELECT 1 FROM meta WHERE key LIKE 'cohort:%'").fetchall()


def test_a_tampered_cohort_fails_authentication(tmp_path: Path):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.set_threshold(FP, {"cosine": 0.5}, cohort=unit(np.random.default_rng(4), 4))
    with sqlite3.connect(path) as conn:
        (value,) = conn.execute(f"SELECT value FROM meta WHERE key = 'cohort:{FP}'").fetchone()
        flipped = value[:-8] + ("A" if value[-8] != "A" else "B") + value[-7:]
        conn.execute(f"UPDATE meta SET value = ? WHERE key = 'cohort:{FP}'", (flipped,))
    with Gallery(path) as g, pytest.raises(GalleryError, match=r"cohort .* tampered"):
        g.cohort(FP)


def test_one_facelens_serves_its_gallery_to_several_threads(tmp_path: Path):
    """FaceLens promises one instance may be shared by threads (a service does that)."""
    import threading

    from edge import FaceLens

    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.add("alice", unit(np.random.default_rng(14), 1), FP)
    lens = FaceLens(gallery=path)
    assert [p.name for p in lens.people()] == ["alice"]  # opened by this thread
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(lens.people()))
    worker.start()
    worker.join()
    assert [p.name for p in seen[0]] == ["alice"]
    assert lens.forget("alice") == 1
    lens.close()
