"""``python -m explain contrast``: Grad-CAM of several bundles on the same photo."""

import json

from explain.cli import main


def test_each_bundle_is_explained_on_its_own_crop_of_the_same_photo(
    tiny_bundle, faceres_bundle, lfw_dir, tmp_path
):
    people = lfw_dir / "images" / "Abdullah_Gul"
    photo, reference = sorted(people.iterdir())[:2]
    bundles = [str(tiny_bundle.path), str(faceres_bundle.path)]
    args = ["contrast", str(photo), "--bundles", *bundles, "--target", str(reference)]
    assert main([*args, "--out", str(tmp_path)]) == 0
    (result,) = json.loads((tmp_path / "contrast.json").read_text())["results"]
    assert result["image"] == str(photo)
    tiny, faceres = result["models"]
    assert tiny["layer"] == "conv_last" and tiny["model"] == tiny_bundle.manifest.source.to_dict()
    assert faceres["layer"] == faceres_bundle.manifest.source.gradcam_layer
    for row in (tiny, faceres):
        assert row["target"] == f"cosine to {reference.name}"
        # landmarks follow each model's crop, so every region has a Grad-CAM mean in [0, 1]
        assert all(0 <= v <= 1 for v in row["regions"].values() if v is not None)
        assert row["regions"]["eyes"] is not None
    assert (tmp_path / result["figure"].split("/")[-1]).stat().st_size > 20_000


def test_a_folder_that_is_no_bundle_is_a_clean_error(tiny_bundle, lfw_dir, tmp_path, capsys):
    photo = next((lfw_dir / "images" / "Abdullah_Gul").iterdir())
    assert main(["contrast", str(photo), "--bundles", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_sface_beside_dlib_each_at_its_own_last_map(sface_bundle, dlib_bundle, lfw_dir, tmp_path):
    photo = lfw_dir / "images" / "Serena_Williams" / "Serena_Williams_0001.jpg"
    bundles = [str(dlib_bundle.path), str(sface_bundle.path)]
    assert main(["contrast", str(photo), "--bundles", *bundles, "--out", str(tmp_path)]) == 0
    (result,) = json.loads((tmp_path / "contrast.json").read_text())["results"]
    dlib, sface = result["models"]
    assert (dlib["layer"], sface["layer"]) == ("stage3_unit3_out", "conv_14_relu")
    for row in (dlib, sface):
        assert row["target"] == "cosine to itself"
        assert all(0 <= v <= 1 for v in row["regions"].values() if v is not None)
    # SFace's 7x7 map spreads over the inner face; its eyes are never left dark
    assert sface["regions"]["eyes"] > 0.3
