"""Grad-CAM and occlusion on models whose right answer is known by construction."""

import keras
import numpy as np
import pytest

from edge.base.errors import FacelensError
from explain.gradcam import GradCAM, spatial_layers
from explain.models import ExplainModel
from explain.occlusion import Occlusion, patch_starts
from explain.targets import class_target, self_target, similarity_target, top1_target


def features_of(model, spec):
    return ExplainModel(model, spec, None, model.name).features()


def peak(heatmap):
    return np.unravel_index(np.argmax(heatmap), heatmap.shape)


def centre(heatmap):
    """The heatmap's centre of mass (y, x): where it points, even on a flat-topped blob."""
    ys, xs = np.mgrid[0 : heatmap.shape[0], 0 : heatmap.shape[1]]
    w = np.clip(heatmap, 0, None)
    return np.array([np.sum(ys * w), np.sum(xs * w)]) / np.sum(w)


def test_gradcam_lights_up_the_evidence_for_the_chosen_output(toys):
    model = toys.colour_detector()
    image = toys.blobs(red_at=(12, 12), blue_at=(36, 36))
    cam = GradCAM(model, "detect", toys.SPEC)
    red = cam.explain(image[None], class_target(0, 2))[0]
    blue = cam.explain(image[None], class_target(1, 2))[0]
    assert red.max() == pytest.approx(1.0)
    assert np.linalg.norm(centre(red) - (12, 12)) <= 1
    assert np.linalg.norm(centre(blue) - (36, 36)) <= 1
    # Each map ignores the other colour's disc.
    assert red[36, 36] < 0.05 and blue[12, 12] < 0.05


def test_gradcam_top1_follows_each_images_own_class(toys):
    model = toys.colour_detector()
    reddish = toys.blobs(red_at=(12, 12), blue_at=(36, 36), radius=3)
    reddish[20:30, 5:15] = (0, 0, 255)  # more red than blue: class 0 wins
    bluish = toys.blobs(red_at=(12, 12), blue_at=(36, 36), radius=3)
    bluish[20:30, 30:40] = (255, 0, 0)
    batch = np.stack([reddish, bluish])
    target = top1_target(features_of(model, toys.SPEC)(batch))
    maps = GradCAM(model, "detect", toys.SPEC).explain(batch, target)
    assert maps[0][25, 10] > 0.5 and maps[0][25, 35] < 0.05
    assert maps[1][25, 35] > 0.5 and maps[1][25, 10] < 0.05


def test_unknown_layer_is_refused_with_the_valid_ones(toys):
    model = toys.colour_detector()
    assert spatial_layers(model) == ["detect"]
    with pytest.raises(FacelensError, match="choose one of: detect"):
        GradCAM(model, "block5_conv3", toys.SPEC)


def test_occlusion_peaks_on_the_window_the_model_reads_and_is_zero_elsewhere(toys):
    model = toys.window_model(8, 20, 24, 40)
    features = features_of(model, toys.SPEC)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (toys.SIZE, toys.SIZE, 3)).astype(np.float32)
    target = self_target(features(image[None]))
    occ = Occlusion(features, patch=8, stride=4)
    heatmap = occ.explain(image[None], target)[0]
    window = np.zeros(heatmap.shape, bool)
    window[8:20, 24:40] = True
    # Patches that do not touch the window change nothing: exactly zero drop there.
    far = np.ones(heatmap.shape, bool)
    far[8 - 8 : 20 + 8, 24 - 8 : 40 + 8] = False
    assert np.abs(heatmap[far]).max() < 1e-5
    assert heatmap[window].mean() > 10 * max(np.abs(heatmap[~window]).mean(), 1e-9)
    assert window[peak(heatmap)]


def test_occlusion_batches_give_the_same_map_as_one_at_a_time(toys):
    model = toys.window_model(0, 24, 0, 24)
    features = features_of(model, toys.SPEC)
    image = toys.blobs((10, 10), (30, 30))
    target = similarity_target(features(image[None])[0] + 0.1)
    one = Occlusion(features, patch=10, stride=6, batch_size=1).explain(image[None], target)
    many = Occlusion(features, patch=10, stride=6, batch_size=64).explain(image[None], target)
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_patches_cover_the_whole_image():
    assert patch_starts(224, 25, 14)[-1] == 199
    assert len(patch_starts(224, 25, 14)) == 16
    assert patch_starts(48, 8, 4) == list(range(0, 41, 4))


def test_gradcam_similarity_targets_point_at_what_makes_the_match(toys):
    model = toys.colour_detector()
    image = toys.blobs(red_at=(12, 12), blue_at=(36, 36))
    cam = GradCAM(model, "detect", toys.SPEC)
    # Cosine to a "red" reference: red raises it, blue lowers it.
    to_red = cam.explain(image[None], similarity_target(np.array([1.0, 0.0])))[0]
    assert np.linalg.norm(centre(to_red) - (12, 12)) <= 1
    assert to_red[36, 36] < 0.05
    # Against itself (projection onto its own embedding): an only-red image shows red.
    red_only = np.full((toys.SIZE, toys.SIZE, 3), 100.0, np.float32)
    ys, xs = np.mgrid[0 : toys.SIZE, 0 : toys.SIZE]
    red_only[(ys - 30) ** 2 + (xs - 20) ** 2 <= 36] = (0, 0, 255)
    own = self_target(features_of(model, toys.SPEC)(red_only[None]))
    itself = cam.explain(red_only[None], own)[0]
    assert itself.max() == pytest.approx(1.0)
    assert np.linalg.norm(centre(itself) - (30, 20)) <= 1.5


def test_gradcam_of_several_layers_in_one_pass_equals_each_layer_alone(toys):
    keras.utils.set_random_seed(1)
    x = keras.Input((toys.SIZE, toys.SIZE, 3))
    a = keras.layers.Conv2D(4, 3, activation="relu", name="a")(x)
    b = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="b")(a)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(b))
    images = np.stack([toys.blobs((12, 12), (36, 36)), toys.blobs((30, 10), (10, 30))])
    target = self_target(features_of(model, toys.SPEC)(images))
    both = GradCAM(model, ["a", "b"], toys.SPEC)
    maps = both.explain_layers(images, target)
    assert list(maps) == ["a", "b"] and both.layer == "b"
    for layer in ("a", "b"):
        alone = GradCAM(model, layer, toys.SPEC).explain(images, target)
        np.testing.assert_allclose(maps[layer], alone, atol=1e-5)
    np.testing.assert_allclose(both.explain(images, target), maps["b"], atol=1e-6)


def test_gradcam_traces_once_for_every_image_of_the_same_size(toys):
    model = toys.colour_detector()
    cam = GradCAM(model, "detect", toys.SPEC)
    for red_at in ((12, 12), (30, 20), (20, 36)):
        cam.explain(toys.blobs(red_at, (36, 36))[None], class_target(0, 2))
    assert cam._cams.experimental_get_tracing_count() == 1


def plain_occlusion(features, image, target, patch, stride, fill=128.0):
    """The notebook's map: one occluded copy at a time, in pixels, summed patch by patch."""
    h, w = image.shape[:2]
    base = target.score(features(image[None]))[0]
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for y in patch_starts(h, patch, stride):
        for x in patch_starts(w, patch, stride):
            occluded = image.copy()
            occluded[y : y + patch, x : x + patch] = fill
            total[y : y + patch, x : x + patch] += base - target.score(features(occluded[None]))[0]
            count[y : y + patch, x : x + patch] += 1
    return total / count


def test_occlusion_in_normalised_space_is_the_notebooks_map(toys):
    model = toys.window_model(4, 30, 10, 44)
    features = features_of(model, toys.SPEC)  # a Features: the normalised fast path
    image = np.random.default_rng(2).uniform(0, 255, (toys.SIZE, toys.SIZE, 3)).astype(np.float32)
    target = self_target(features(image[None]))
    ours = Occlusion(features, patch=9, stride=5, batch_size=7).explain(image[None], target)[0]
    plain = plain_occlusion(features, image, target, 9, 5)
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    assert np.corrcoef(ours.ravel(), plain.ravel())[0, 1] > 0.9999


@pytest.mark.parametrize("field", ["patch", "stride", "batch_size"])
def test_occlusion_refuses_sizes_below_one(toys, field):
    with pytest.raises(FacelensError, match="must be a positive number"):
        Occlusion(lambda x: x, **{field: 0})


def test_coarse_to_fine_runs_fewer_patches_and_keeps_the_map(toys):
    model = toys.window_model(8, 20, 24, 40)
    features = features_of(model, toys.SPEC)
    calls = []

    def counted(x):
        calls.append(len(x))
        return features(x)

    image = np.random.default_rng(0).uniform(0, 255, (toys.SIZE, toys.SIZE, 3)).astype(np.float32)
    target = self_target(features(image[None]))
    full = Occlusion(counted, patch=8, stride=4).explain(image[None], target)[0]
    n_full, calls[:] = sum(calls), []
    rough = Occlusion(counted, patch=8, stride=4, refine=0.25).explain(image[None], target)[0]
    assert sum(calls) < 0.5 * n_full
    assert np.corrcoef(full.ravel(), rough.ravel())[0, 1] > 0.95
    assert peak(rough) == peak(full) or full[peak(rough)] > 0.9 * full.max()
    # every fine patch run: the full map exactly
    everything = Occlusion(features, patch=8, stride=4, refine=0.9999).explain(image[None], target)
    np.testing.assert_allclose(everything[0], full, atol=1e-6)
    with pytest.raises(FacelensError, match="between 0 and 1"):
        Occlusion(features, refine=1.5)
