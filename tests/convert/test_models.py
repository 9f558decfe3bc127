"""The model builder convert exports and explain reuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convert import load_backbone
from convert.cli import main as convert_main
from convert.models import DLIB_MODEL, SFACE_MODEL, ModelError


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


@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")  # Keras' own h5 internals
def test_vgg16_loads_a_local_weights_file(tmp_path):
    from convert.models import vgg16

    path = tmp_path / "vgg16_notop.weights.h5"
    vgg16("none", seed=5).save_weights(path)
    local = load_backbone("vgg16", weights=str(path))
    assert local.model_id() == load_backbone("vgg16", weights="none", seed=5).model_id()
    assert local.source["weights"].startswith("sha256:") and local.source["seed"] is None
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match=r"cannot load VGG16 weights from .*junk\.h5"):
        load_backbone("vgg16", weights=str(tmp_path / "junk.h5"))
    with pytest.raises(ModelError, match="does not exist: use --weights imagenet, none"):
        load_backbone("vgg16", weights=str(tmp_path / "missing.h5"))


def test_import_convert_and_its_help_load_no_tensorflow_and_change_nothing():
    code = (
        "import os, sys, warnings, logging; env = dict(os.environ); "
        "filters = list(warnings.filters); level = logging.getLogger('tensorflow').level; "
        "import convert, convert.cli\n"
        "try:\n    convert.cli.parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert dict(os.environ) == env and warnings.filters == filters\n"
        "assert logging.getLogger('tensorflow').level == level"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "--calibration" in run.stdout  # the help was printed


@pytest.mark.parametrize(
    ("model", "name", "junk", "said"),
    [
        (DLIB_MODEL, "junk.dat", b"\x01\x01\x01\x0dnot a net", "is not a dlib network"),
        (SFACE_MODEL, "junk.onnx", b"not a network", "is not an ONNX model"),
    ],
)
def test_cli_names_a_bad_weights_file(model, name, junk, said, tmp_path, lfw_dir, capsys):
    weights = tmp_path / name
    weights.write_bytes(junk)
    argv = ["--model", model, "--weights", str(weights), "--out", str(tmp_path / "b")]
    assert convert_main([*argv, "--calibration", str(lfw_dir / "images")]) == 1
    err = capsys.readouterr().err
    assert f"{weights.name} {said}" in err and not (tmp_path / "b").exists()
