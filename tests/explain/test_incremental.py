"""Occluded copies run incrementally through INT8 TFLite give the whole model's features,
to the bit: real bundles, real LiteRT, a real face."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.faces.detect import YuNetDetector
from edge.model.embedder import Embedder
from explain.base import embedder_features
from explain.cli import main
from explain.crops import FaceLoader
from explain.incremental import IncrementalFeatures
from explain.occlusion import Occlusion
from explain.stages import Window, cut, op_name, read
from explain.targets import self_target

FACE = "AJ_Cook/AJ_Cook_0001.jpg"


def face(bundle, lfw_dir, yunet_path) -> np.ndarray:
    loader = FaceLoader(bundle.input_spec, detector=YuNetDetector(yunet_path))
    return loader.load(lfw_dir / "images" / FACE).pixels


def edited_copies(x0: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Copies of ``x0`` changed in corners, along edges, inside, one pixel, two spots, none."""
    h, w = x0.shape[:2]
    p = max(h // 9, 2)
    boxes = [
        [(0, 0, p, p)],
        [(h - p, w - p, p, p)],
        [(0, w // 2 - 3, p, p)],
        [(h // 2 + 1, 0, p, p + 3)],
        [(h // 3, w // 3 + 1, p, p)],
        [(h // 2, w // 2, 1, 1)],
        [(3, 5, p // 2, p), (h - p, w // 2, p, p // 2)],
        [],
        [(0, 0, h, p)],
        [(h // 2 - 1, 1, p, w - 2)],
    ]
    copies = np.repeat(x0[None], len(boxes), axis=0)
    for copy, spots in zip(copies, boxes, strict=True):
        for y, x, bh, bw in spots:
            copy[y : y + bh, x : x + bw] = fill[y : y + bh, x : x + bw]
    return copies


@pytest.mark.parametrize("name", ["tiny_bundle", "faceres_bundle", "vgg16_bundle", "dlib_bundle"])
def test_edits_give_the_whole_models_features_to_the_bit(name, request, lfw_dir, yunet_path):
    bundle = request.getfixturevalue(name)
    fn = embedder_features(Embedder(bundle, "tflite-int8", threads=2), batch_size=4)
    assert isinstance(fn, IncrementalFeatures)  # the default for INT8 TFLite
    plain = Embedder(bundle, "tflite-int8", threads=2)
    x0 = fn.normalize(face(bundle, lfw_dir, yunet_path)[None])[0]
    fill = fn.normalize(np.full((1, *x0.shape[:2], 3), 128.0, np.float32))[0]
    copies = edited_copies(x0, fill)
    run = fn.around(x0)
    got = np.concatenate([run(copies[:4]), run(copies[4:])])  # batches of 4 and 6 (in 4 + 2)
    want = plain.embed_batch(copies)
    assert np.array_equal(got, want)
    assert np.array_equal(run(x0[None]), plain.embed_batch(x0[None]))
    # and the first stages really ran on crops
    assert fn.backend.runner.work[1].fraction < 0.5


def test_the_occlusion_map_is_the_same_and_cheaper(vgg16_bundle, lfw_dir, yunet_path):
    pixels = face(vgg16_bundle, lfw_dir, yunet_path)
    fast = embedder_features(Embedder(vgg16_bundle, "tflite-int8", threads=2), 8)
    slow = embedder_features(Embedder(vgg16_bundle, "tflite-int8", threads=2), 8, incremental=False)
    assert not isinstance(slow, IncrementalFeatures)
    target = self_target(slow(pixels[None]))
    maps = [
        Occlusion(fn, patch=25, stride=40, batch_size=8).explain(pixels[None], target)[0]
        for fn in (fast, slow)
    ]
    assert np.array_equal(*maps) and maps[0].max() > 0
    work = fast.backend.runner.work
    # VGG16's blocks 1-3 (13 of its 15 G MACs are blocks 1-4) ran on a small share of the map
    assert all(w.fraction < 0.25 for w in work[:10]), [round(w.fraction, 3) for w in work]


def test_vgg16_cuts_at_every_layer_and_runs_its_flatten_whole(vgg16_bundle):
    model = read(vgg16_bundle.artifact_path("tflite-int8"))
    stages = cut(model)
    graph = model.subgraphs[0]
    names = [[op_name(model, op) for op in graph.operators[s.first : s.stop]] for s in stages]
    assert names[:4] == [["QUANTIZE"], ["CONV_2D"], ["CONV_2D"], ["MAX_POOL_2D"]]
    assert sum(n == ["MAX_POOL_2D"] for n in names) == 5
    assert all(s.geometry is not None for s in stages[:19])
    assert "RESHAPE" in names[19] and stages[19].geometry is None  # a reshape: whole
    # the stages tile the operators in order
    assert stages[0].first == 0 and stages[-1].stop == len(graph.operators)
    assert all(a.stop == b.first and a.output == b.input for a, b in itertools.pairwise(stages))


@given(
    kernel=st.integers(1, 7),
    stride=st.integers(1, 3),
    same=st.booleans(),
    n=st.integers(7, 40),
    data=st.data(),
)
def test_a_window_affects_and_needs_what_its_outputs_read(kernel, stride, same, n, data):
    window = Window(kernel, stride, same)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo, n - 1))
    p, out = window.pad(n), window.size(n)

    def reads(j: int) -> set[int]:
        return {i for i in range(j * stride - p, j * stride - p + kernel) if 0 <= i < n}

    hit = [j for j in range(out) if reads(j) & set(range(lo, hi + 1))]
    assert window.affected((lo, hi), n) == ((hit[0], hit[-1]) if hit else None)
    j0 = data.draw(st.integers(0, out - 1))
    j1 = data.draw(st.integers(j0, out - 1))
    read = set().union(*(reads(j) for j in range(j0, j1 + 1)))
    assert window.needed((j0, j1), n) == (min(read), max(read))


def test_the_command_gives_the_same_map_without_incremental(tiny_bundle, lfw_dir, tmp_path):
    photo = str(lfw_dir / "images" / FACE)
    drops = []
    for extra in ([], ["--no-incremental"]):
        args = ["occlusion", photo, "--bundle", str(tiny_bundle.path), "--out", str(tmp_path)]
        assert (
            main([*args, "--format", "tflite-int8", "--patch", "12", "--stride", "6", *extra]) == 0
        )
        drops.append(json.loads((tmp_path / "occlusion.json").read_text())["results"][0])
    assert (
        drops[0]["max_drop"] == drops[1]["max_drop"] and drops[0]["regions"] == drops[1]["regions"]
    )
