"""Recent appearances in a real gallery file: encrypted, corrected in one transaction,
erased for good when they expire, are deleted, or their person is forgotten."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from edge.base.errors import GalleryError
from edge.gallery.recent import DAY_S, Face, Recent
from edge.gallery.review import Review
from edge.gallery.store import KEY_ENV, Gallery

from .test_gallery import unit

FP = "a1b2c3d4e5f60708"
THUMB = b"\xff\xd8" + bytes(range(256)) * 8 + b"\xff\xd9"  # a recognisable "JPEG"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def appearance(name: str | None, score: float = 0.7) -> dict:
    status = "known" if name else "unknown"
    return dict(first_seen=1.0, last_seen=3.0, frames=40, name=name, status=status,
                best_score=score)  # fmt: skip


def sealed_of(path: Path, sql: str) -> list[bytes]:
    with sqlite3.connect(path) as conn:
        return [bytes(c) for (c,) in conn.execute(sql)]


def pieces(blob: bytes, size: int = 16) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob) - size + 1, size)]


def test_a_kept_face_is_encrypted_and_comes_back(tmp_path: Path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.sqlite"
    e = unit(rng, 1)[0]
    with Gallery(path) as g:
        recent = Recent(g)
        kept_id = recent.keep("door", appearance("Ada"), Face(e, THUMB), FP, (120.0, 0.4))
        (kept,) = recent.list()
        assert (kept.id, kept.camera, kept.name, kept.frames) == (kept_id, "door", "Ada", 40)
        face = recent.face(kept)
        np.testing.assert_array_equal(face.embedding, e)
        assert face.thumbnail == THUMB
    raw = path.read_bytes()
    assert THUMB[2:66] not in raw and e.tobytes()[:32] not in raw  # no plaintext at rest


def test_expired_and_deleted_appearances_leave_no_ciphertext(tmp_path: Path):
    rng = np.random.default_rng(1)
    path = tmp_path / "g.sqlite"
    old = time.time() - 3 * DAY_S
    with Gallery(path) as g:
        g.add("bob", unit(rng, 1), FP)
        recent = Recent(g)
        for _ in range(3):
            recent.keep(
                "door", appearance(None), Face(unit(rng, 1)[0], THUMB), FP, (90.0, 0.3), old
            )
        fresh = recent.keep("door", appearance("bob"), Face(unit(rng, 1)[0], THUMB), FP, (90, 0.3))
        gone = recent.keep("hall", appearance(None), Face(unit(rng, 1)[0], THUMB), FP, (90, 0.3))
    expired = sealed_of(path, f"SELECT sealed FROM recent WHERE id NOT IN ({fresh}, {gone})")
    deleted = sealed_of(path, f"SELECT sealed FROM recent WHERE id = {gone}")
    assert len(expired) == 3 and all(s in path.read_bytes() for s in expired + deleted)
    with Gallery(path) as g:
        recent = Recent(g)
        assert recent.expire(days=1) == 3
        assert recent.expire(days=1) == 0
        assert recent.delete([gone]) == 1
        assert [k.id for k in recent.list()] == [fresh]
    raw = path.read_bytes()
    # Neither a whole ciphertext nor any 16-byte piece of one survives anywhere.
    assert not any(p in raw for s in expired + deleted for p in pieces(s))


def test_a_correction_is_one_transaction_and_forget_erases_what_names_them(tmp_path: Path):
    rng = np.random.default_rng(2)
    path = tmp_path / "g.sqlite"
    stranger = unit(rng, 1)[0]

    class Lens:  # what Review needs of a FaceLens: the gallery, fingerprint, bundle
        gallery = Gallery(path)
        fingerprint = FP
        bundle = type("B", (), {"name": "test", "path": tmp_path, "threshold": 0.5})()
        reloads = 0
        told: tuple[str, ...] = ()  # who the lens would tell its listeners (events, fleet) of

        def reload(self, enrolled=()) -> None:
            self.reloads += 1
            self.told += tuple(enrolled)

    lens = Lens()
    lens.gallery.add("Ada", unit(rng, 1), FP)
    review = Review(lens)
    kept_id = review.recent.keep("door", appearance("Ada"), Face(stranger, THUMB), FP, (99, 0.4))
    kept = review.reject(kept_id)
    assert (kept.name, kept.status, kept.corrected) == (None, "unknown", "not Ada")
    np.testing.assert_array_equal(review.recent.negatives(FP)["Ada"], stranger[None])
    assert lens.reloads == 1
    with pytest.raises(GalleryError, match="was not named"):
        review.reject(kept_id)  # nothing half-done: still one negative
    assert len(review.recent.negatives(FP)["Ada"]) == 1
    # confirm "it was Ben": the enrolment and the mark land together
    kept = review.confirm(kept_id, "Ben")
    assert (kept.name, kept.corrected) == ("Ben", "confirmed")
    assert lens.told == ("Ben",)  # a review's enrolment reaches the lens's listeners
    assert sorted(p.name for p in lens.gallery.people()) == ["Ada", "Ben"]
    negative = sealed_of(path, "SELECT ciphertext FROM negatives")
    assert review.recent.forget("Ada") == 1  # her negative
    assert review.recent.negatives(FP) == {}
    assert not any(p in path.read_bytes() for s in negative for p in pieces(s))
    lens.gallery.close()
