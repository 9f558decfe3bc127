"""How every facelens command ends: ``edge``, ``python -m convert``, ``python -m explain``.

A problem the user can fix (:class:`FacelensError`) or one of their environment (an
``OSError``: a full disk, a permission) is one ``error: ...`` line on stderr and exit
status 1, never a traceback; Ctrl-C is one ``interrupted`` line and status 130.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from edge.base.errors import FacelensError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def run_command(command: Callable[[], int], interrupted: str = "") -> int:
    """Run ``command`` and return its exit status, turning user errors into one line.

    ``interrupted`` adds what the user should know after Ctrl-C (e.g. "nothing was written").
    """
    try:
        return command()
    except (FacelensError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"interrupted; {interrupted}" if interrupted else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
