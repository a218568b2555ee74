"""How long a caller will wait for a seat: the engine's estimate and the three
baselines it is scored against. Pure: events come in as calls with ``now``
(seconds); nothing here reads a clock, a socket or Redis.

One ``QueueObserver`` per queue is fed what the PBX reports: a caller joined
(with a priority class), reached a seat, or left without one; how many seats
serve the queue and how many of them are busy. It keeps the recent service
rate per seat, the abandonment rate θ, the arrival rate with its trend and
each priority class's share of it, Asterisk's own hold-time average, the waits
of the last callers to reach a seat and the head-of-line wait. ``estimate(caller, now)`` (or
``preview(priority, now)`` for a caller about to join) answers with all four
estimates, each a frozen ``WaitEstimate`` that carries the inputs it used, so
it can be kept with the call and scored against the wait the citizen then had
(``ivr.admission.accuracy``).

The predictors (Ibrahim & Whitt 2009-2011, "real-time delay prediction in
many-server queues with abandonment"; n = callers ahead, s = seats, μ =
calls a seat finishes per second, θ = abandonments per waiting second):

- ``queue_length``: (n+1)/(sμ). Ignores abandonment, so it overshoots
  whenever the line is long.
- ``head_of_line``: how long the caller at the head of the line has waited.
- ``asterisk_holdtime``: app_queue's ``recalc_holdtime``: an exponential
  average of the waits of callers who reached a seat, new = (3·old + wait)/4 in
  whole seconds, less what the caller has waited, floored at 0 (app_queue
  announces the absolute value, rounded to minutes).
- ``engine``: the Markovian queue-length predictor with abandonment, QL_m =
  Σ_{i=0..n} 1/(sμ + iθ) (the callers ahead leave by a seat or by giving up),
  made to fit a hotline:
  * only callers who reach a seat are scored, and with exponential patience
    conditioning on that adds θ to every stage: Σ_{i=0..n} 1/(sμ + (i+1)θ);
  * n counts the callers ahead by priority class and join order, less the
    seats idle right now, and callers of higher classes who arrive during the
    wait join ahead (their arrival rate and its trend, extrapolated);
  * the seats may change on a known plan (shifts, the contingency plan calling
    in seats), so the stages are walked forward in time in steps of about
    ``step_s`` with the seats of that moment (Ibrahim & Whitt's time-varying
    QL predictor);
  * a calibration factor learned from recent (estimate, actual) pairs of
    callers who reached a seat is there but off (``calibrate``): it made every
    scenario worse. docs/wait-estimate.md has the figures that decide which
    of these earn their place.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ivr.admission.rates import (
    AgeHazard,
    ArrivalTrend,
    CumulativeHazard,
    DecayedRate,
    DecayedRatio,
    place_time,
    place_variance,
    stage_time,
)
from ivr.errors import ConfigError

METHODS = ("engine", "asterisk_holdtime", "head_of_line", "queue_length")
_MAX_STEPS = 1000


@dataclass(frozen=True, slots=True)
class EstimateSettings:
    prior_cycle_s: float = 240.0       # seat cycle (talk + wrap-up) assumed before calls are seen
    prior_patience_s: float = 120.0    # mean patience assumed before abandons are seen
    prior_events: float = 3.0          # how many observed calls each prior weighs
    service_tau_s: float = 1800.0      # memory of the service rate per seat
    abandon_tau_s: float = 900.0       # memory of θ
    arrival_fast_tau_s: float = 180.0  # the two memories of all arrivals whose difference is the trend
    arrival_slow_tau_s: float = 900.0
    class_share_tau_s: float = 1800.0  # memory of each priority class's share of the arrivals
    trend_horizon_s: float = 600.0     # an arrival trend is extrapolated this far, then held
    horizon_s: float = 3600.0          # the longest wait predicted (a line that does not move)
    step_s: float = 30.0               # time step of the time-varying predictor
    served_only: bool = True           # condition on reaching a seat: one θ more per stage
    priority_arrivals: bool = True     # higher-class arrivals during the wait go ahead
    calibrate: bool = False            # scale by recent actual/estimate of callers who reached a seat
    calibration_tau_s: float = 900.0
    calibration_prior: float = 30.0    # callers' worth of "the model is right"
    last_waits: int = 10               # waits of the last callers to reach a seat, kept
    turnover: bool = True              # μ from the seats' whole cycle while callers wait beyond the idle seats
    turnover_min_events: float = 20.0  # ... once that many such cycles (decayed) were seen
    age_hazard: bool = True            # θ of the line ahead from the hazard by time waited (below)
    hazard_ages_s: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
    hazard_tau_s: float = 900.0        # memory of the hazard by time waited
    hazard_samples: int = 16           # callers ahead whose ages are walked through the wait

    def __post_init__(self) -> None:
        bad = [name for name in ("turnover_min_events", "prior_cycle_s", "prior_patience_s", "service_tau_s", "abandon_tau_s",
                                 "arrival_fast_tau_s", "class_share_tau_s", "horizon_s", "step_s",
                                 "calibration_tau_s", "hazard_tau_s", "hazard_samples")
               if not getattr(self, name) > 0]
        if self.arrival_slow_tau_s <= self.arrival_fast_tau_s:
            bad.append("arrival_slow_tau_s (must be longer than arrival_fast_tau_s)")
        ages = self.hazard_ages_s
        if not ages or ages[0] <= 0 or any(b <= a for a, b in zip(ages, ages[1:], strict=False)):
            bad.append("hazard_ages_s (ascending, above 0)")
        if self.prior_events < 0 or self.calibration_prior < 0 or self.trend_horizon_s < 0 or self.last_waits < 1:
            bad.append("prior_events, calibration_prior, trend_horizon_s, last_waits")
        if bad:
            raise ConfigError(f"wait estimate settings: {', '.join(bad)} out of range")


DEFAULTS = EstimateSettings()


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """One estimate and what it was made from, to keep with the call."""

    method: str             # one of METHODS
    queue: str
    wait_s: float           # expected further wait from ``at`` until a seat
    at: float
    waited_s: float         # how long the caller had already waited at ``at``
    position: int           # callers ahead: this queue, a higher class or the same class joined earlier
    priority: int
    seats: int              # seats serving the queue at ``at``
    idle: int               # of those, free at ``at``
    service_rate: float     # calls a seat finishes per second (μ)
    abandon_rate: float     # θ: callers leaving without a seat per second of waiting
    higher_arrivals: float  # arrivals per second of higher classes at ``at``
    basis_s: float = 0.0    # a baseline's starting figure: Asterisk's holdtime, the head-of-line wait
    spread_s: float = 0.0   # the engine's standard deviation of the wait (0 for the baselines)
    calibration: float = 1.0
    line_abandon_rate: float = 0.0   # the engine's θ for the callers ahead (by their time waited)

    @property
    def total_s(self) -> float:
        """The whole wait this estimate expects, from joining to a seat."""
        return self.waited_s + self.wait_s

    def record(self) -> dict[str, float | int | str]:
        """JSON-ready, for a call's record."""
        return {"method": self.method, "queue": self.queue, "wait_s": round(self.wait_s, 1), "at": self.at,
                "waited_s": round(self.waited_s, 1), "position": self.position, "priority": self.priority,
                "seats": self.seats, "idle": self.idle, "service_rate": round(self.service_rate, 6),
                "abandon_rate": round(self.abandon_rate, 6), "higher_arrivals": round(self.higher_arrivals, 4),
                "basis_s": round(self.basis_s, 1), "spread_s": round(self.spread_s, 1),
                "calibration": round(self.calibration, 3), "line_abandon_rate": round(self.line_abandon_rate, 6)}


@dataclass(frozen=True, slots=True)
class Estimates:
    """The engine's estimate and the three baselines, made at the same moment."""

    engine: WaitEstimate
    asterisk_holdtime: WaitEstimate
    head_of_line: WaitEstimate
    queue_length: WaitEstimate

    def seconds(self) -> dict[str, float]:
        """Method -> expected further wait: what ``accuracy.wait_estimate_accuracy`` scores."""
        return {m: getattr(self, m).wait_s for m in METHODS}


# -- the predictors, as plain functions ---------------------------------------------------------

def queue_length_wait(ahead: int, seats: int, service_rate: float, horizon_s: float = DEFAULTS.horizon_s) -> float:
    """Plain QL: (n+1)/(sμ)."""
    capacity = seats * service_rate
    return min(horizon_s, (ahead + 1) / capacity) if capacity > 0 else horizon_s


def ql_abandon_wait(ahead: int, seats: int, service_rate: float, abandon_rate: float,
                    horizon_s: float = DEFAULTS.horizon_s) -> float:
    """Ibrahim & Whitt's QL_m: Σ_{i=0..n} 1/(sμ + iθ), the mean potential wait in M/M/s+M."""
    capacity = seats * service_rate
    if capacity <= 0:
        return horizon_s
    return min(horizon_s, stage_time(capacity, abandon_rate, float(ahead), float(ahead + 1)))


def head_of_line_wait(head_wait_s: float, waited_s: float = 0.0) -> float:
    """HOL: the head of the line's wait so far (less what this caller has waited)."""
    return max(0.0, head_wait_s - waited_s)


def asterisk_holdtime_update(holdtime_s: int, wait_s: float) -> int:
    """app_queue's recalc_holdtime: (3·old + wait) >> 2, in whole seconds."""
    return (holdtime_s * 3 + int(wait_s)) >> 2


def asterisk_holdtime_wait(holdtime_s: int, waited_s: float = 0.0) -> float:
    """Asterisk's estimate less what the caller has waited, floored at 0."""
    return max(0.0, holdtime_s - waited_s)


def engine_wait(ahead: float, seats: int, service_rate: float, abandon_rate: float, *,
                idle: int = 0, seat_plan: Sequence[tuple[float, int]] = (),
                higher_rate: float = 0.0, higher_slope: float = 0.0,
                settings: EstimateSettings = DEFAULTS) -> tuple[float, float]:
    """The engine's predictor -> (mean wait, its spread), seconds.

    Walks up the line place by place (``rates.place_time``): the callers ahead
    leave at sμ + jθ, callers of higher classes join ahead at their arrival
    rate (``higher_rate`` per second, changing by ``higher_slope`` per second),
    and ``seat_plan`` ((seconds from now, seats), ascending) changes s on the
    way: seats coming on duty take the first callers at once, seats going off
    duty finish their call while the others keep taking callers. Steps of
    about ``settings.step_s`` keep the seats and the arrival rate of each step
    current."""
    if ahead < idle:                          # a seat is free for this caller now
        return 0.0, 0.0
    left = ahead - idle + 1.0                 # places to move: each caller ahead, then one's own seat
    theta, horizon = abandon_rate, settings.horizon_s
    served_only, arrivals = settings.served_only, settings.priority_arrivals
    tau = variance = 0.0
    nxt, s = 0, seats
    for _ in range(_MAX_STEPS):
        while nxt < len(seat_plan) and seat_plan[nxt][0] <= tau:
            if seat_plan[nxt][1] > s:         # seats coming on duty take the first callers at once
                left -= seat_plan[nxt][1] - s
            s = seat_plan[nxt][1]             # (seats going off duty finish their call first, and
            nxt += 1                          # the others keep taking callers: the rate just drops)
        change = seat_plan[nxt][0] if nxt < len(seat_plan) else math.inf
        if left <= 1e-9 or tau >= horizon:
            break
        capacity = s * service_rate
        lam = _rate_at(higher_rate, higher_slope, tau, settings) if arrivals else 0.0
        if capacity <= 0:                     # nobody is seated until seats come back
            d = min(change, horizon) - tau
            ahead_now = left - 1.0
            if theta > 0:
                keep = math.exp(-theta * d)
                ahead_now = ahead_now * keep + lam * (1.0 - keep) / theta
            else:
                ahead_now += lam * d
            left, tau = ahead_now + 1.0, tau + d
            continue
        top = left - 1.0
        first = place_time(capacity, theta, lam, top, min(1.0, left), served_only)
        if math.isinf(first):
            return horizon, 0.0
        m = min(left, max(1.0, settings.step_s / first))
        d = place_time(capacity, theta, lam, top, m, served_only)
        if arrivals and higher_slope:         # the arrival rate of the step's middle
            lam = _rate_at(higher_rate, higher_slope, tau + d / 2, settings)
            d = place_time(capacity, theta, lam, top, m, served_only)
        if math.isinf(d):
            return horizon, 0.0
        if tau + d > change:                  # stop at the seat change (the places of that part of
            m *= (change - tau) / d           # the step, pro rata), go on with the new seats
            d = change - tau
        variance += place_variance(capacity, theta, lam, top, m)
        left -= m
        tau += d
    return min(tau, horizon), math.sqrt(variance)


def _rate_at(rate: float, slope: float, after_s: float, settings: EstimateSettings) -> float:
    return max(0.0, rate + slope * min(after_s, settings.trend_horizon_s))


# -- the observer -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Waiter:
    priority: int
    seq: int
    joined_at: float


class QueueObserver:
    """One queue's recent past, fed event by event; answers wait estimates.

    Feed it in the order things happen (``now`` never goes back):
    ``joined`` when a caller enters the queue, ``served`` when one reaches a
    seat, ``abandoned`` when one leaves without (hung up, timed out, or
    withdrawn to a callback: all of them shorten the line ahead), and
    ``seats`` whenever the number of seats serving the queue or of busy ones
    changes (a seat in wrap-up is busy; ``served`` already counts the seat it
    takes). ``plan_seats`` states known future changes (shifts, seats called in).

    The service rate per seat is calls finished (busy seats freed) over busy
    seat-seconds; θ is callers who left without a seat over caller-seconds
    spent waiting; both forget with their time constants."""

    def __init__(self, queue: str, settings: EstimateSettings = DEFAULTS, *,
                 staffed: int = 0, busy: int = 0, start: float = 0.0) -> None:
        self.queue = queue
        self.settings = settings
        self.staffed = staffed
        self.busy = busy
        self.holdtime_s = 0                   # Asterisk's exponential average, whole seconds
        self.last_waits: deque[float] = deque(maxlen=settings.last_waits)
        self._at = start
        self._start = start
        self._waiting: dict[str, _Waiter] = {}
        self._order: dict[int, list[int]] = {}     # priority -> seqs of its waiting callers, in join order
        self._joined_at: dict[int, float] = {}     # seq -> when that caller joined
        self._joins: list[float] = []              # join times of all callers waiting, ascending
        self._seq = 0
        self._plan: list[tuple[float, int]] = []
        self._service = DecayedRate(settings.service_tau_s, 1.0 / settings.prior_cycle_s,
                                    settings.prior_events, start)
        self._abandon = DecayedRate(settings.abandon_tau_s, 1.0 / settings.prior_patience_s,
                                    settings.prior_events, start)
        # calls finished per staffed seat-second while callers wait beyond the idle seats: the seat's whole
        # cycle (talk, wrap-up, and the time from free to the next caller connected: the PBX's round, the
        # seat's ringing), which is what moves a line. Busy seat-seconds alone leave that gap out.
        self._turnover = DecayedRate(settings.service_tau_s, 1.0 / settings.prior_cycle_s, 0.0, start)
        self._arrivals = ArrivalTrend(settings.arrival_fast_tau_s, settings.arrival_slow_tau_s, start)
        self._hazard = AgeHazard(settings.hazard_ages_s, settings.hazard_tau_s, start)
        self._class_counts: dict[int, float] = {}         # priority -> its recent arrivals, decayed
        self._class_counts_at = start
        self._calibration = DecayedRatio(settings.calibration_tau_s, start)   # actual / estimate at join
        self._join_estimate: dict[str, float] = {}

    # -- events --

    def joined(self, caller: str, priority: int, now: float) -> None:
        now = self._advance(now)
        if caller in self._waiting:
            return
        self._arrivals.arrival(now)
        self._decay_class_counts(now)
        self._class_counts[priority] = self._class_counts.get(priority, 0.0) + 1.0
        if self.settings.calibrate:
            self._join_estimate[caller] = self._engine(self._ahead(priority, None), priority, now)[0]
        self._seq += 1
        self._waiting[caller] = _Waiter(priority, self._seq, now)
        self._order.setdefault(priority, []).append(self._seq)
        self._joined_at[self._seq] = now
        self._joins.append(now)

    def served(self, caller: str, now: float, wait_s: float | None = None) -> None:
        """The caller reached a seat (``wait_s``: its wait, if the PBX said; else from its join)."""
        now = self._advance(now)
        waiter = self._remove(caller)
        if wait_s is None and waiter is not None:
            wait_s = now - waiter.joined_at
        self.busy += 1                            # a seat took the call (``seats`` may say so again)
        if wait_s is None:
            return
        self.holdtime_s = asterisk_holdtime_update(self.holdtime_s, wait_s)
        self.last_waits.append(wait_s)
        estimate = self._join_estimate.pop(caller, None)
        if estimate is not None and estimate > 0:
            self._calibration.add(now, wait_s, estimate)

    def abandoned(self, caller: str, now: float, wait_s: float | None = None) -> None:
        """The caller left the line without a seat (``wait_s`` is kept for the record only)."""
        now = self._advance(now)
        self._join_estimate.pop(caller, None)
        waiter = self._remove(caller)
        if waiter is not None:
            self._abandon.event()
            self._hazard.event(now - waiter.joined_at)

    def resync(self, waiting: Mapping[str, tuple[int, float]], now: float) -> None:
        """The line as the PBX listed it after a (re)connect (``QueueStatus``;
        caller -> (priority, joined at)). A caller it no longer lists left while
        nobody watched: neither served nor abandoned, so counted as neither; a
        caller it lists that was never seen joining is added at its join time.
        Before, a caller whose leave was lost in a reconnect stayed ahead of
        everyone for good, and the oldest in the line ahead."""
        now = self._advance(now)
        for caller in [c for c in self._waiting if c not in waiting]:
            self._join_estimate.pop(caller, None)
            self._remove(caller)
        for caller, (priority, joined_at) in waiting.items():
            if caller in self._waiting:
                continue
            joined_at = min(joined_at, now)
            self._seq += 1
            self._waiting[caller] = _Waiter(priority, self._seq, joined_at)
            self._order.setdefault(priority, []).append(self._seq)
            self._joined_at[self._seq] = joined_at
            bisect.insort(self._joins, joined_at)

    def seats(self, now: float, staffed: int, busy: int, finished: int | None = None) -> None:
        """Seats serving this queue (logged in, not paused) and how many of them are busy.

        ``finished``: calls the seats serving this queue finished since the last
        telling, when the caller counts them seat by seat (``ivr.ami.model``:
        a seat shared with another queue turns busy with that queue's callers,
        which this queue never sees as ``served``). Without it, the busy seats
        freed since then, less none: more busy seats is never calls finished."""
        self._advance(now)
        busy = max(0, busy)
        if finished is None:
            finished = self.busy - busy           # busy seats freed: calls finished (wrap-up included)
        self._service.event(max(0, finished))
        if self._congested():
            self._turnover.event(max(0, finished))
        self.staffed, self.busy = max(0, staffed), busy

    def plan_seats(self, changes: Iterable[tuple[float, int]]) -> None:
        """Known future seat counts: (at, seats), absolute times. Replaces the previous plan."""
        self._plan = sorted((float(at), max(0, int(n))) for at, n in changes)

    # -- readings --

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def last_to_enter_service_s(self) -> float | None:
        """LES: the wait of the last caller to reach a seat."""
        return self.last_waits[-1] if self.last_waits else None

    @property
    def service_rate(self) -> float:
        """Calls a seat finishes per second, recently: over its whole cycle while callers wait
        beyond the idle seats, once enough such cycles were seen (``turnover``); else over its
        busy seconds (talk and wrap-up), which misses the gap before its next caller."""
        busy = self._service.rate
        if self.settings.turnover and self._turnover.events >= self.settings.turnover_min_events:
            return min(busy, self._turnover.rate)
        return busy

    @property
    def abandon_rate(self) -> float:
        """θ: callers leaving without a seat per second of waiting, recently."""
        return self._abandon.rate

    def calibration(self, now: float) -> float:
        """The factor the engine's estimate is scaled by (1 without ``calibrate``)."""
        if not self.settings.calibrate:
            return 1.0
        return min(2.0, max(0.5, self._calibration.shrunk(now, self.settings.calibration_prior)))

    def arrival_rate(self, now: float, priority: int | None = None) -> tuple[float, float]:
        """Arrivals per second now (all, or one class) and the trend, per second per second."""
        now = self._advance(now)
        rate, slope = self._arrivals.rate_and_slope(now)
        share = 1.0 if priority is None else self._share(now, lambda p: p == priority)
        return rate * share, slope * share

    def position(self, caller: str) -> int | None:
        """Callers ahead of this one (None when it is not waiting here)."""
        w = self._waiting.get(caller)
        return None if w is None else self._ahead(w.priority, w.seq)

    def head_of_line_s(self, now: float) -> float:
        """HOL: how long the caller first in line (highest class, earliest) has waited."""
        for p in sorted(self._order, reverse=True):
            if self._order[p]:
                return max(0.0, now - self._joined_at[self._order[p][0]])
        return 0.0

    def estimate(self, caller: str, now: float) -> Estimates | None:
        """All four estimates for a waiting caller (None when it is not waiting here)."""
        w = self._waiting.get(caller)
        if w is None:
            return None
        now = self._advance(now)
        return self._estimates(self._ahead(w.priority, w.seq), w.priority, now - w.joined_at, now)

    def preview(self, priority: int, now: float) -> Estimates:
        """All four estimates for a caller who would join now with ``priority``."""
        now = self._advance(now)
        return self._estimates(self._ahead(priority, None), priority, 0.0, now)

    # -- inside --

    def _advance(self, now: float) -> float:
        now = max(now, self._at)
        self._service.advance(now, self.busy)
        self._abandon.advance(now, len(self._waiting))
        self._turnover.advance(now, self.staffed if self._congested() else 0)
        self._hazard.advance(now, self._joins)
        self._at = now
        return now

    def _congested(self) -> bool:
        """More callers waiting than idle seats: every seat's next free moment takes one."""
        return len(self._waiting) > max(0, self.staffed - self.busy)

    def _remove(self, caller: str) -> _Waiter | None:
        w = self._waiting.pop(caller, None)
        if w is not None:
            seqs = self._order[w.priority]
            i = bisect.bisect_left(seqs, w.seq)
            if i < len(seqs) and seqs[i] == w.seq:
                del seqs[i]
            del self._joined_at[w.seq]
            j = bisect.bisect_left(self._joins, w.joined_at)
            if j < len(self._joins) and self._joins[j] == w.joined_at:
                del self._joins[j]
        return w

    def _ahead(self, priority: int, seq: int | None) -> int:
        higher = sum(len(seqs) for p, seqs in self._order.items() if p > priority)
        own = self._order.get(priority, [])
        return higher + (len(own) if seq is None else bisect.bisect_left(own, seq))

    def _share(self, now: float, which: Callable[[int], bool]) -> float:
        """The share of recent arrivals in the classes ``which`` picks."""
        self._decay_class_counts(now)
        total = sum(self._class_counts.values())
        return sum(n for p, n in self._class_counts.items() if which(p)) / total if total > 0 else 0.0

    def _decay_class_counts(self, now: float) -> None:
        if now > self._class_counts_at:
            keep = math.exp(-(now - self._class_counts_at) / self.settings.class_share_tau_s)
            for p in self._class_counts:
                self._class_counts[p] *= keep
            self._class_counts_at = now

    def _higher(self, priority: int, now: float) -> tuple[float, float]:
        """Arrivals per second of classes above ``priority`` (all arrivals times their
        share: the total has the events to show a trend, a class alone seldom does)."""
        share = self._share(now, lambda p: p > priority)
        if share <= 0:
            return 0.0, 0.0
        rate, slope = self._arrivals.rate_and_slope(now)
        return rate * share, slope * share

    def _engine(self, ahead: int, priority: int, now: float) -> tuple[float, float, float, float]:
        """-> (mean, spread, higher-class arrival rate, θ of the line ahead)."""
        higher_rate, higher_slope = self._higher(priority, now)
        plan = [(at - now, n) for at, n in self._plan if at > now]
        idle = max(0, self.staffed - self.busy)

        def wait(theta: float) -> tuple[float, float]:
            return engine_wait(ahead, self.staffed, self.service_rate, theta, idle=idle, seat_plan=plan,
                               higher_rate=higher_rate, higher_slope=higher_slope, settings=self.settings)

        theta = self.abandon_rate
        capacity = self.staffed * self.service_rate
        if self.settings.age_hazard and ahead >= idle and capacity > 0:
            # how long the callers ahead stay in line, roughly: QL_m with θ, in constant time
            places = ahead - idle + 1.0
            guess = min(self.settings.horizon_s, place_time(capacity, theta, 0.0, places - 1.0, places))
            theta = self._line_theta(ahead, priority, now, guess)
        mean, spread = wait(theta)
        return mean, spread, higher_rate, theta

    def _line_theta(self, ahead: int, priority: int, now: float, wait_s: float) -> float:
        """θ the callers ahead will show while this caller waits: each leaves at the hazard of the
        ages it goes through (``AgeHazard``, by time waited) until its own seat comes, which is
        about its place's share of the wait. Callers who take a callback when the hold music offers
        it leave early and at about the same age; exponential patience would give every age the
        same hazard. A sample of the callers ahead (the oldest ``ahead`` of this class or a
        higher one) stands for all."""
        st = self.settings
        bounds, joins = st.hazard_ages_s, self._joins
        if any(p < priority and seqs for p, seqs in self._order.items()):
            # a lower class waits too (an emergency caller's line): only those of this class or above are ahead
            joins = sorted(self._joined_at[s] for p, seqs in self._order.items() if p >= priority for s in seqs)
        n = min(ahead, len(joins))
        if n <= 0:
            return self.abandon_rate
        cumulative = CumulativeHazard(self._hazard.hazards(self.abandon_rate), bounds)
        k = min(n, st.hazard_samples)
        left = spent = 0.0
        for q in range(k):
            i = int((q + 0.5) * n / k)
            age = now - joins[i]
            stay = wait_s * (i + 1) / (n + 1)     # its seat comes about this far into our wait
            left += cumulative.at(age + stay) - cumulative.at(age)
            spent += stay
        return left / spent if spent > 0 else self.abandon_rate

    def _estimates(self, ahead: int, priority: int, waited_s: float, now: float) -> Estimates:
        mean, spread, higher, line_theta = self._engine(ahead, priority, now)
        factor = self.calibration(now)
        mu, theta, horizon = self.service_rate, self.abandon_rate, self.settings.horizon_s
        idle = max(0, self.staffed - self.busy)
        head = self.head_of_line_s(now)

        def make(method: str, wait_s: float, basis_s: float = 0.0, spread_s: float = 0.0,
                 calibration: float = 1.0, line_theta: float = 0.0) -> WaitEstimate:
            return WaitEstimate(method, self.queue, wait_s, now, waited_s, ahead, priority, self.staffed, idle,
                                mu, theta, higher, basis_s, spread_s, calibration, line_theta)

        return Estimates(
            engine=make("engine", min(horizon, mean * factor), spread_s=spread * factor, calibration=factor,
                        line_theta=line_theta),
            asterisk_holdtime=make("asterisk_holdtime", asterisk_holdtime_wait(self.holdtime_s, waited_s),
                                   basis_s=float(self.holdtime_s)),
            head_of_line=make("head_of_line", head_of_line_wait(head, waited_s), basis_s=head),
            queue_length=make("queue_length", queue_length_wait(ahead, self.staffed, mu, horizon)),
        )
