"""How good the wait estimates were, over the callers who reached a seat.

For each estimator: the root relative mean squared error as Ibrahim and Whitt
define it, sqrt(mean((estimate - actual)²)) / mean(actual); the share of
estimates within ±25 % or ±60 s of the wait the caller had (either counts);
and n. ``wait_estimate_accuracy`` gives the drill report's
``wait_estimate_accuracy`` object: one entry per estimator (``engine``,
``asterisk_holdtime``, ``head_of_line``, ``queue_length``).

Callers who left without a seat have no actual wait to compare with and are
left out: the caller passes only those who reached one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivr.admission.estimate import METHODS

WITHIN_SHARE = 0.25       # an estimate within ±25 % of the actual wait ...
WITHIN_S = 60.0           # ... or within ±60 s counts as kept


@dataclass(frozen=True, slots=True)
class Score:
    rrmse: float | None           # None when there is nothing to score, or every wait was 0
    within_share: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"rrmse": None if self.rrmse is None else round(self.rrmse, 4),
                "within_share": None if self.within_share is None else round(self.within_share, 4),
                "n": self.n}


def within(estimate_s: float, actual_s: float) -> bool:
    """Within ±25 % or ±60 s of the actual wait."""
    return abs(estimate_s - actual_s) <= max(WITHIN_SHARE * actual_s, WITHIN_S)


def score(pairs: Iterable[tuple[float, float]]) -> Score:
    """(estimate, actual) pairs, seconds -> RRMSE, share within, n."""
    n = 0
    squared = actual_sum = 0.0
    kept = 0
    for estimate_s, actual_s in pairs:
        n += 1
        squared += (estimate_s - actual_s) ** 2
        actual_sum += actual_s
        kept += within(estimate_s, actual_s)
    if n == 0:
        return Score(None, None, 0)
    mean_actual = actual_sum / n
    rrmse = math.sqrt(squared / n) / mean_actual if mean_actual > 0 else None
    return Score(rrmse, kept / n, n)


def wait_estimate_accuracy(calls: Iterable[tuple[Mapping[str, float], float]],
                           methods: Iterable[str] = METHODS) -> dict[str, dict[str, float | int | None]]:
    """(method -> estimate at join, actual wait) for every caller who reached a
    seat -> {method: {"rrmse", "within_share", "n"}}. A call without an estimate
    for a method is left out of that method's score only."""
    names = tuple(methods)
    pairs: dict[str, list[tuple[float, float]]] = {m: [] for m in names}
    for estimates, actual_s in calls:
        for m in names:
            value = estimates.get(m)
            if value is not None:
                pairs[m].append((value, actual_s))
    return {m: score(pairs[m]).as_dict() for m in names}
