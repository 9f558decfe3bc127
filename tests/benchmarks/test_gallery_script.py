"""gallery.py end to end at small sizes: encrypted galleries, every index, recall vs brute force."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss", reason="faiss-cpu (the `index` extra) is not installed")


def test_every_index_at_two_sizes_and_real_faces(
    tiny_pca_bundle, tmp_path, run_script, read_report
):
    proc = run_script(
        "gallery",
        *("--sizes", "500,3000", "--dim", "16", "--queries", "30"),
        *("--indexes", "exact,flat,ivf,hnsw", "--threads", "1"),
        *("--bundle", tiny_pca_bundle.path, "--real-photos", "40", "--out", tmp_path),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path, "gallery")
    rows = {(r["data"], r["embeddings"], r["index"]): r for r in report["rows"]}
    for n in (500, 3000):
        for kind in ("exact", "flat", "ivf", "hnsw"):
            row = rows[("synthetic", n, kind)]
            assert row["search_p50_ms"] > 0 and row["search_p99_ms"] >= row["search_p50_ms"]
            assert row["open_s"] > 0 and row["gallery_mb"] > 0 and row["build_s"] >= 0
            assert 0.9 <= row["recall_at_1"] <= 1
        assert rows[("synthetic", n, "exact")]["recall_at_1"] == 1  # the reference itself
        assert rows[("synthetic", n, "flat")]["recall_at_1"] == 1  # exact, through FAISS
    assert rows[("synthetic", 3000, "ivf")]["index_settings"]["nprobe"] >= 1
    real = [r for r in report["rows"] if r["data"].startswith("LFW")]
    assert {r["index"] for r in real} == {"exact", "flat", "ivf", "hnsw"}
    assert all(r["dim"] == 8 and r["queries"] > 0 for r in real)
    assert (tmp_path / "gallery.png").stat().st_size > 10_000
    assert "| synthetic | 3000 | ivf |" in proc.stdout


def test_bad_arguments_are_refused(run_script, tmp_path):
    proc = run_script("gallery", "--indexes", "ivf,exact", "--out", tmp_path)
    assert proc.returncode == 2 and "must start with exact" in proc.stderr
