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
