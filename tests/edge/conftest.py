"""A real Mosquitto broker on a free loopback port, and a real subscriber to it."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:``port`` (or ``proc`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass(frozen=True)
class RunningBroker:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if found is None:
        reason = "Mosquitto is not installed (`apt-get install mosquitto`; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[RunningBroker]:
    """A Mosquitto of its own: loopback only, anonymous, no persistence, its own config."""
    pytest.importorskip("paho.mqtt.client", reason="MQTT tests need paho-mqtt (the mqtt extra)")
    binary = _mosquitto_binary()
    port = free_port()
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    )
    log = folder / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(config)], stdout=out, stderr=out)
    try:
        wait_for_port(port, proc)
        yield RunningBroker(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Subscriber:
    """A paho client that collects every message on some topics (retained ones included)."""

    def __init__(self, broker: RunningBroker, *topics: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        subscribed = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        client.on_subscribe = lambda *_: subscribed.put(True)
        client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.retain))
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self._client = client
        subscribed.get(timeout=10)

    def get(self, timeout: float = 10.0) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=timeout)

    def drain(self, quiet_s: float = 1.0) -> list[tuple[str, bytes, bool]]:
        """Every message until none has come for ``quiet_s``."""
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet_s))
            except queue.Empty:
                return out

    def events(self, quiet_s: float = 1.0) -> list[dict]:
        return [json.loads(p) for t, p, _ in self.drain(quiet_s) if t.endswith("/person")]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe(mosquitto: RunningBroker) -> Iterator:
    """``subscribe(topic, ...)`` -> a :class:`Subscriber` on the test's broker."""
    made: list[Subscriber] = []

    def make(*topics: str) -> Subscriber:
        made.append(Subscriber(mosquitto, *topics))
        return made[-1]

    yield make
    for sub in made:
        sub.close()


def sigint_default() -> None:
    """``preexec_fn`` for a child that must see Ctrl-C: pytest started with ``&`` hands its
    children SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
