"""The fuzz suite in CI: seeded, bounded, through the real entry points; it must find nothing.

``benchmarks/fuzz.py`` is the engine (a longer run is ``--count 20000``); here it runs
with a few hundred inputs per target under a 2 GB address-space limit, and a folder of
mutated images goes through the real ``edge recognize`` command.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np

from .conftest import REPO, run

sys.path.append(str(REPO / "benchmarks"))
import fuzz  # benchmarks/ is a folder of scripts, not a package

CI_COUNT = 300  # inputs per target (images get 4x): ~2,800 inputs in all, under a minute


def test_fuzz_finds_nothing(tmp_path: Path, tiny_bundle):
    report = tmp_path / "fuzz.json"
    done = run(
        "benchmarks.fuzz",
        "--count", CI_COUNT, "--seed", 0, "--bundle", tiny_bundle.path, "--json", report,
        home=tmp_path / "home", timeout=600,
    )  # fmt: skip
    summary = json.loads(report.read_text())
    print(done.stdout)  # how many inputs, per target and outcome (shown with -s / on failure)
    assert summary["findings"] == [], done.stdout
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert summary["total_inputs"] >= 8 * CI_COUNT
    for target in ("images", "names", "pairs", "galleries", "manifests"):
        outcomes = summary["outcomes"][target]
        assert outcomes.get("crash", 0) == 0
        assert sum(outcomes.values()) >= CI_COUNT  # the target really ran
    assert summary["outcomes"]["images"].get("accepted", 0) > 0  # not everything refused
    assert summary["max_rss_mb"] < 2048


def test_a_folder_of_mutated_images_through_edge_recognize(tmp_path: Path, tiny_bundle, lfw_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    seeds = fuzz.seed_images()
    pool = list(seeds.values())
    rng = random.Random(7)
    for i in range(150):
        ext = rng.choice(list(seeds))
        (folder / f"m{i:03d}{ext}").write_bytes(fuzz.mutate(seeds[ext], rng, pool))
    cv2.imwrite(str(folder / "strip-wide.png"), np.full((1, 1300, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "strip-tall.png"), np.full((1300, 1, 3), 90, np.uint8))
    face = lfw_dir / "images" / "Tony_Blair" / "Tony_Blair_0006.jpg"
    (folder / "zz-face.jpg").write_bytes(face.read_bytes())
    done = run(
        "edge.cli.main", "recognize", folder, "--bundle", tiny_bundle.path, "--json",
        home=tmp_path / "home",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert any(line.get("source", "").endswith("zz-face.jpg") for line in lines)  # run went on
    summary = lines[-1]["summary"]
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("WARNING: skipping")]
    assert len(warnings) <= 3
    assert summary["skipped"] > 0 and f"skipped {summary['skipped']} unreadable" in done.stderr
    assert summary["frames"] + summary["skipped"] == 153
    assert done.max_rss_mb < 2048
