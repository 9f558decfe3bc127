"""``edge recent``, ``edge correct`` and ``edge visitor``: review what the cameras kept.

Appearances are kept only with ``--keep-recent DAYS`` on ``edge recognize`` or ``edge
serve`` (faces of people who never agreed to it: off by default).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge.base.errors import FacelensError
from edge.base.names import escape
from edge.cli import argtypes

if TYPE_CHECKING:
    from edge.api import FaceLens
    from edge.gallery.recent import Kept

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    LensOf = Callable[[argparse.Namespace], FaceLens]

ACTIONS = ("confirm", "rename", "reject", "delete")


def add_keep_recent(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keep-recent",
        type=argtypes.positive_number,
        metavar="DAYS",
        help="keep each appearance's best face (encrypted embedding and thumbnail) for DAYS "
        "days, to review and correct (`edge recent`); off by default: most faces a camera "
        "sees are of people who never agreed to be kept",
    )


def add_parsers(sub: Subparsers, add_engine: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("recent", help="list the appearances kept by --keep-recent")
    p.add_argument("--json", action="store_true", help="one JSON line per appearance")
    p.add_argument(
        "--visitors", action="store_true", help="group unknown appearances by face instead"
    )
    add_engine(p)
    p = sub.add_parser("correct", help="confirm, rename, reject or delete a kept appearance")
    p.add_argument("id", type=argtypes.positive_int, help="the appearance's id (`edge recent`)")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("name", nargs="?", help="confirm: who it was (default: as named); rename: who")
    add_engine(p)
    p = sub.add_parser("visitor", help="enrol a recurring unknown visitor under a name")
    p.add_argument("number", type=argtypes.positive_int, help="the visitor's number")
    p.add_argument("name")
    add_engine(p)


def _line(k: Kept) -> str:
    who = escape(k.name) if k.name is not None else k.status
    note = f" [{k.corrected}]" if k.corrected else ""
    return f"#{k.id}\t{k.when}\t{k.camera}\t{who} {k.score:.3f}\t{k.frames} frame(s){note}"


def cmd_recent(args: argparse.Namespace, lens: FaceLens) -> int:
    review = lens.review
    if args.visitors:
        for v in review.visitors(lens.threshold.value):
            ids = [k.id for k in v.appearances]
            if args.json:
                print(
                    json.dumps({"visitor": v.number, "appearances": ids, "last": v.last.to_dict()})
                )
            else:
                print(f"{v.describe()} (appearances {', '.join(f'#{i}' for i in ids)})")
        return 0
    kept = review.recent.list()
    for k in kept:
        print(json.dumps(k.to_dict()) if args.json else _line(k))
    if not kept and not args.json:
        print(f"no recent appearance kept in {lens.gallery_path} (`--keep-recent DAYS` keeps them)")
    return 0


def cmd_correct(args: argparse.Namespace, lens: FaceLens) -> int:
    review = lens.review
    if args.action in ("rename",) and not args.name:
        raise FacelensError("rename needs the name it was: edge correct ID rename NAME")
    if args.action == "delete":
        review.delete(args.id)
        print(f"deleted recent appearance #{args.id} for good (secure delete + vacuum)")
        return 0
    if args.action == "reject":
        kept = review.reject(args.id)
    elif args.action == "rename":
        kept = review.rename(args.id, args.name)
    else:
        kept = review.confirm(args.id, args.name)
    print(_line(kept))
    return 0


def cmd_visitor(args: argparse.Namespace, lens: FaceLens) -> int:
    views = lens.review.name_visitor(args.number, args.name, lens.threshold.value)
    print(
        f"enrolled {escape(args.name)} from {len(views)} view(s) of visitor {args.number} "
        f"(appearances {', '.join(f'#{k.id}' for k in views)})"
    )
    return 0


def commands(lens_of: LensOf) -> dict[str, Callable[[argparse.Namespace], int]]:
    """The review commands, each run with the lens the command's options describe."""

    def bound(fn: Callable[[argparse.Namespace, FaceLens], int]) -> Callable:
        def run(args: argparse.Namespace) -> int:
            with lens_of(args) as lens:
                return fn(args, lens)

        return run

    return {
        "recent": bound(cmd_recent),
        "correct": bound(cmd_correct),
        "visitor": bound(cmd_visitor),
    }
