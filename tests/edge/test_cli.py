"""The ``edge`` command run as a real subprocess on real bundles, photos and galleries."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.gallery.store import KEY_ENV

from .conftest import sigint_default


def edge(*args: str | Path, home: Path, env: dict[str, str] | None = None):
    """Run ``python -m edge.cli.main ARGS`` with its data folder at ``home``."""
    full_env = {k: v for k, v in os.environ.items() if k != KEY_ENV}  # the key file is used
    full_env.update(FACELENS_HOME=str(home), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def assert_clean_error(run: subprocess.CompletedProcess, match: str) -> None:
    """Non-zero exit, one ``error:`` line naming the problem, and no traceback."""
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert match in errors[0], errors[0]


@pytest.fixture
def photos(lfw_dir: Path) -> dict[str, list[Path]]:
    images = lfw_dir / "images"
    return {
        name: sorted((images / name).glob("*.jpg"))
        for name in ("Serena_Williams", "Tony_Blair", "Colin_Powell")
    }


@pytest.fixture
def enrolled_home(tmp_path: Path, tiny_bundle, photos) -> Path:
    """A data folder whose gallery holds Serena and Tony (tiny bundle)."""
    home = tmp_path / "home"
    for name in ("Serena_Williams", "Tony_Blair"):
        run = edge("enroll", name, photos[name][0], "--bundle", tiny_bundle.path, home=home)
        assert run.returncode == 0, run.stderr
        assert f"enrolled '{name}' from 1 view(s)" in run.stdout
        assert f"kept {photos[name][0]}: face at" in run.stdout
    return home


def gallery_state(home: Path) -> bytes:
    return (home / "gallery.sqlite").read_bytes()


def test_enroll_people_recognize_forget(enrolled_home: Path, tiny_bundle, photos):
    home = enrolled_home
    people = edge("people", home=home)
    assert people.returncode == 0
    assert [line.split("\t")[0] for line in people.stdout.splitlines()[:2]] == [
        "Serena_Williams",
        "Tony_Blair",
    ]
    # The enrolled photo itself is recognised as its person with cosine ~1.
    run = edge(
        "recognize", photos["Tony_Blair"][0], "--bundle", tiny_bundle.path, "--json", home=home
    )
    assert run.returncode == 0, run.stderr
    *faces, summary = [json.loads(line) for line in run.stdout.splitlines()]
    best = max(faces, key=lambda f: f["score"])
    assert best["name"] == "Tony_Blair" and best["cosine"] > 0.99
    assert set(best) == {"source", "frame", "box", "name", "score", "cosine", "ms"}
    assert summary["summary"]["frames"] == 1 and summary["summary"]["faces"] == len(faces)
    assert set(summary["summary"]["latency_ms"]) >= {"detect", "align", "embed", "match"}

    forget = edge("forget", "Tony_Blair", home=home)
    assert forget.returncode == 0 and "removed 1 encrypted embedding" in forget.stdout
    assert b"Tony_Blair" not in gallery_state(home)
    assert_clean_error(edge("forget", "Tony_Blair", home=home), "is not in the gallery")


def test_several_alike_faces_are_refused_unless_told_which(tmp_path: Path, tiny_bundle, photos):
    pair = np.hstack(
        [cv2.imread(str(photos["Serena_Williams"][0])), cv2.imread(str(photos["Colin_Powell"][0]))]
    )
    group = tmp_path / "group.png"
    cv2.imwrite(str(group), pair)
    home = tmp_path / "home"
    refused = edge("enroll", "someone", group, "--bundle", tiny_bundle.path, home=home)
    assert_clean_error(refused, "none clearly dominates")
    assert (
        "#0 box=" in refused.stderr and "#1 box=" in refused.stderr and "--face N" in refused.stderr
    )
    assert not (home / "gallery.sqlite").exists() or b"someone" not in gallery_state(home)
    chosen = edge(
        "enroll", "someone", group, "--face", "1", "--bundle", tiny_bundle.path, home=home
    )
    assert chosen.returncode == 0, chosen.stderr


def test_bad_inputs_are_one_line_errors_and_the_gallery_is_intact(
    enrolled_home: Path, tiny_bundle, tmp_path: Path
):
    home = enrolled_home
    before = gallery_state(home)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(500))
    (bad / "notes.jpg").write_text("this is not an image\n" * 20)
    _, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    huge = bytearray(png.tobytes())
    huge[16:24] = (60000).to_bytes(4, "big") * 2  # claims 60000x60000 pixels
    (bad / "huge.png").write_bytes(bytes(huge))
    cv2.imwrite(str(bad / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    b = tiny_bundle.path
    cases = [
        (("enroll", "x", bad / "empty.jpg", "--bundle", b), "is empty"),
        (("enroll", "x", bad / "corrupt.jpg", "--bundle", b), "not an image OpenCV can read"),
        (("enroll", "x", bad / "notes.jpg", "--bundle", b), "not an image OpenCV can read"),
        (("enroll", "x", bad / "huge.png", "--bundle", b), "60000x60000 pixels"),
        (("enroll", "x", bad / "wall.png", "--bundle", b), "no face found"),
        (("enroll", "x", bad / "missing.jpg", "--bundle", b), "does not exist"),
        (("recognize", bad / "corrupt.jpg", "--bundle", b), "not an image OpenCV can read"),
        (("recognize", "93", "--bundle", b), "camera 93 cannot be opened"),
        (("recognize", bad / "missing.mp4", "--bundle", b), "does not exist"),
        (("recognize", bad / "wall.png", "--bundle", tmp_path / "nobundle"), "no model bundle"),
        (("calibrate", "--pairs", bad / "notes.jpg", "--images", bad, "--bundle", b), "pairs"),
    ]
    for args, message in cases:
        assert_clean_error(edge(*args, home=home), message)
    assert gallery_state(home) == before


def test_missing_or_tampered_artifact(enrolled_home: Path, tiny_bundle, photos, tmp_path: Path):
    home = enrolled_home
    before = gallery_state(home)
    photo = photos["Serena_Williams"][1]
    tampered = shutil.copytree(tiny_bundle.path, tmp_path / "tampered")
    artifact = tampered / "model_int8.tflite"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    assert_clean_error(
        edge("recognize", photo, "--bundle", tampered, home=home), "does not match the sha256"
    )
    artifact.unlink()
    assert_clean_error(edge("recognize", photo, "--bundle", tampered, home=home), "is missing")
    assert_clean_error(edge("enroll", "x", photo, "--bundle", tampered, home=home), "is missing")
    assert gallery_state(home) == before


def test_wrong_key_and_other_bundle_are_refused(
    enrolled_home: Path, tiny_bundle, faceres_bundle, photos
):
    home = enrolled_home
    before = gallery_state(home)
    photo = photos["Serena_Williams"][1]
    wrong = {KEY_ENV: "ab" * 32}
    for args in (
        ("recognize", photo, "--bundle", tiny_bundle.path),
        ("enroll", "x", photo, "--bundle", tiny_bundle.path),
    ):
        assert_clean_error(edge(*args, home=home, env=wrong), "wrong key")
    assert_clean_error(
        edge("recognize", photo, "--bundle", faceres_bundle.path, home=home),
        "pass the --bundle it was built with",
    )
    assert gallery_state(home) == before
    assert edge("people", home=home, env=wrong).returncode == 0  # names need no key


def face_clip(path: Path, photos: list[Path], frames: int) -> Path:
    """A 640x480 clip with one face per frame: the photos in turn, drifting and growing."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(frames):
        canvas = np.full((480, 640, 3), (90, 110, 100), np.uint8)
        side = 250 + 4 * i % 150
        face = cv2.resize(cv2.imread(str(photos[i % len(photos)])), (side, side))
        x, y = 20 + 9 * i % (640 - side - 20), 480 - side - 10 * (i % 5)
        canvas[y : y + side, x : x + side] = face
        writer.write(canvas)
    writer.release()
    return path


def test_recognize_a_video_names_the_enrolled_person(faceres_bundle, photos, tmp_path: Path):
    home = tmp_path / "home"
    serena = photos["Serena_Williams"]
    enrolled = edge("enroll", "Serena", serena[0], "--bundle", faceres_bundle.path, home=home)
    assert enrolled.returncode == 0, enrolled.stderr
    clip = face_clip(tmp_path / "clip.avi", serena[1:], frames=24)  # other photos of her
    out = tmp_path / "annotated.mp4"
    run = edge(
        "recognize", clip, "--bundle", faceres_bundle.path, "--json", "--save", out, home=home
    )
    assert run.returncode == 0, run.stderr
    *lines, summary = [json.loads(line) for line in run.stdout.splitlines()]
    faces = [x for x in lines if "event" not in x]
    # a video is followed face by face: one event for the one appearance
    (appearance,) = [x for x in lines if x.get("event") == "appearance"]
    assert appearance["name"] == "Serena" and appearance["frames"] >= 22
    assert appearance["source"] == str(clip) and appearance["first_seen"] == 0.0
    assert all(f["track"] == appearance["track_id"] for f in faces)
    assert summary["summary"]["frames"] == 24
    assert len({f["frame"] for f in faces}) >= 22  # a face found in (nearly) every frame
    named = [f["frame"] for f in faces if f["name"] == "Serena"]
    assert len(set(named)) >= 18, faces
    assert {f["name"] for f in faces} <= {"Serena", None}
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 24


def test_enrol_from_a_video_then_one_event_per_appearance(faceres_bundle, photos, tmp_path):
    home = tmp_path / "home"
    serena = photos["Serena_Williams"]
    clip = face_clip(tmp_path / "me.avi", serena[:4], frames=20)
    run = edge(
        "enroll", "Serena", "--video", clip, "--max-views", "3",
        "--bundle", faceres_bundle.path, home=home,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    kept = [line for line in run.stdout.splitlines() if line.startswith("kept ")]
    assert 1 <= len(kept) <= 3 and all(line.startswith(f"kept {clip} frame ") for line in kept)
    assert any(line.startswith("left out ") for line in run.stdout.splitlines())
    assert f"enrolled 'Serena' from {len(kept)} view(s)" in run.stdout

    door = face_clip(tmp_path / "door.avi", serena[4:8], frames=20)  # other photos of her
    run = edge("recognize", door, "--bundle", faceres_bundle.path, home=home)
    assert run.returncode == 0, run.stderr
    events = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    assert [(e["event"], e["name"]) for e in events] == [("appearance", "Serena")]
    assert events[0]["frames"] >= 18 and "FPS" in run.stdout  # then the timing table

    assert_clean_error(edge("enroll", "X", "--bundle", faceres_bundle.path, home=home), "nothing")


def test_calibrate_stores_a_threshold_that_recognize_uses(
    enrolled_home: Path, tiny_bundle, lfw_dir: Path, tmp_path: Path, photos
):
    home = enrolled_home
    lines = (lfw_dir / "pairs_devtrain.csv").read_text().splitlines()
    same = [x for x in lines[1:] if x.endswith(",1")][:30]
    other = [x for x in lines[1:] if x.endswith(",0")][:30]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join([lines[0], *same, *other]) + "\n")
    args = ("--pairs", pairs, "--images", lfw_dir / "images", "--far", "0.05")
    run = edge("calibrate", *args, "--bundle", tiny_bundle.path, home=home)
    assert run.returncode == 0, run.stderr
    assert re.search(r"raw cosine (\S+) \(FAR <= 0.05 on 30 impostor pairs", run.stdout)
    assert "stored in" in run.stdout and tiny_bundle.fingerprint in run.stdout
    # the open-set rule chosen on the same photos, and its operating point for 2 people
    assert re.search(
        r"open set: [nzts]\w*-norm(, centred on the cohort mean)? against \d+ cohort", run.stdout
    )
    assert "for your 2 people: normalised score" in run.stdout and "measured FPIR" in run.stdout
    assert "named at confidence >= 0.50" in run.stdout  # the operating point, in the unit

    photo = photos["Tony_Blair"][0]
    base = ("recognize", photo, "--bundle", tiny_bundle.path, "--json")
    calibrated = edge(*base, home=home)
    assert re.search(
        r"named at confidence >= 0.50 \(about 1.00% of strangers' appearances named for 2 "
        r"people; calibrated open set: ",
        calibrated.stderr,
    )
    faces = [json.loads(x) for x in calibrated.stdout.splitlines()[:-1]]
    assert faces and all(0 <= f["score"] <= 1 and "cosine" in f for f in faces)
    stranger = photos["Colin_Powell"][0]  # not enrolled: no stranger is that rare
    overridden = edge("recognize", stranger, "--bundle", tiny_bundle.path, "--json",
                      "--threshold", "1", home=home)  # fmt: skip
    assert "named at confidence >= 1.00" in overridden.stderr
    faces = [json.loads(x) for x in overridden.stdout.splitlines()[:-1]]
    assert faces and all(f["name"] is None for f in faces)


def _people_folder(lfw_dir: Path, folder: Path, count: int) -> Path:
    """``count`` LFW people with several photos, one sub-folder each (links, read in place)."""
    folder.mkdir()
    people = [d for d in sorted((lfw_dir / "images").iterdir()) if len(list(d.glob("*.jpg"))) > 2]
    for person in people[:count]:
        (folder / person.name).mkdir()
        for photo in sorted(person.glob("*.jpg"))[:4]:
            (folder / person.name / photo.name).symlink_to(photo)
    return folder


def test_calibrate_on_a_folder_of_people_changes_the_rule_and_refuses_too_few(
    enrolled_home: Path, tiny_bundle, lfw_dir: Path, tmp_path: Path
):
    home, bundle = enrolled_home, ("--bundle", tiny_bundle.path)
    before = edge("people", home=home)
    assert before.returncode == 0, before.stderr
    few = edge("calibrate", "--people", _people_folder(lfw_dir, tmp_path / "few", 6), *bundle,
               home=home)  # fmt: skip
    assert_clean_error(few, "at least 20")
    run = edge("calibrate", "--people", _people_folder(lfw_dir, tmp_path / "many", 24), *bundle,
               home=home)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert re.search(r"used 24 people, \d+ photos of ", run.stdout)
    assert "open set: " in run.stdout and "stored in" in run.stdout
    after = edge("people", home=home)
    assert "calibrated open set" in after.stdout and after.stdout != before.stdout
    # a confidence printed by one command is accepted by another's --threshold
    shown = re.search(r"named at confidence >= (\S+) ", after.stdout).group(1)
    photo = next((lfw_dir / "images" / "Tony_Blair").glob("*.jpg"))
    again = edge("recognize", photo, *bundle, "--threshold", shown, home=home)
    assert again.returncode == 0 and f"named at confidence >= {shown} " in again.stderr


def test_no_detect_uses_the_whole_image(enrolled_home: Path, tiny_bundle, photos):
    run = edge(
        "recognize", photos["Colin_Powell"][0], "--no-detect", "--json",
        "--bundle", tiny_bundle.path, home=enrolled_home,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (face,) = [json.loads(x) for x in run.stdout.splitlines()[:-1]]
    assert face["box"] == [0.0, 0.0, 250.0, 250.0]


def test_ctrl_c_stops_cleanly_with_a_summary(enrolled_home: Path, tiny_bundle, photos, tmp_path):
    clip = face_clip(tmp_path / "long.avi", photos["Tony_Blair"], frames=400)
    env = {**os.environ, "FACELENS_HOME": str(enrolled_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "recognize", str(clip), "--json",
         "--bundle", str(tiny_bundle.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=sigint_default,
    )  # fmt: skip
    first = proc.stdout.readline()
    assert json.loads(first)["frame"] == 0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert 0 < summary["frames"] < 400


def test_show_without_a_gui_is_a_clear_error(enrolled_home: Path, tiny_bundle, photos):
    run = edge(
        "recognize", photos["Tony_Blair"][0], "--show", "--bundle", tiny_bundle.path,
        home=enrolled_home, env={"DISPLAY": ""},
    )  # fmt: skip
    assert_clean_error(run, "--show needs a display")


def test_enroll_with_flip_then_the_gallery_decides(tmp_path: Path, tiny_bundle, photos):
    home = tmp_path / "home"
    enrolled = photos["Tony_Blair"][0]
    run = edge("enroll", "Tony", enrolled, "--bundle", tiny_bundle.path, "--flip", home=home)
    assert run.returncode == 0, run.stderr
    assert f"{tiny_bundle.fingerprint}+flip" in edge("people", home=home).stdout
    # no --flip, no --bundle: the gallery's own bundle, embedded as its people were
    run = edge("recognize", enrolled, "--json", home=home)
    assert run.returncode == 0, run.stderr
    assert ", flip)" in run.stderr
    best = max((json.loads(x) for x in run.stdout.splitlines()[:-1]), key=lambda f: f["score"])
    assert best["name"] == "Tony" and best["cosine"] > 0.99


def test_flip_against_a_plain_gallery_is_a_clear_error(enrolled_home: Path, photos):
    before = gallery_state(enrolled_home)
    run = edge("recognize", photos["Tony_Blair"][0], "--flip", home=enrolled_home)
    assert_clean_error(run, "made without flip")
    assert "re-enrol" in run.stderr and gallery_state(enrolled_home) == before
