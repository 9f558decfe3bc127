"""Flip TTA is part of what made a gallery's embeddings: lenses follow it, never mix it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge import FaceLens
from edge.base.errors import GalleryError
from edge.gallery.store import Gallery
from edge.model.embedder import embedding_fingerprint


def photo(lfw_dir: Path, person: str, i: int = 0) -> Path:
    return sorted((lfw_dir / "images" / person).glob("*.jpg"))[i]


def scores(lens: FaceLens, image: Path) -> list[float]:
    return [f.score for f in lens.identify(image)]


@pytest.fixture
def flip_gallery(tiny_bundle, lfw_dir: Path, tmp_path: Path) -> Path:
    """A gallery with two people enrolled with flip."""
    path = tmp_path / "flip.db"
    with FaceLens(tiny_bundle.path, path, threads=1, flip=True) as lens:
        lens.enroll("Serena", [photo(lfw_dir, "Serena_Williams")])
        lens.enroll("Tony", [photo(lfw_dir, "Tony_Blair")])
    return path


def test_a_flip_gallery_is_recognised_with_flip_without_being_told(
    flip_gallery: Path, tiny_bundle, lfw_dir: Path, tmp_path: Path
):
    assert {p.fingerprint for p in Gallery(flip_gallery).people()} == {
        embedding_fingerprint(tiny_bundle.fingerprint, True)
    }
    probe = photo(lfw_dir, "Tony_Blair", 1)
    with (
        FaceLens(tiny_bundle.path, flip_gallery, threads=1) as follows,
        FaceLens(tiny_bundle.path, flip_gallery, threads=1, flip=True) as told,
    ):
        assert follows.pipeline.embedder.flip and follows.fingerprint.endswith("+flip")
        assert ", flip)" in follows.describe()
        found = scores(follows, probe)
        assert found and found == scores(told, probe)
    # and they are flip embeddings: an embedding of a plain lens differs
    with (
        FaceLens(tiny_bundle.path, flip_gallery, threads=1) as follows,
        FaceLens(tiny_bundle.path, tmp_path / "plain.db", threads=1) as plain,
    ):
        assert not np.allclose(follows.embed(probe, 0), plain.embed(probe, 0), atol=1e-3)


def test_a_flip_that_contradicts_the_gallery_is_a_clear_error(
    flip_gallery: Path, tiny_bundle, lfw_dir: Path, tmp_path: Path
):
    with pytest.raises(GalleryError, match="made with flip") as err:
        FaceLens(tiny_bundle.path, flip_gallery, threads=1, flip=False).load()
    assert str(flip_gallery) in str(err.value) and "re-enrol" in str(err.value)

    plain = tmp_path / "plain.db"
    with FaceLens(tiny_bundle.path, plain, threads=1) as lens:
        lens.enroll("Serena", [photo(lfw_dir, "Serena_Williams")])
        assert not lens.pipeline.embedder.flip  # an empty gallery: off unless asked
    with pytest.raises(GalleryError, match=r"made without flip.*drop --flip") as err:
        FaceLens(tiny_bundle.path, plain, threads=1, flip=True).identify(
            photo(lfw_dir, "Serena_Williams", 1)
        )
    assert str(plain) in str(err.value)


def test_a_gallery_from_before_the_flip_mark_still_loads(
    tiny_plain_bundle, lfw_dir: Path, tmp_path
):
    """Rows bound to the bare bundle fingerprint, as every gallery was before flip."""
    enrolled = photo(lfw_dir, "Serena_Williams")
    with FaceLens(tiny_plain_bundle.path, tmp_path / "scratch.db", threads=1) as scratch:
        vector = scratch.embed(enrolled, 0)
    path = tmp_path / "old.db"
    with Gallery(path) as g:
        g.add(
            "Serena",
            vector,
            tiny_plain_bundle.fingerprint,
            tiny_plain_bundle.name,
            tiny_plain_bundle.path,
        )
    with FaceLens(gallery=path, threads=1) as lens:  # the bundle from the gallery, as before
        assert not lens.pipeline.embedder.flip and lens.fingerprint == tiny_plain_bundle.fingerprint
        best = max(lens.identify(enrolled), key=lambda f: f.score)
        assert best.name == "Serena" and best.cosine > 0.999


def test_a_calibration_under_flip_is_found_by_flip_lenses_only(
    tiny_bundle, lfw_dir: Path, tmp_path: Path
):
    lines = (lfw_dir / "pairs_devtrain.csv").read_text().splitlines()
    same = [x for x in lines[1:] if x.endswith(",1")][:12]
    other = [x for x in lines[1:] if x.endswith(",0")][:12]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join([lines[0], *same, *other]) + "\n")
    path = tmp_path / "calibrated.db"
    with FaceLens(tiny_bundle.path, path, threads=1, flip=True) as lens:
        result = lens.calibrate(pairs, lfw_dir / "images", far=0.1, fpir=None)
    with FaceLens(tiny_bundle.path, path, threads=1, flip=True) as flip:
        assert flip.threshold.origin.startswith("calibrated")
        assert flip.threshold.value == pytest.approx(result.cosine)
    with FaceLens(tiny_bundle.path, path, threads=1, flip=False) as plain:
        assert not plain.threshold.origin.startswith("calibrated")  # the bundle's own
    # nothing enrolled yet: a lens not told follows the calibration, so enrolment matches it
    with FaceLens(tiny_bundle.path, path, threads=1) as follows:
        assert follows.pipeline.embedder.flip
        assert follows.threshold.value == pytest.approx(result.cosine)
