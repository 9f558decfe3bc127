"""`edge serve`'s peak memory under decompression bombs and many-part uploads (issue 20).

Starts a real `edge serve` (as benchmarks/serve.py does), then sends each case and reads
the server process's peak resident memory (``VmHWM`` in ``/proc/PID/status``), reset
before each case (``/proc/PID/clear_refs``) so every row is that case's own peak. The
target: no case above 1 GB. The bombs are benchmarks/_bombs.py's: a 730-byte JPEG 2000
and a 263 kB TIFF that OpenCV decodes to 144 MP each, and a ~100 kB PNG of 99.8 MP
(legal: it is decoded).

    uv run python benchmarks/serve_memory.py --bundle bundles/faceres
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _bombs
import httpx
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    run_cli,
    write_json,
)
from serve import start

TARGET_MB = 1024
COLUMNS = [("case", "case", 0), ("status", "answers", 0), ("peak_mb", "server peak RSS MB", 0)]


def _kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def _form(parts: list[tuple[str, bytes]]) -> dict[str, Any]:
    return {"files": [(field, (f"p{i}", data)) for i, (field, data) in enumerate(parts)]}


def cases(lfw_photo: bytes) -> dict[str, Callable[[httpx.Client], list[int]]]:
    """Each case: a name and what it sends (returns the status codes)."""
    jp2, tiff, png = _bombs.jp2_fake_size(), _bombs.tiff_width_twice(), _bombs.largest_png()
    many = 10_000_000 // len(png) - 1  # as many 100 MP PNGs as a 10 MB upload holds

    def send(method: str, path: str, parts: list[tuple[str, bytes]], **kw) -> Callable:
        return lambda http: [http.request(method, path, **_form(parts), **kw).status_code]

    def concurrent(http: httpx.Client) -> list[int]:
        codes: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: codes.append(
                    http.post("/v1/identify", **_form([("image", png)])).status_code
                )
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(codes)

    empty = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="image"\r\n\r\n\r\n' for _ in range(150_000)
    )
    return {
        "one LFW photo (baseline)": send("POST", "/v1/identify", [("image", lfw_photo)]),
        "JPEG 2000 bomb, 730 B -> 144 MP": send("POST", "/v1/identify", [("image", jp2)]),
        "TIFF width tagged twice, 263 kB -> 144 MP": send(
            "POST", "/v1/identify", [("image", tiff)]
        ),
        "PUT 6 x 100 MP PNG": send("PUT", "/v1/people/Ada", [("image", png)] * 6),
        f"PUT {many} x 100 MP PNG (10 MB)": send("PUT", "/v1/people/Ada", [("image", png)] * many),
        "DeepStack register 6 x 100 MP PNG": send(
            "POST", "/v1/vision/face/register", [("userid", b"Ada"), *[("image", png)] * 6]
        ),
        "one 100 MP PNG (decoded: the legal worst case)": send(
            "POST", "/v1/identify", [("image", png)]
        ),
        "4 clients at once, a 100 MP PNG each": concurrent,
        "PUT 150,000 empty parts (8 MB)": lambda http: [
            http.put(
                "/v1/people/Ada",
                content=empty + b"--B--\r\n",
                headers={"Content-Type": "multipart/form-data; boundary=B"},
            ).status_code
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = new_parser(__doc__)
    p.add_argument("--threads", type=int, default=2, help="the server's inference threads")
    args = p.parse_args(argv)
    photo = (LFW / "images" / "Tony_Blair" / "Tony_Blair_0006.jpg").read_bytes()
    info = machine_info()
    print(f"# serve memory: peak RSS of edge serve per case\n\nmachine: {machine_line(info)}\n")
    token = secrets.token_urlsafe(16)
    todo = cases(photo)
    rows = []
    with tempfile.TemporaryDirectory(prefix="facelens-serve-memory-") as home:
        proc, url = start(args, Path(home), token)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
                for name, call in todo.items():
                    Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # reset VmHWM
                    codes = call(http)
                    peak = _kb(proc.pid, "VmHWM") / 1024
                    rows.append(
                        {"case": name, "status": ",".join(map(str, codes)), "peak_mb": peak}
                    )
                    print(f"{name}: {codes} peak {peak:.0f} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("\n" + markdown_table(rows, COLUMNS))
    worst = max(r["peak_mb"] for r in rows)
    verdict = "met" if worst <= TARGET_MB else "MISSED"
    print(f"\nworst {worst:.0f} MB; target <= {TARGET_MB} MB: {verdict}")
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    dest = out_dir(args, "serve_memory")
    write_json(dest / "serve_memory.json", {"machine": info, "rows": rows, "target_mb": TARGET_MB})
    print(f"wrote {dest / 'serve_memory.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
