"""`edge serve` under load: requests/s and latency of POST /v1/identify over loopback HTTP.

Starts a real `edge serve` (uvicorn) on a free loopback port with a throwaway gallery,
enrols one LFW person, then for each client count sends identify requests (real LFW
photos, multipart, keep-alive connections) from that many concurrent clients. Latency
is measured at the client: upload, decode, detect, embed, match and the JSON answer.
The server runs recognition on one engine thread with ``--threads`` inference threads.

    uv run python benchmarks/serve.py --bundle bundles/faceres --clients 1,2,4
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    out_dir,
    parse_threads,
    run_cli,
    summarize_ms,
    write_json,
)

from edge.base.errors import FacelensError

COLUMNS = [
    ("clients", "clients", 0),
    ("requests", "requests", 0),
    ("rps", "requests/s", 1),
    ("p50_ms", "p50 ms", 1),
    ("p99_ms", "p99 ms", 1),
    ("server_ms_p50", "server recognise p50 ms", 1),
    ("errors", "non-200", 0),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = new_parser(__doc__)
    p.add_argument("--clients", default="1,2,4", help="concurrent clients per run, e.g. 1,2,4")
    p.add_argument("--requests", type=int, default=200, help="identify requests per run")
    p.add_argument("--threads", type=int, default=2, help="the server's inference threads")
    p.add_argument("--person", default="Tony_Blair", help="LFW person enrolled and identified")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    args: argparse.Namespace, home: Path, token: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """`edge serve` (``extra`` options, ``env`` added) on a free port, once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "edge.cli.main", "serve", "--bundle", str(args.bundle)]
    cmd += ["--port", str(port), "--threads", str(args.threads), *extra]
    if args.detector:
        cmd += ["--detector", str(args.detector)]
    env = {**os.environ, **(env or {}), "FACELENS_HOME": str(home), "FACELENS_TOKEN": token}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FacelensError(f"edge serve exited: {proc.stderr.read().decode()[-500:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise FacelensError("edge serve did not answer within 180 s")


def load(url: str, token: str, photos: list[bytes], clients: int, total: int) -> dict[str, Any]:
    """``total`` identify requests shared by ``clients`` threads; client-side latencies."""
    latencies: list[float] = []
    server_ms: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = [total // clients + (i < total % clients) for i in range(clients)]

    def client(i: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for j in range(per_client[i]):
                data = photos[(i + j) % len(photos)]
                t0 = time.perf_counter()
                r = http.post("/v1/identify", files={"image": ("probe.jpg", data)})
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if r.status_code == 200:
                        latencies.append(ms)
                        server_ms.append(r.json()["ms"]["total"])
                    else:
                        errors += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    stats = summarize_ms(latencies)
    return {
        "clients": clients,
        "requests": total,
        "seconds": round(seconds, 3),
        "rps": len(latencies) / seconds,
        "p50_ms": stats["median"],
        "p99_ms": stats["p99"],
        "server_ms_p50": summarize_ms(server_ms)["median"],
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clients = parse_threads(args.clients)
    people = sorted((LFW / "images" / args.person).glob("*.jpg"))
    if len(people) < 2:
        raise FacelensError(
            f"need 2+ photos of {args.person} under {LFW / 'images'}: put ../shared in place, "
            "set FACELENS_SHARED, or pick another --person"
        )
    info = machine_info()
    print(f"# serve: POST /v1/identify, {args.threads} inference thread(s)\n")
    print(f"machine: {machine_line(info)}\n")
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="facelens-serve-bench-") as home:
        proc, url = start(args, Path(home), token)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                r = http.put(
                    f"/v1/people/{args.person}",
                    files={"image": (people[0].name, people[0].read_bytes())},
                )
                if r.status_code != 200:
                    raise FacelensError(f"enrolment failed: {r.text}")
            probes = [p.read_bytes() for p in people[1:]]
            load(url, token, probes, 1, 10)  # warm-up
            rows = [load(url, token, probes, n, args.requests) for n in clients]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(markdown_table(rows, COLUMNS))
    print(
        f"\n{len(probes)} different {args.person} photos (LFW 250x250 JPEG); one face each; "
        f"load average at end {info['load_average_at_end']}"
    )
    dest = out_dir(args, "serve")
    write_json(
        dest / "serve.json",
        {"machine": info, "settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
    )
    print(f"\nwrote {dest / 'serve.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
