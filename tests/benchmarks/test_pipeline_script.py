"""pipeline.py end to end on the tiny bundle: generated clips, edge's loop, gallery search."""

from __future__ import annotations

import pytest


def test_clips_and_gallery_search(tiny_bundle, tmp_path, run_script, read_report):
    proc = run_script(
        "pipeline",
        "--bundle",
        tiny_bundle.path,
        "--frames",
        "6",
        "--threads",
        "1",
        "--gallery-sizes",
        "10,1000,4000",
        "--dim",
        "256",
        "--max-gallery-gb",
        "0.002",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "pipeline")
    clips = {c["faces_per_frame"]: c for c in report["clips"]}
    assert set(clips) == {0, 1, 4}
    # the warm-up frame is untimed: every other frame of each clip is counted
    assert all(c["frames"] == 5 for c in clips.values())
    # real YuNet on the pasted LFW photos finds exactly the faces that were pasted
    for count, clip in clips.items():
        assert clip["faces_found_per_frame"] == pytest.approx(count, abs=0.2)
        assert clip["fps"] > 0 and clip["detect_p50"] > 0 and clip["total_p50"] > 0
    assert clips[0]["embed_p50"] < clips[4]["embed_p50"]  # no faces, nothing to embed
    assert clips[0]["named_right_pct"] is None and clips[0]["named_wrong"] == 0

    gallery = {g["embeddings"]: g for g in report["gallery"]}
    assert gallery[10]["how"] == gallery[1000]["how"] == "measured"
    assert gallery[10]["search_ms"] > 0 and gallery[1000]["search_ms"] > 0
    # 4000 x 256 float32 = 4.1 MB is over the 2 MB budget: scaled from 1000, and said so
    assert gallery[4000]["how"] == "extrapolated from 1,000"
    assert gallery[4000]["search_ms"] == pytest.approx(4 * gallery[1000]["search_ms"])
    assert gallery[4000]["matrix_gb"] == pytest.approx(4000 * 256 * 4 / 1e9)
    assert "| faces/frame |" in proc.stdout and "machine: " in proc.stdout
    assert (tmp_path / "pipeline.png").stat().st_size > 10_000


def test_an_unknown_format_is_a_clean_error(tiny_bundle, tmp_path, run_script, assert_clean_error):
    proc = run_script(
        "pipeline", "--bundle", tiny_bundle.path, "--format", "keras", "--out", tmp_path
    )
    assert_clean_error(proc, "keras")
