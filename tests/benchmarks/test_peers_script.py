"""peers.py on a few LFW pairs: face_recognition (real dlib) and facelens on the same photos."""

from __future__ import annotations

import sys

import pytest


def test_both_tools_on_the_same_photos(dlib_bundle, tmp_path, run_script, read_report):
    pytest.importorskip("face_recognition", reason="face_recognition absent: uv sync --group peers")
    proc = run_script(
        "peers",
        "--bundle",
        dlib_bundle.path,
        "--limit",
        "12",
        "--folds",
        "2",
        "--threads",
        "2",
        "--block",
        "5",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "peers")
    assert report["pairs"] == {"count": 12, "same": 6, "photos": report["pairs"]["photos"]}
    peer, opencv, ours = report["rows"]  # face_recognition, OpenCV's own SFace, facelens
    assert peer["tool"] == "face_recognition (dlib)" and ours["tool"].startswith("facelens")
    assert opencv["tool"].startswith("OpenCV SFace")
    assert peer["photos"] == opencv["photos"] == ours["photos"] == report["pairs"]["photos"] >= 12
    for row in (peer, opencv, ours):
        assert 0 < row["embed_ms"] <= row["per_face_ms"] < row["total_ms"]
        assert row["photos_per_s"] > 0 and row["cpu_per_wall"] > 0
        assert 0 <= row["acc_pct"] <= 100 and len(row["folds"]["folds"]) == 2
    # the same network both ways, on real LFW pairs: far better than chance even on 12 pairs
    assert peer["acc_pct"] >= 80 and peer["auc"] >= 0.9
    assert ours["acc_pct"] >= 80 and ours["auc"] >= 0.9
    assert opencv["acc_pct"] >= 80 and opencv["auc"] >= 0.9
    assert ours["settings"]["threads"] == 2 and ours["settings"]["format"] == "tflite-int8"
    assert report["settings"]["block"] == "5" and "in turns of 5" in proc.stdout
    ratio = report["speedups"]
    assert ratio["embed"] == pytest.approx(peer["embed_ms"] / ours["embed_ms"])
    assert ratio["photos_per_s"] == pytest.approx(ours["photos_per_s"] / peer["photos_per_s"])
    assert "| tool | embed ms/face |" in proc.stdout and "photos/s end to end" in proc.stdout
    assert (tmp_path / "peers.csv").read_text().count("\n") == 4
    assert (tmp_path / "peers.png").stat().st_size > 10_000


def test_without_face_recognition_it_says_how_to_install_it(monkeypatch):
    import peers

    from edge.base.errors import FacelensError

    monkeypatch.setitem(sys.modules, "face_recognition", None)  # import now fails
    with pytest.raises(FacelensError, match="uv sync --group peers"):
        peers.face_recognition_tool(upsample=1, jitters=1)


def test_a_too_small_limit_is_refused(tiny_bundle, tmp_path, run_script):
    proc = run_script("peers", "--bundle", tiny_bundle.path, "--limit", "4", "--out", tmp_path)
    assert proc.returncode == 2 and "--limit >= 2 x --folds" in proc.stderr
