"""Person names: checked where they enter, escaped where they are printed.

A name is stored in the gallery and printed by ``people``, ``recognize`` and the
service, so it must not carry what a terminal or a log reader would act on: line
breaks (fake rows), tabs (fake columns), escape codes (a cleared screen), bidi
overrides (text that reads backwards). Names are stored in Unicode NFC so the
same name typed on macOS (NFD) and Linux is one person.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

from edge.base.errors import FacelensError

MAX_NAME_CHARS = 100
# Bidirectional overrides and isolates reorder what follows them on screen.
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Invisible format characters (zero-width space, word joiner, BOM, soft hyphen...) would make
# a second "Ada" that looks like the first; the joiners some scripts need are allowed.
_JOINERS = set("\u200c\u200d")


class PersonNameError(FacelensError):
    """A person's name that facelens will not store."""


def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category == "Cf":
        return ch not in _JOINERS
    return category in ("Cc", "Cs", "Zl", "Zp", "Co", "Cn") or ch in _BIDI


def _undecodable(name: str) -> bool:
    """Bytes that were not UTF-8: lone surrogates (a terminal) or U+FFFD (a URL decoder)."""
    return any("\udc80" <= ch <= "\udcff" or ch == "\ufffd" for ch in name)


def check_name(name: str) -> str:
    """The name as stored (NFC), or :class:`PersonNameError` saying what to change."""
    if _undecodable(name):
        raise PersonNameError(
            f"the name {shown(name)} is not valid UTF-8 (check the terminal's encoding, "
            "e.g. LANG=C.UTF-8); type it again"
        )
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise PersonNameError("a person's name cannot be empty; give one, e.g. 'Ada Lovelace'")
    if name != name.strip():
        raise PersonNameError(f"the name {shown(name)} starts or ends with spaces; drop them")
    bad = sorted({ch for ch in name if _unsafe(ch)})
    if bad:
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
        raise PersonNameError(
            f"the name {shown(name)} holds control or invisible characters ({codes}); "
            "use letters, digits, spaces and punctuation"
        )
    if len(name) > MAX_NAME_CHARS:
        raise PersonNameError(
            f"the name {shown(name[:40])}… is {len(name)} characters; "
            f"keep it under {MAX_NAME_CHARS + 1}"
        )
    return name


def lookup_name(name: str) -> str:
    """A name typed to find a stored person (``forget``): valid UTF-8, in NFC."""
    if _undecodable(name):
        raise PersonNameError(
            f"the name {shown(name)} is not valid UTF-8, so no one enrolled has it; "
            "`edge people` lists who is"
        )
    return unicodedata.normalize("NFC", name)


def close_names(name: str, names: list[str], n: int = 3) -> list[str]:
    """The enrolled names ``name`` may have meant (case and small typos forgiven)."""
    folded = {known.casefold(): known for known in names}
    matches = difflib.get_close_matches(name.casefold(), list(folded), n=n, cutoff=0.75)
    return [folded[m] for m in matches]


def did_you_mean(name: str, names: list[str]) -> str:
    """`` (did you mean 'X'?)`` when a close name is enrolled, else empty."""
    close = close_names(name, names)
    return f" (did you mean {' or '.join(shown(c) for c in close)}?)" if close else ""


def escape(name: str) -> str:
    """``name`` safe to print: control, invisible and bidi characters become ``\\uXXXX``."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if _unsafe(ch) or ch == "\t" else ch
        for ch in name
    )


def shown(name: str) -> str:
    """``name`` quoted and escaped, for messages."""
    return f"'{escape(name)}'"


def topic_name(text: str) -> str:
    """``text`` as one MQTT topic level: no ``/``, ``+``, ``#`` or spaces."""
    return _TOPIC_UNSAFE.sub("_", text).strip("_") or "unnamed"
