"""The float-vs-INT8 check on the face-trained model: real runtimes, real faces."""

import numpy as np
import pytest

from edge.faces.detect import YuNetDetector
from explain.compare import Comparer, aggregate
from explain.crops import FaceLoader
from explain.models import from_bundle, vgg16_classifier
from explain.regions import region_masks, region_scores

FACES = ("AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg")


@pytest.fixture(scope="module")
def compared(faceres_bundle, lfw_dir, yunet_path):
    model = from_bundle(faceres_bundle)
    comparer = Comparer(model, ["tflite-int8"])
    loader = FaceLoader(model.spec, detector=YuNetDetector(yunet_path))
    crops = [loader.load(lfw_dir / "images" / f) for f in FACES]
    runs = [comparer.face(c) for c in crops]
    return crops, runs, aggregate([r for _, r in runs], ["tflite-int8"])


def test_int8_tflite_looks_where_the_float_model_looks(compared):
    _, _, summary = compared
    int8 = summary["formats"]["tflite-int8"]
    # Measured on 24 LFW faces: worst Spearman 0.993, worst top-10 % IoU 0.81.
    assert int8["spearman"]["worst"] > 0.95
    assert int8["top10_iou"]["worst"] > 0.6
    assert int8["embedding_cosine"]["worst"] > 0.98


def test_each_map_is_faithful_to_its_own_model(compared):
    _, _, summary = compared
    for name, auc in summary["faithfulness"].items():
        # Deleting what the map ranks first hurts far more than revealing it costs.
        assert auc["deletion_auc"] < auc["insertion_auc"] - 0.2, name


def test_a_face_recogniser_looks_at_the_face_not_the_clothes(compared):
    crops, runs, _ = compared
    for crop, (maps, _) in zip(crops, runs, strict=True):
        for heatmap in (maps["float occlusion"], maps["tflite-int8 occlusion"]):
            scores = region_scores(heatmap, region_masks(crop.landmarks, heatmap.shape))
            inner = max(scores["eyes"], scores["nose"], scores["mouth"])
            assert inner > 3 * scores["below_chin"], crop.source


def test_untrained_vgg16_says_so_in_every_title():
    model = vgg16_classifier("none", seed=0)
    assert model.untrained and model.classifier
    assert "untrained weights" in model.title("Grad-CAM")
    assert model.gradcam_layers == ("block3_conv3", "block4_conv3", "block5_conv3")
    probs = model.features()(np.full((1, 224, 224, 3), 128, np.float32))
    assert probs.shape == (1, 1000) and abs(float(probs.sum()) - 1) < 1e-4
