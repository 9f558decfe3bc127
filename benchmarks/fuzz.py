"""Fuzz facelens' input boundaries with seeded random and mutated inputs.

    uv run python benchmarks/fuzz.py --count 20000 --seed 1     # the long run (minutes)
    uv run python benchmarks/fuzz.py --count 300 --json out.json  # what CI runs

Targets, each through the function the commands call on that input:

- images: every format OpenCV reads (JPEG, PNG, WebP, AVIF, TIFF, JPEG 2000, BMP, GIF,
  PNM/PAM/PFM, HDR, Sun raster) encoded from one photo, then bit flips, truncations,
  header fields set to huge/zero values, spliced chunks -> ``edge.media.images.decode_image``;
- manifests: JSON mutations of a real bundle's manifest -> ``Bundle.load`` and the
  embedder, one face embedded;
- galleries: bytes of a real gallery and its key file mutated -> ``people``, ``load``
  and a write, which if refused must leave the file byte-identical;
- names, pairs-CSV rows and command-line numbers -> ``check_name``, ``read_pairs`` and
  the argparse types.

A *finding* is any exception that is not facelens' own error (a traceback for the
user), an accepted value outside its documented range, a changed file after a refused
write, or one input taking over ``--slow`` seconds. The process runs under
``RLIMIT_AS`` (``--memory-gb``, default 2) so an input that would blow memory up is a
finding too (a MemoryError or a killed run). Prints a summary; exits 1 on findings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.base.errors import FacelensError
from edge.base.names import check_name, escape
from edge.cli import argtypes
from edge.cli.commandline import run_command
from edge.gallery.openset import read_pairs
from edge.gallery.store import Gallery
from edge.media.images import decode_image
from edge.model.bundle import Bundle

IMAGE_FORMATS = (
    ".jpg", ".png", ".webp", ".avif", ".tiff", ".jp2", ".bmp", ".gif",
    ".ppm", ".pgm", ".pam", ".pfm", ".hdr", ".ras",
)  # fmt: skip
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def photo() -> np.ndarray:
    """A 96x80 test picture with edges and gradients (no data files needed)."""
    y, x = np.mgrid[0:96, 0:80]
    image = np.stack([x * 3, y * 2, (x + y) * 2], axis=-1).astype(np.uint8)
    cv2.circle(image, (40, 48), 20, (30, 200, 90), -1)
    return image


def seed_images() -> dict[str, bytes]:
    """One small file per format OpenCV can write here."""
    image, out = photo(), {}
    for ext in IMAGE_FORMATS:
        pixels = image.astype(np.float32) / 255 if ext in (".pfm", ".hdr") else image
        if ext == ".pgm":
            pixels = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        try:
            ok, buf = cv2.imencode(ext, pixels)
        except cv2.error:
            continue
        if ok:
            out[ext] = buf.tobytes()
    return out


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to three random mutations, biased to the header where sizes live."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
        kind = rng.randrange(7)
        head = min(len(buf), 64 if rng.random() < 0.7 else len(buf))
        at = rng.randrange(max(head, 1))
        if kind == 0:  # flip bits
            buf[at] ^= 1 << rng.randrange(8)
        elif kind == 1:  # a field set to an interesting integer
            value = rng.choice(INTERESTING)
            width = rng.choice((1, 2, 4))
            order = rng.choice(("big", "little"))
            buf[at : at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
        elif kind == 2:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif kind == 3:  # random bytes over a stretch
            n = rng.randint(1, 32)
            buf[at : at + n] = rng.randbytes(n)
        elif kind == 4:  # splice in a chunk of another file
            other = rng.choice(others)
            start = rng.randrange(len(other))
            buf[at:at] = other[start : start + rng.randint(1, 256)]
        elif kind == 5:  # duplicate a chunk
            n = rng.randint(1, 128)
            buf[at:at] = buf[at : at + n]
        else:  # zero the tail (a file padded after a crash)
            tail = rng.randrange(len(buf))
            buf[tail:] = bytes(len(buf) - tail)
    return bytes(buf)


class Fuzz:
    """Counts inputs and collects findings."""

    def __init__(self, slow: float) -> None:
        self.slow = slow
        self.inputs: dict[str, int] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.findings: list[dict[str, Any]] = []

    def check(self, target: str, what: str, call: Callable[[], Any]) -> None:
        """Run one input: ok, refused with a FacelensError, or a finding."""
        self.inputs[target] = self.inputs.get(target, 0) + 1
        start = time.perf_counter()
        try:
            call()
            outcome = "accepted"
        except FacelensError as exc:
            outcome = "refused"
            if "\n" in str(exc):
                self._found(target, what, f"multi-line error: {str(exc)[:200]!r}")
        except Exception as exc:  # anything else would be a traceback for the user
            outcome = "crash"
            tb = traceback.format_exc(limit=-3)
            self._found(target, what, f"{type(exc).__name__}: {str(exc)[:200]}\n{tb}")
        seconds = time.perf_counter() - start
        if seconds > self.slow:
            self._found(target, what, f"took {seconds:.1f} s")
        counts = self.outcomes.setdefault(target, {})
        counts[outcome] = counts.get(outcome, 0) + 1

    def _found(self, target: str, what: str, problem: str) -> None:
        self.findings.append({"target": target, "input": what[:300], "problem": problem})


def fuzz_images(f: Fuzz, rng: random.Random, count: int) -> None:
    seeds = seed_images()
    pool = list(seeds.values())
    for ext, data in seeds.items():  # every pristine seed must decode
        f.check("images", f"pristine {ext}", lambda d=data, e=ext: decode_image(d, f"seed{e}"))
    for i in range(count):
        ext = rng.choice(list(seeds))
        data = mutate(seeds[ext], rng, pool)
        f.check("images", f"{ext} mutation {i}: {data[:48]!r}", lambda d=data: decode_image(d, "x"))


def _json_mutations(value: Any, rng: random.Random) -> Any:
    """A copy of ``value`` with one leaf or key changed to something hostile."""
    hostile = [None, 0, -1, 1e308, float("nan"), float("inf"), "", "x", [], {}, True,
               [1, 2], 10**30, "../../etc/passwd", -0.0]  # fmt: skip
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        copy = dict(value)
        roll = rng.random()
        if roll < 0.2:
            del copy[key]
        elif roll < 0.5:
            copy[key] = rng.choice(hostile)
        else:
            copy[key] = _json_mutations(value[key], rng)
        return copy
    if isinstance(value, list) and value:
        copy = list(value)
        roll = rng.random()
        if roll < 0.3:
            copy.pop(rng.randrange(len(copy)))
        elif roll < 0.5:
            copy.append(rng.choice(hostile))
        else:
            i = rng.randrange(len(copy))
            copy[i] = _json_mutations(copy[i], rng)
        return copy
    return rng.choice(hostile)


def fuzz_manifests(f: Fuzz, rng: random.Random, count: int, bundle: Path, work: Path) -> None:
    from edge.model.embedder import Embedder

    manifest = json.loads((bundle / "manifest.json").read_text())
    crop = photo()
    copy = work / "bundle"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("saved_model", "*.keras"))
    for i in range(count):
        mutated = manifest
        for _ in range(rng.randint(1, 3)):
            mutated = _json_mutations(mutated, rng)
        text = json.dumps(mutated) if rng.random() < 0.95 else json.dumps(mutated)[:-7]
        (copy / "manifest.json").write_text(text)

        def load_and_embed() -> None:
            b = Bundle.load(copy)
            _ = b.fingerprint, b.threshold, b.name, b.embedding_dim
            for fmt in ("tflite-int8", "onnx"):
                if fmt in b.formats:
                    Embedder(b, fmt, threads=1).embed([crop])

        f.check("manifests", f"mutation {i}: {text[:300]}", load_and_embed)


def fuzz_galleries(f: Fuzz, rng: random.Random, count: int, work: Path) -> None:
    fingerprint = "0123456789abcdef"
    base = work / "gallery-base.sqlite"
    with Gallery(base) as g:
        vectors = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
        g.add("Ada", vectors, fingerprint, "fuzz")
        g.add("Grace", vectors[:1], fingerprint, "fuzz")
    data, key = base.read_bytes(), base.with_name(base.name + ".key").read_bytes()
    for i in range(count):
        path = work / f"g{i % 4}.sqlite"
        mutate_key = rng.random() < 0.3
        path.write_bytes(data if mutate_key else mutate(data, rng, [data]))
        key_file = path.with_name(path.name + ".key")
        key_file.write_bytes(mutate(key, rng, [key]) if mutate_key else key)
        key_file.chmod(0o600)
        path.with_name(path.name + "-journal").unlink(missing_ok=True)

        def use(p: Path = path) -> None:
            with Gallery(p) as g:
                g.people()
                g.load(fingerprint)
                before = p.read_bytes()
                try:
                    g.add("Linus", vectors[:1], fingerprint, "fuzz")
                except FacelensError:
                    if p.read_bytes() != before:
                        raise AssertionError("a refused write changed the gallery") from None
                    raise

        f.check("galleries", f"mutation {i} ({'key' if mutate_key else 'file'})", use)


def random_text(rng: random.Random) -> str:
    odd = (0xA0, 0xAD, 0x200B, 0x200D, 0x202E, 0x2028, 0xFEFF, 0xE000, 0x1F600, 0xDC80, 0xDCFF)
    alphabet = [chr(c) for c in (*range(0, 0x80), *odd, 0x0301, 0x00E9)]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def fuzz_names(f: Fuzz, rng: random.Random, count: int) -> None:
    for _ in range(count):
        name = random_text(rng)

        def check(n: str = name) -> None:
            stored = check_name(n)
            shown = escape(stored)
            if any(ord(c) < 0x20 or c in "\x7f\u2028\u202e" for c in shown):
                raise AssertionError(f"accepted {n!r} prints unsafe {shown!r}")

        f.check("names", repr(name), check)


def fuzz_pairs(f: Fuzz, rng: random.Random, count: int, work: Path) -> None:
    images = work / "pairs-images"
    images.mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        (images / name).write_bytes(b"")
    for i in range(count):
        rows = [rng.choice(["img_a,img_b,same", "\ufeffimg_a,img_b,same", "a,b", ""])]
        if rng.random() < 0.3:  # a legal file, to check what must be accepted still is
            rows = ["img_a,img_b,same", "a.jpg,a.jpg,1", "a.jpg,b.jpg,0"]
        for _ in range(rng.randint(0, 6) if len(rows) == 1 else 0):
            cells = [rng.choice(["a.jpg", "b.jpg", "", "c.jpg", random_text(rng)]) for _ in "ab"]
            cells.append(rng.choice(["0", "1", "", "2", " 1", random_text(rng)]))
            rows.append(",".join(cells[: rng.randint(1, 4)]))
        text = "\n".join(rows)
        path = work / "pairs.csv"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates: bad UTF-8
        f.check("pairs", f"{i}: {text[:200]!r}", lambda p=path: read_pairs(p, images))


def fuzz_numbers(f: Fuzz, rng: random.Random, count: int) -> None:
    texts = ["0", "-0", "1", "-1", "2", "0.5", "1e-320", "1e400", "nan", "-nan", "inf", "-inf",
             "", " ", "0x10", "1_000", "١", "1.0000000000000002", "1e-7", "9" * 400]  # fmt: skip
    parsers: dict[str, tuple[Callable[[str], float], Callable[[float], bool]]] = {
        "threshold": (argtypes.threshold, lambda v: 0 < v <= 1),
        "rate": (argtypes.rate, lambda v: 0 <= v < 1),
        "cosine": (argtypes.cosine, lambda v: -1 <= v <= 1),
        "positive_int": (argtypes.positive_int, lambda v: v >= 1),
    }
    for _ in range(count):
        text = rng.choice(texts) if rng.random() < 0.5 else random_text(rng)[:8]
        name = rng.choice(list(parsers))
        parse, legal = parsers[name]

        def check(t: str = text, p=parse, ok=legal) -> None:
            try:
                value = p(t)
            except argparse.ArgumentTypeError as exc:
                raise FacelensError(str(exc)) from None  # a clean argparse refusal
            if not (math.isfinite(value) and ok(value)):
                raise AssertionError(f"accepted {t!r} as {value!r}")

        f.check(f"numbers.{name}", repr(text), check)


def run(count: int, seed: int, bundle: Path | None, slow: float) -> Fuzz:
    """Fuzz every target with ``count`` inputs each (images get 4x), seeded."""
    f = Fuzz(slow)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="facelens-fuzz-") as tmp:
        work = Path(tmp)
        os.environ.pop("FACELENS_KEY", None)
        fuzz_images(f, rng, 4 * count)
        fuzz_names(f, rng, count)
        fuzz_numbers(f, rng, count)
        fuzz_pairs(f, rng, count, work)
        fuzz_galleries(f, rng, count, work)
        if bundle is not None:
            fuzz_manifests(f, rng, count, bundle, work)
    return f


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec (not its parent's before it)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=argtypes.positive_int, default=2000, help="inputs per target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bundle", type=Path, help="a bundle whose manifest is mutated (optional)")
    p.add_argument("--memory-gb", type=float, default=2.0, help="address-space limit")
    p.add_argument("--slow", type=float, default=10.0, help="seconds one input may take")
    p.add_argument("--json", type=Path, help="write the summary here")
    args = p.parse_args(argv)
    if args.bundle is not None:
        Bundle.load(args.bundle)  # a bad --bundle is the user's error, not a finding
    limit = int(args.memory_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cv2.setNumThreads(1)  # thread stacks count against the address-space limit
    start = time.perf_counter()
    f = run(args.count, args.seed, args.bundle, args.slow)
    summary = {
        "seed": args.seed,
        "inputs": f.inputs,
        "total_inputs": sum(f.inputs.values()),
        "outcomes": f.outcomes,
        "findings": f.findings,
        "seconds": round(time.perf_counter() - start, 1),
        "max_rss_mb": round(peak_rss_mb(), 1),
        "memory_limit_gb": args.memory_gb,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    for target, n in f.inputs.items():
        print(f"{target:24s} {n:6d} inputs  {f.outcomes.get(target)}")
    print(
        f"{summary['total_inputs']} inputs in {summary['seconds']} s, peak RSS "
        f"{summary['max_rss_mb']} MB (limit {args.memory_gb} GB): {len(f.findings)} finding(s)"
    )
    for finding in f.findings[:20]:
        print(f"FINDING {finding['target']}: {finding['input'][:120]}\n  {finding['problem']}")
    return 1 if f.findings else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
