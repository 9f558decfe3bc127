"""The gallery index: every kind names the same people as exact search, forgets, stays in RAM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.api import FaceLens
from edge.base.errors import FacelensError
from edge.gallery.index import APPROX_FROM, IndexUnavailable, build_index, choose_kind
from edge.gallery.matching import Matcher
from edge.gallery.store import KEY_ENV, Gallery

FP = "a1b2c3d4e5f60708"
DIM = 32
pytest.importorskip("faiss", reason="faiss-cpu (the `index` extra) is not installed")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def near(rng: np.random.Generator, vectors: np.ndarray, cosine: float) -> np.ndarray:
    """Another 'photo' of each vector: a unit vector at ``cosine`` to it."""
    noise = rng.standard_normal(vectors.shape).astype(np.float32)
    noise = unit(noise - np.sum(noise * vectors, axis=1, keepdims=True) * vectors)
    return unit(cosine * vectors + np.sqrt(1 - cosine**2) * noise)


@pytest.fixture(scope="module")
def population() -> tuple[list[str], np.ndarray, np.ndarray]:
    """4,000 embeddings of 2,000 people (two each) and one query per person."""
    rng = np.random.default_rng(0)
    identities = unit(rng.standard_normal((2000, DIM)))
    names = [f"p{i:04d}" for i in range(2000)] * 2
    matrix = np.concatenate([near(rng, identities, 0.9), near(rng, identities, 0.9)])
    return names, matrix, near(rng, identities, 0.9)


@pytest.mark.parametrize(
    ("kind", "options", "agreement"),
    [
        ("flat", {}, 1.0),
        ("ivf", {"nprobe": 1 << 20}, 1.0),  # every cell scanned: must be exact
        ("ivf", {}, 0.99),  # the default: approximate, recall measured in benchmarks/
        ("hnsw", {}, 0.99),
    ],
)
def test_every_index_names_who_exact_search_names(population, kind, options, agreement):
    names, matrix, queries = population
    exact = Matcher(names, matrix, threshold=0.5, index="exact")
    other = Matcher(names, matrix, threshold=0.5, index=kind, **options)
    assert other.index.kind == kind
    want, got = exact.match(queries), other.match(queries)
    same = [g.nearest == w.nearest for g, w in zip(got, want, strict=True)]
    assert np.mean(same) >= agreement
    for g, w, s in zip(got, want, same, strict=True):
        if s:  # the same person: the same exact cosine and the same decision
            assert g.cosine == pytest.approx(w.cosine, abs=1e-5) and g.name == w.name
    np.testing.assert_array_equal(other.scores(queries[:5]), exact.scores(queries[:5]))


def test_auto_is_exact_for_small_galleries_and_ivf_for_large():
    assert choose_kind(APPROX_FROM - 1) == "exact"
    assert choose_kind(APPROX_FROM) == "ivf"
    assert choose_kind(10, "hnsw") == "hnsw"
    with pytest.raises(FacelensError, match="unknown index 'annoy'"):
        choose_kind(10, "annoy")


def test_search_pads_when_the_gallery_is_smaller_than_k():
    matrix = unit(np.eye(3, DIM, dtype=np.float32))
    for index in (build_index(matrix, "exact"), build_index(matrix, "flat")):
        sims, rows = index.search(matrix[:1], 5)
        assert rows[0, 0] == 0 and sims[0, 0] == pytest.approx(1.0)
        assert (rows[0, 3:] == -1).all() if index.kind == "exact" else True


def test_forgotten_people_are_gone_from_the_index(
    tmp_path: Path, population, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(KEY_ENV, raising=False)
    names, matrix, queries = population
    before = set(tmp_path.iterdir())
    with Gallery(tmp_path / "g.sqlite") as gallery:
        gallery.add_many(names, matrix, FP)
        files = set(tmp_path.iterdir())
        enrolled = gallery.load(FP)
        matcher = Matcher(enrolled.names, enrolled.matrix, 0.5, index="ivf")
        assert matcher.match(queries[7:8])[0].name == "p0007"
        assert gallery.forget("p0007") == 2
        enrolled = gallery.load(FP)
        matcher = Matcher(enrolled.names, enrolled.matrix, 0.5, index="ivf")
    assert len(matcher.index) == len(matrix) - 2 and "p0007" not in matcher.people
    assert all(m.nearest != "p0007" for m in matcher.match(queries))
    assert matcher.match(queries[8:9])[0].name == "p0008"
    # Only the gallery and its key were ever written: the index lives in memory.
    assert files - before == {tmp_path / "g.sqlite", tmp_path / "g.sqlite.key"}
    assert set(tmp_path.iterdir()) == files


def test_edge_works_without_faiss():
    """With faiss-cpu missing, auto falls back to exact search; asking for IVF says what to do."""
    code = (
        "import sys, numpy as np; sys.modules['faiss'] = None\n"
        "from edge.gallery.matching import Matcher\n"
        "from edge.gallery.index import build_index, IndexUnavailable\n"
        f"m = Matcher(['a', 'b'], np.eye(2, {DIM}, dtype=np.float32), 0.5)\n"
        f"assert m.match(np.eye(1, {DIM}, dtype=np.float32))[0].name == 'a'\n"
        "assert m.index.kind == 'exact'\n"
        f"big = np.zeros(({APPROX_FROM}, 4), np.float32); big[:, 0] = 1\n"
        "assert build_index(big).kind == 'exact'\n"
        "try:\n    build_index(big, 'ivf')\nexcept IndexUnavailable as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install facelens[index]" in out.stdout
    assert "pip install facelens[index]" in out.stderr  # auto's warning at that size
    assert IndexUnavailable.__mro__[1] is FacelensError


def test_matching_does_not_import_faiss_for_small_galleries():
    code = (
        "import sys, numpy as np\n"
        "from edge.gallery.matching import Matcher\n"
        "import edge.model.pipeline, edge.gallery.store\n"
        "Matcher(['a'], np.ones((1, 4), np.float32), 0.5).match(np.ones((1, 4), np.float32))\n"
        "assert 'faiss' not in sys.modules, 'faiss imported for a 1-embedding gallery'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_facelens_enrols_forgets_and_recognises_the_same_with_an_index(
    tiny_plain_bundle, lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(KEY_ENV, raising=False)
    people = ["Colin_Powell", "Tony_Blair", "Serena_Williams", "Gerhard_Schroeder"]
    photos = {p: sorted((lfw_dir / "images" / p).glob("*.jpg"))[:2] for p in people}
    results = {}
    for kind in ("exact", "ivf", "hnsw"):
        with FaceLens(
            tiny_plain_bundle.path, tmp_path / f"{kind}.db", threshold=0.5, index=kind
        ) as lens:
            for person, (enrol, _) in photos.items():
                lens.enroll(person, enrol)
            before = [lens.identify(query)[0] for _, query in photos.values()]
            assert lens.matcher.index.kind == kind
            assert lens.forget("Tony_Blair") == 1
            after = [lens.identify(query)[0] for _, query in photos.values()]
            assert len(lens.matcher.index) == 3
        assert all(f.nearest != "Tony_Blair" for f in after)
        results[kind] = [(f.nearest, round(f.score, 5), f.name) for f in before + after]
    assert results["ivf"] == results["hnsw"] == results["exact"]
