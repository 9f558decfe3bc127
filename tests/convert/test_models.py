"""The model builder convert exports and explain reuses."""

from __future__ import annotations

import pytest

from convert import load_backbone
from convert.models import ModelError


def test_a_user_model_can_be_cut_at_an_inner_layer(tiny_model):
    model, spec = tiny_model
    whole = load_backbone(model, input_spec=spec)
    assert whole.dim == 32 and whole.source["output_layer"] == "embedding"
    # an InputSpec object carries no gradcam_layer: the cut model's last conv is taken
    cut = load_backbone(model, layer="conv2", input_spec=whole.input_spec)
    assert cut.dim == 29 * 29 * 16  # 64 -conv-> 62 -pool-> 31 -conv-> 29, flattened
    assert cut.source["output_layer"] == "conv2" and cut.source["gradcam_layer"] == "conv2"
    assert cut.model_id() != whole.model_id()  # fewer weights, another embedding space
    assert whole.model_id() == load_backbone(model, input_spec=spec).model_id()
    # a gradcam_layer the spec names must lie inside the cut model
    with pytest.raises(ModelError, match="gradcam_layer 'conv_last' is not a layer"):
        load_backbone(model, layer="conv1", input_spec=spec)


def test_vgg16_builds_seeded_cut_and_with_top():
    base = load_backbone("vgg16", weights="none", seed=0)
    assert base.dim == 25088 and base.untrained
    assert base.model.get_layer("block5_conv3") is not None
    assert load_backbone("vgg16", weights="none", seed=0).model_id() == base.model_id()
    assert load_backbone("vgg16", weights="none", seed=1).model_id() != base.model_id()
    assert load_backbone("vgg16", weights="none", layer="block4_pool").dim == 14 * 14 * 512
    with pytest.raises(ModelError, match=r"no layer 'block6_pool'.*block5_pool"):
        load_backbone("vgg16", weights="none", layer="block6_pool")
    top = load_backbone("vgg16", weights="none", include_top=True)
    assert top.dim == 1000 and top.source["output_layer"] == "predictions"
    assert top.model.get_layer("block5_conv3") is not None
