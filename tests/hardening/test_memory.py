"""No command above 2 GB on any input under 10 MB: the largest images facelens accepts.

A few hundred kilobytes of PNG or GIF can hold 100 megapixels. These files sit just
under the caps (100 MP; 25 MP for HDR, which decodes to floats), so they are decoded
for real: the peak resident memory of one ``edge recognize`` over all of them is the
worst case a small file can cause (larger claims are refused from the header).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import run

SIDE = 9990  # 99.8 MP


@pytest.mark.slow
def test_the_largest_accepted_images_stay_under_2_gb(tmp_path: Path, tiny_bundle):
    folder = tmp_path / "big"
    folder.mkdir()
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[::97] = 200
    for ext in (".png", ".gif", ".webp"):
        ok, buf = cv2.imencode(
            ext, image, [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
        )
        assert ok and len(buf) < 10_000_000
        (folder / f"big{ext}").write_bytes(buf.tobytes())
    del image
    side = 4990  # 24.9 MP of 32-bit floats
    hdr = np.zeros((side, side, 3), np.float32)
    hdr[::97] = 0.5
    ok, buf = cv2.imencode(".hdr", hdr)
    assert ok and len(buf) < 10_000_000
    (folder / "big.hdr").write_bytes(buf.tobytes())
    del hdr
    done = run(
        "edge.cli.main", "recognize", folder, "--bundle", tiny_bundle.path, "--threads", "1",
        home=tmp_path / "home",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 frames" in done.stdout  # every one was decoded, none refused
    assert done.max_rss_mb < 2048, f"peak RSS {done.max_rss_mb:.0f} MB"
