""" "Not Ada": faces someone said were not a person, and the rule that uses them.

A stranger who looks enough like Ada to clear her threshold will clear it again next
time. Raising Ada's threshold would cost her own photos; instead each rejection keeps
the stranger's face as a *negative* of Ada, and a face is not named Ada when it is at
least as like one of her negatives as like Ada herself (the nearest neighbour among
"Ada" and "not Ada"). Ada's own photos stay nearer to her views than to a stranger's,
so they are still named; ``tests/edge/test_review.py`` measures both on LFW people.
Scores are compared in the space the matcher scores in (centred under a centring rule).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge.base.numeric import l2_normalize
from edge.gallery.matching import Match, Matcher


class NotThem:
    """Each person's negatives (unit embeddings made with the matcher's bundle)."""

    def __init__(self, negatives: dict[str, np.ndarray]) -> None:
        self.negatives = {p: l2_normalize(np.atleast_2d(v)) for p, v in negatives.items()}

    def __len__(self) -> int:
        return sum(len(v) for v in self.negatives.values())

    def veto(self, matcher: Matcher, embeddings: np.ndarray, matches: list[Match]) -> list[Match]:
        """``matches`` with every name a negative of that person outscores left unknown."""
        if not self.negatives:
            return matches
        project = matcher.open_set.project if matcher.open_set is not None else np.asarray
        out = []
        for embedding, match in zip(embeddings, matches, strict=True):
            negatives = self.negatives.get(match.name) if match.name is not None else None
            if negatives is not None:
                probe = l2_normalize(project(np.atleast_2d(embedding)))[0]
                if float(np.max(l2_normalize(project(negatives)) @ probe)) >= match.cosine:
                    match = replace(match, name=None)
            out.append(match)
        return out
