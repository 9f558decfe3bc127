"""Match confidence: the one score people see, in [0, 1], whatever the model or the rule.

A face's confidence says how rarely a *stranger* would score as high against this
gallery: ``confidence = -log10(p) / DECADES`` (clipped to [0, 1]), where ``p`` is the
share of strangers' appearances that would be named at this score (FPIR, read off the
calibrated false-match curve for the gallery's size and the person's number of views).
So 0.5 is one stranger in 100, 0.75 one in 1,000, 1.0 one in 10,000 or rarer, and a face
is named at :data:`DECISION` (0.5, the default target of 1 % strangers named) unless
``--threshold`` (in this unit) or ``--fpir`` asks otherwise. Calibrating moves the
curve, not the meaning: the same photo keeps "how rare is a stranger this close".

Without any calibration (a bundle built without enough identities, and no
``edge calibrate``) there is no false-match curve: the cosine is stretched linearly so
that the bundle's cosine threshold sits at :data:`DECISION` too. That keeps the
threshold's place but is not a stranger rate (:attr:`Scale.rule` is ``None``).

``Match.cosine`` keeps the raw cosine for experts; this module is the only place the two
are related.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.base.errors import FacelensError

DECADES = 4.0  # confidence 1.0 = one stranger in 10**DECADES
DEFAULT_FPIR = 0.01  # the default operating point: 1 % of strangers' appearances named
DECISION = -math.log10(DEFAULT_FPIR) / DECADES  # 0.5: where a face is named by default


def check_confidence(value: float, source: str = "--threshold") -> float:
    """A confidence threshold in (0, 1], or :class:`FacelensError` naming ``source``."""
    value = float(value)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise FacelensError(
            f"{source} {value} is not a match confidence: give a number above 0 and at most 1 "
            f"(0.5 names about 1 stranger in 100, 0.75 about 1 in 1,000)"
        )
    return value


def check_fpir(value: float, source: str = "--fpir") -> float:
    """A share of strangers that may be named, in (0, 1), or :class:`FacelensError`."""
    value = float(value)
    if not (math.isfinite(value) and 0 < value < 1):
        raise FacelensError(f"{source} {value} must be in (0, 1), e.g. 0.01 (1 % of strangers)")
    return value


def confidence_of_fpir(fpir: float) -> float:
    """The confidence of a score that names ``fpir`` of the strangers (0.01 -> 0.5)."""
    return float(np.clip(-math.log10(max(fpir, 1e-300)) / DECADES, 0.0, 1.0))


def fpir_of_confidence(confidence: float) -> float:
    """The share of strangers named at ``confidence`` (0.5 -> 0.01); inverse of the above."""
    return float(10.0 ** (-DECADES * confidence))


class Rule(Protocol):
    """What the mapping needs of an open-set rule (:class:`edge.gallery.matching.OpenSet`)."""

    far_curve: tuple[tuple[float, ...], tuple[float, ...]]

    def offset(self, people: int, views: int = 1) -> float: ...


@dataclass(frozen=True)
class Scale:
    """What turns a decision score into a confidence for one gallery.

    ``rule`` (an open-set rule) and ``people`` (the gallery's size): the score is the
    rule's normalised score. Without a rule the score is a cosine and ``cosine`` (the
    cosine threshold) is placed at :data:`DECISION`.
    """

    rule: Rule | None
    people: int = 1
    cosine: float = 0.5


def stranger_rate(score: float, rule: Rule, people: int, views: int = 1) -> float:
    """The share of strangers that would reach ``score`` against a gallery of ``people``.

    The per-comparison false-match curve gives ``far``; the measured gallery thresholds
    shift it by what independence misses (:meth:`OpenSet.offset`); ``people`` comparisons
    then give ``1 - (1 - far) ** people``. At the rule's threshold this is its ``fpir``.
    """
    thresholds, fars = (np.asarray(v, np.float64) for v in rule.far_curve)
    x = score - rule.offset(people, views)
    log_far = np.interp(x, thresholds, np.log(np.maximum(fars, 1e-300)))
    far = float(np.exp(log_far))
    return float(-math.expm1(max(people, 1) * math.log1p(-min(far, 1.0 - 1e-15))))


def confidence(score: float, scale: Scale, views: int = 1) -> float:
    """A decision score (normalised under a rule, else a cosine) as a confidence in [0, 1]."""
    if scale.rule is not None:
        return confidence_of_fpir(stranger_rate(score, scale.rule, scale.people, views))
    t = scale.cosine
    c = DECISION * score / t if score < t else DECISION + (1 - DECISION) * (score - t) / (1 - t)
    return float(np.clip(c, 0.0, 1.0))


def cosine_of_confidence(value: float, cosine_threshold: float) -> float:
    """Without calibration: the cosine a confidence ``value`` stands for (inverse stretch)."""
    t = cosine_threshold
    if value < DECISION:
        return t * value / DECISION
    return t + (1 - t) * (value - DECISION) / (1 - DECISION)
