"""serve.py end to end: a real `edge serve` on loopback, identify under 1 and 2 clients."""

from __future__ import annotations


def test_identify_throughput_and_latency(tiny_bundle, tmp_path, run_script, read_report):
    proc = run_script(
        "serve", "--bundle", tiny_bundle.path, "--clients", "1,2", "--requests", "8",
        "--threads", "1", "--out", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = read_report(tmp_path, "serve")["rows"]
    assert [r["clients"] for r in rows] == [1, 2]
    for r in rows:
        assert r["requests"] == 8 and r["errors"] == 0
        assert r["rps"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert 0 < r["server_ms_p50"] < r["p50_ms"]  # the HTTP round trip costs something


def test_missing_person_is_a_clean_error(tiny_bundle, tmp_path, run_script, assert_clean_error):
    proc = run_script("serve", "--bundle", tiny_bundle.path, "--person", "Nobody_At_All")
    assert_clean_error(proc, "Nobody_At_All", "--person")
