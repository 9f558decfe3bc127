"""convert's open-set step: a bundle built without enough people says so, and edge follows."""

import shutil
from pathlib import Path

from convert.open_set import add_open_set
from edge.api import FaceLens
from edge.model.bundle import Bundle


def test_too_few_people_leave_a_warning_and_the_bundle_cosine(tiny_bundle, lfw_dir, tmp_path):
    people = tmp_path / "people"
    for person in ["Colin_Powell", "Serena_Williams", "Tony_Blair"]:
        (people / person).mkdir(parents=True)
        for photo in sorted((lfw_dir / "images" / person).glob("*.jpg"))[:2]:
            (people / person / photo.name).symlink_to(photo)
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, copy)
    (copy / "open_set.npz").unlink(missing_ok=True)
    info = add_open_set(copy, people, progress=False)
    assert info.file is None and "at least 20" in info.warning
    bundle = Bundle.load(copy)  # the manifest still validates
    assert bundle.manifest.open_set.warning == info.warning and bundle.open_set_path() is None
    with FaceLens(bundle, tmp_path / "g.db") as lens:
        assert lens.threshold.open_set is None and "NOT calibrated" in lens.threshold.origin
        assert lens.threshold.value == bundle.threshold  # the cosine decides, as before


def test_every_built_bundle_records_whom_it_was_calibrated_on(tiny_bundle):
    info = tiny_bundle.manifest.open_set
    assert info is not None and info.file == "open_set.npz" and info.people >= 20
    assert Path(tiny_bundle.open_set_path()).is_file()
