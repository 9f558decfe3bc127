"""Bundles that travel: one archive out of a workstation, checked on arrival, swapped in whole.

``edge bundle export`` packs a bundle's manifest and the artifacts it lists (after checking
each sha256) into a ``.tar.gz``; ``edge bundle import`` unpacks one into a temporary
folder beside the destination, refuses it unless the manifest loads and every artifact
matches its sha256, and only then swaps it into place (:func:`publish`), so a reader sees
the old bundle or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from edge.base.errors import BundleError, FacelensError
from edge.base.paths import cannot_write
from edge.model.bundle import Bundle
from edge.model.manifest import MANIFEST_NAME


def publish(tmp: Path, out: Path) -> None:
    """Swap the finished folder ``tmp`` into place at ``out`` (replacing a bundle there)."""
    tmp.chmod(0o755)  # mkdtemp's 0700 would make the published bundle private
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def verified(path: Path) -> Bundle:
    """The bundle at ``path`` after checking every artifact's sha256 against its manifest."""
    bundle = Bundle.load(path)
    for fmt in bundle.formats:
        bundle.artifact_path(fmt)
    return bundle


def export_bundle(bundle_dir: Path, archive: Path) -> Path:
    """Pack ``bundle_dir`` (manifest + listed artifacts, verified) into ``archive``."""
    bundle = verified(bundle_dir)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(bundle_dir / MANIFEST_NAME, MANIFEST_NAME)
        for fmt in bundle.formats:
            file = bundle.artifact(fmt).file
            tar.add(bundle_dir / file, file)
    os.replace(partial, archive)
    return archive


def check_out(out: Path, force: bool) -> None:
    """Refuse early (before minutes of work) to clobber anything that is not a bundle,
    or to work for a folder that cannot be written."""
    exc = cannot_write(out.parent)
    if exc is not None:
        raise FacelensError(
            f"cannot write the bundle to {out} ({exc.strerror or exc}): choose an --out in a "
            "folder you can write to, on a disk with free space"
        ) from exc
    if out.is_file():
        raise FacelensError(f"--out {out} is a file; choose a folder path for the bundle")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).is_file():
            raise FacelensError(
                f"--out {out} exists and is not a model bundle; refusing to overwrite it: "
                "choose another --out"
            )
        if not force:
            raise FacelensError(f"a bundle already exists at {out}; pass --force to replace it")


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh folder next to ``out`` to build in, removed if anything goes wrong."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        hint = "free some space" if exc.errno == errno.ENOSPC else "check permissions and space"
        raise FacelensError(f"cannot write the bundle to {out} ({exc}); {hint} and retry") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_bundle(out: Path, fill: Callable[[Path], None], force: bool = False) -> Bundle:
    """Write a bundle through ``fill(tmp)`` into a folder beside ``out``, check every sha256,
    then swap it in (``force``: over a bundle already there; never over anything else)."""
    check_out(out, force)
    with staging(out) as tmp:
        fill(tmp)
        verified(tmp)
        publish(tmp, out)
    return Bundle.load(out)


def import_bundle(archive: Path, out: Path, force: bool = False) -> Bundle:
    """Unpack ``archive`` to ``out`` once its manifest and every sha256 check out."""
    if not archive.is_file():
        raise FacelensError(f"{archive} is not a file: give the .tar.gz `edge bundle export` wrote")

    def unpack(tmp: Path) -> None:
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    if not member.isfile() or Path(member.name).name != member.name:
                        raise BundleError(f"{archive}: {member.name!r} is not a bundle file")
                    tar.extract(member, tmp)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BundleError(
                f"{archive} is not a bundle archive ({exc}); export it again"
            ) from exc

    return replace_bundle(out, unpack, force)
