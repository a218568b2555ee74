"""The plain wait predictors the engine's estimate is scored against, computed
at the moment a caller joins a queue from what the simulated PBX observes
then, and the score itself.

- ``asterisk_holdtime``: app_queue's own figure (apps/app_queue.c,
  ``recalc_holdtime``): on every connect, ``holdtime = (holdtime*3 + hold)/4``
  in integer seconds (``((old << 2) - old + new) >> 2``), the first sample
  taken as it is (while completed + abandoned is 0); the estimate is that
  minus the time already waited (0 at join), floored at 0.
- ``head_of_line``: the longest current wait in that queue (Ibrahim and
  Whitt's HOL predictor); 0 when nobody waits.
- ``queue_length``: (n + 1) / (s * mu), n the callers ahead, s the seats
  serving the queue (members not paused), mu from the handle times (talk plus
  wrap-up) of the last ``RECENT`` completed calls; 0 when a seat is free for
  the caller, unknown (None) before any call has completed.

Sans-I/O, no clock of its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

RECENT = 200          # completed calls behind the service-rate estimate
WITHIN_REL, WITHIN_ABS_S = 0.25, 60.0   # an estimate is "within" when off by at most 25 % or 60 s
ESTIMATORS = ("engine", "asterisk_holdtime", "head_of_line", "queue_length")


@dataclass
class HoldAverage:
    """One queue's ``q->holdtime`` (and ``q->talktime``), as app_queue keeps them."""
    holdtime: int = 0
    talktime: int = 0

    def connected(self, hold_s: float, samples_before: int) -> None:
        new = int(hold_s)
        self.holdtime = new if samples_before == 0 else ((self.holdtime << 2) - self.holdtime + new) >> 2

    def completed(self, talk_s: float, completed_before: int) -> None:
        new = int(talk_s)
        self.talktime = new if completed_before == 0 else ((self.talktime << 2) - self.talktime + new) >> 2


@dataclass
class HandleTimes:
    """Handle times (talk + wrap-up) of the most recently completed calls."""
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    total: float = 0.0

    def add(self, handle_s: float) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.total -= self.recent[0]
        self.recent.append(handle_s)
        self.total += handle_s

    def mean(self) -> float | None:
        return self.total / len(self.recent) if self.recent else None


def queue_length_estimate(ahead: int, seats: int, mean_handle_s: float | None, seat_free: bool) -> float | None:
    if seat_free:
        return 0.0
    if mean_handle_s is None or seats <= 0:
        return None
    return (ahead + 1) * mean_handle_s / seats


def score(pairs: Iterable[tuple[float | None, float]]) -> dict[str, float | int | None]:
    """How good one estimator was over (estimate, actual wait) pairs of callers
    who reached a seat; pairs without an estimate are left out.

    - ``rrmse``: root mean squared error over the mean actual wait,
      sqrt(mean((est - wait)^2)) / mean(wait) (relative to the average wait,
      not per call: a call answered at once would divide by zero);
    - ``within_share``: share of estimates off by at most 25 % of the wait or
      60 s, whichever is larger;
    - ``n``: callers scored."""
    est = [(e, w) for e, w in pairs if e is not None]
    if not est:
        return {"rrmse": None, "within_share": None, "n": 0}
    n = len(est)
    mse = sum((e - w) ** 2 for e, w in est) / n
    mean_w = sum(w for _, w in est) / n
    within = sum(1 for e, w in est if abs(e - w) <= max(WITHIN_REL * w, WITHIN_ABS_S)) / n
    return {"rrmse": round(math.sqrt(mse) / mean_w, 3) if mean_w > 0 else None,
            "within_share": round(within, 3), "n": n}


def accuracy(records: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """``wait_estimate_accuracy`` of the report: every estimator scored on the
    callers who reached a seat, from the per-call records alone."""
    answered = [r for r in records if r["outcome"] == "answered" and r["wait_s"] is not None]
    # the same callers for every estimator: those every one of them made an estimate for
    same = [r for r in answered if all(r.get(f"est_{name}") is not None for name in ESTIMATORS)]
    return {name: score((r[f"est_{name}"], r["wait_s"]) for r in same) for name in ESTIMATORS}
