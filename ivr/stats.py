"""Small statistics shared by the live model, the reports and the drills."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (1 <= q <= 99, inclusive method: never outside the
    data); None for no values, the value itself for one."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def percentile_of_sorted(values: list[float], q: float) -> float | None:
    """``percentile`` of values already in ascending order, without sorting
    them or computing the other 98 cut points: the same figure, by the same
    formula (``statistics.quantiles``' inclusive method, cut point ``int(q)``)."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    j, delta = divmod(int(q) * (len(values) - 1), 100)
    return float((values[j] * (100 - delta) + values[j + 1] * delta) / 100)
