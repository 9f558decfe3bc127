"""facelens' match confidence on the [0, 1] scale of DeepStack / CompreFace clients.

Those clients compare a confidence to a threshold of their own: Home Assistant's
``deepstack_face`` 0.45 by default, DeepStack's server 0.67, Double Take 60-80 %
(match) and 40 % (unknown). Their scale meant little outside the model it came from
(DeepStack: (cosine + 1) / 2 of its own network). The one mapping here keeps their
thresholds meaningful with any facelens model and rule. Its input is facelens' own score
unit (:mod:`edge.gallery.confidence`, in [0, 1], a face named at ``t``, 0.5 by default);
a raw cosine (CompreFace's face-to-face verification) passes ``lowest=-1``:

- a score at facelens' decision ``t`` maps to :data:`AT_THRESHOLD` (0.70); from there
  to 1 linearly: ``0.70 + 0.30 * (s - t) / (1 - t)``;
- below ``t``, from ``lowest`` to ``t`` linearly onto ``[0, BELOW)``, ``BELOW`` = 0.40.

So no score ever falls in [0.40, 0.70): a client threshold anywhere in that band (all
of the usual ones: 0.45, 0.6, 0.67, 60 %) means exactly facelens' decision; a higher
one (Double Take at 80 %) is stricter, a lower one looser. The mapping increases with
the score (rounded to 4 decimals; below ``t`` it stops at 0.3999).

A face facelens' rule rejects is never returned as a known name (DeepStack: ``unknown``,
confidence 0; CompreFace: no subject), and a face it names is reported at no less than
0.70 (:func:`named_score`).

This is the only place the scale is defined: swap :func:`client_score` to change it.
"""

from __future__ import annotations

AT_THRESHOLD = 0.70
BELOW = 0.40


def client_score(score: float, threshold: float, lowest: float = 0.0) -> float:
    """``score`` (facelens' confidence; a cosine with ``lowest=-1``) on the clients' [0, 1]
    scale, given the ``threshold`` facelens decides at (see the module for the shape)."""
    s = min(max(float(score), lowest), 1.0)
    t = min(max(float(threshold), lowest + 1e-3), 0.999)
    if s >= t:
        return round(AT_THRESHOLD + (1.0 - AT_THRESHOLD) * (s - t) / (1.0 - t), 4)
    return round(min(BELOW * (s - lowest) / (t - lowest), BELOW - 1e-4), 4)


def named_score(score: float, threshold: float) -> float:
    """The client confidence of a face facelens *named*: never below :data:`AT_THRESHOLD`,
    so a client's usual threshold does not undo facelens' decision."""
    return max(client_score(score, threshold), AT_THRESHOLD)
