"""What a queue's recent past says about its rates, and the sums the wait
predictors need. Pure: every update and every reading takes ``now``.

- ``DecayedRate``: events over exposure, both discounted by ``exp(-age/tau)``:
  the service rate per seat (calls finished over busy seat-seconds) and the
  abandonment rate θ (callers who left without a seat over caller-seconds
  spent waiting). With exponential patience, abandons over waiting exposure is
  the maximum-likelihood θ; a few pseudo-events from a prior keep the first
  minutes sane.
- ``ArrivalTrend``: the arrival rate now and its slope, from two exponentially
  weighted counts. A count with time constant tau sees the rate as it was
  about tau ago (its mean age), so two of them give the slope, and the fast one
  moved forward by its own age gives the rate now. Only the part of the slope
  that stands out of the Poisson noise is kept.
- ``DecayedRatio``: Σ actual / Σ estimate over recent pairs (calibration).
- ``stage_time`` / ``stage_variance``: the mean and variance of the time to
  clear ``m`` of ``r`` remaining stages when the stage with ``j`` left runs at
  rate ``c + j*theta``: Σ 1/rate and Σ 1/rate², in constant time through the
  digamma and trigamma functions (a queue of 6,000 costs no more than one of 6).
- ``place_time``: the same walk up the line when callers of a higher class keep
  joining ahead, for a caller who reaches a seat (see its docstring).
"""

from __future__ import annotations

import bisect
import math


class DecayedRate:
    """Events per unit of exposure, recent ones weighing more (time constant ``tau_s``)."""

    __slots__ = ("events", "exposure", "prior_events", "prior_exposure", "tau_s", "at")

    def __init__(self, tau_s: float, prior_rate: float, prior_events: float, start: float) -> None:
        self.tau_s = tau_s
        self.prior_events = prior_events
        self.prior_exposure = prior_events / prior_rate if prior_rate > 0 else 0.0
        self.events = 0.0
        self.exposure = 0.0
        self.at = start

    def advance(self, now: float, level: float) -> None:
        """Add ``level`` units of exposure per second from the last update to ``now``."""
        dt = now - self.at
        if dt <= 0:
            return
        keep = math.exp(-dt / self.tau_s)
        self.events *= keep
        self.exposure = self.exposure * keep + level * self.tau_s * (1.0 - keep)
        self.at = now

    def event(self, count: float = 1.0) -> None:
        self.events += count

    @property
    def rate(self) -> float:
        exposure = self.exposure + self.prior_exposure
        return (self.events + self.prior_events) / exposure if exposure > 0 else 0.0


class DecayedRatio:
    """Σ numerator / Σ denominator over recent pairs (time constant ``tau_s``),
    shrunk toward 1 by ``prior`` pairs' worth of "the ratio is 1"."""

    __slots__ = ("num", "den", "n", "tau_s", "at")

    def __init__(self, tau_s: float, start: float) -> None:
        self.tau_s = tau_s
        self.num = self.den = self.n = 0.0
        self.at = start

    def add(self, now: float, num: float, den: float) -> None:
        self._advance(now)
        self.num += num
        self.den += den
        self.n += 1.0

    def shrunk(self, now: float, prior: float) -> float:
        self._advance(now)
        if self.den <= 0 or self.n + prior <= 0:
            return 1.0
        return (self.n * self.num / self.den + prior) / (self.n + prior)

    def _advance(self, now: float) -> None:
        dt = now - self.at
        if dt > 0:
            keep = math.exp(-dt / self.tau_s)
            self.num *= keep
            self.den *= keep
            self.n *= keep
            self.at = now


class ArrivalTrend:
    """Arrivals per second now, and how fast that is changing (per second per second)."""

    __slots__ = ("fast", "slow", "fast_tau_s", "slow_tau_s", "start", "at")

    def __init__(self, fast_tau_s: float, slow_tau_s: float, start: float) -> None:
        self.fast_tau_s = fast_tau_s
        self.slow_tau_s = slow_tau_s
        self.fast = 0.0
        self.slow = 0.0
        self.start = start
        self.at = start

    def _advance(self, now: float) -> None:
        dt = now - self.at
        if dt > 0:
            self.fast *= math.exp(-dt / self.fast_tau_s)
            self.slow *= math.exp(-dt / self.slow_tau_s)
            self.at = now

    def arrival(self, now: float) -> None:
        self._advance(now)
        self.fast += 1.0
        self.slow += 1.0

    def rate_and_slope(self, now: float) -> tuple[float, float]:
        self._advance(now)
        seen_s = now - self.start
        fast, fast_age = _level(self.fast, self.fast_tau_s, seen_s)
        slow, slow_age = _level(self.slow, self.slow_tau_s, seen_s)
        lag = slow_age - fast_age
        if lag < 0.25 * (self.slow_tau_s - self.fast_tau_s):     # too little history to see a trend
            return fast, 0.0
        slope = (fast - slow) / lag
        # Poisson noise in (fast - slow) for a steady rate; keep only the part of
        # the slope that stands out of it (positive-part James-Stein shrinkage)
        tf, ts = self.fast_tau_s, self.slow_tau_s
        noise = slow * (1 / (2 * tf) + 1 / (2 * ts) - 2 / (tf + ts)) / lag ** 2
        keep = max(0.0, 1.0 - noise / slope ** 2) if slope else 0.0
        slope *= keep
        return max(0.0, fast + slope * fast_age), slope


def _level(count: float, tau_s: float, seen_s: float) -> tuple[float, float]:
    """An exponentially weighted count -> (rate, mean age of what it weighs), over
    the ``seen_s`` seconds there is history for."""
    if seen_s <= 0:
        return 0.0, 0.0
    decayed = math.exp(-seen_s / tau_s)
    weight = tau_s * (1.0 - decayed)
    mean_age = tau_s - seen_s * decayed / (1.0 - decayed) if decayed < 1.0 else seen_s / 2
    return count / weight, mean_age


def stage_time(c: float, theta: float, r: float, m: float) -> float:
    """Σ_{i=0}^{m-1} 1/(c + (r-i)·θ): the expected time to clear ``m`` of ``r``
    remaining stages (continuous in ``r`` and ``m``). Needs c + (r-m+1)·θ > 0."""
    if m <= 0:
        return 0.0
    if theta <= 0 or c > 1e7 * theta * (r + 1):
        return m / (c + (r - (m - 1) / 2) * theta)
    x = c / theta
    return _psi_diff(x + r - m + 1, x + r + 1) / theta


def stage_variance(c: float, theta: float, r: float, m: float) -> float:
    """Σ 1/(c + (r-i)·θ)² over the same stages: the variance of that time."""
    if m <= 0:
        return 0.0
    if theta <= 0 or c > 1e7 * theta * (r + 1):
        return m / (c + (r - (m - 1) / 2) * theta) ** 2
    x = c / theta
    return (_trigamma(x + r - m + 1) - _trigamma(x + r + 1)) / theta ** 2


def _psi_diff(a: float, b: float) -> float:
    """ψ(b) - ψ(a) for a, b > 0, without the cancellation of subtracting two
    large digammas: Σ 1/(a+i) over i = 0 .. b-a-1 when b-a is whole."""
    total = 0.0
    while a < 8.0:
        total += 1.0 / a
        a += 1.0
    while b < 8.0:
        total -= 1.0 / b
        b += 1.0
    ia, ib = 1.0 / a, 1.0 / b
    ia2, ib2 = ia * ia, ib * ib
    return (total + math.log1p((b - a) / a)
            - 0.5 * (ib - ia)
            - (ib2 - ia2) / 12.0
            + (ib2 * ib2 - ia2 * ia2) / 120.0
            - (ib2 ** 3 - ia2 ** 3) / 252.0)


def _trigamma(x: float) -> float:
    total = 0.0
    while x < 8.0:
        total += 1.0 / (x * x)
        x += 1.0
    ix = 1.0 / x
    ix2 = ix * ix
    return total + ix + ix2 / 2 + ix * ix2 / 6 - ix * ix2 * ix2 / 30 + ix * ix2 ** 3 / 42


def place_time(c: float, theta: float, lam: float, top: float, m: float, served_only: bool = True) -> float:
    """Expected time to move ``m`` places up the line, starting with ``top``
    callers ahead (continuous), when the callers ahead leave at c + jθ (j of
    them: seats finishing at c, each caller giving up at θ) and callers of a
    higher class join ahead at λ. ``inf`` when the line would not move.

    ``served_only``: for a caller whose own patience (rate θ) outlasts the wait,
    the only callers whose wait is ever scored. One place's passage from x = c+jθ
    has the Laplace transform φ solving λφ² - (x+λ+θ)φ + x = 0; conditioned on
    surviving it, with the next place's φ taken equal, its mean is
    1/(x+θ+λ-2λφ) = 1/g(x), g(x) = sqrt((x+λ+θ)² - 4λx). With λ = 0 that is
    exactly 1/(x+θ); with θ = 0 it is the fluid 1/(x-λ). Summed over places as
    ∫ dx/g(x) = ln(2g(x) + 2(x+θ-λ)) / θ between the places' midpoints.
    Without ``served_only``: the potential wait of the fluid model, Σ 1/(c+jθ-λ)."""
    if m <= 0:
        return 0.0
    if not served_only:
        if c - lam + (top - m + 1) * theta <= 0:
            return math.inf
        return stage_time(c - lam, theta, top, m)
    if lam <= 0:
        return stage_time(c, theta, top + 1, m)
    lo, hi = c + (top - m + 0.5) * theta, c + (top + 0.5) * theta
    if theta * m < 1e-6 * _g(hi, theta, lam):
        return m / _g((lo + hi) / 2, theta, lam)
    return (_log_antiderivative(hi, theta, lam) - _log_antiderivative(lo, theta, lam)) / theta


def place_variance(c: float, theta: float, lam: float, top: float, m: float) -> float:
    """Σ 1/g² over the same places: the spread of that time, roughly (the
    passages are not exponential once callers join ahead)."""
    if m <= 0:
        return 0.0
    if lam <= 0:
        return stage_variance(c, theta, top + 1, m)
    return m / _g(c + (top - (m - 1) / 2) * theta, theta, lam) ** 2


def _g(x: float, theta: float, lam: float) -> float:
    return math.sqrt((x + theta - lam) ** 2 + 4 * lam * theta)     # = sqrt((x+λ+θ)² - 4λx)


def _log_antiderivative(x: float, theta: float, lam: float) -> float:
    """ln(2g(x) + 2(x+θ-λ)), kept accurate when x+θ-λ is negative and large."""
    g, b = _g(x, theta, lam), x + theta - lam
    return math.log(2 * (g + b)) if b >= 0 else math.log(8 * lam * theta / (g - b))


class AgeHazard:
    """The abandonment hazard as a function of time already waited: piecewise constant
    between ``bounds`` (seconds waited), each piece's callers who left without a seat over the
    caller-seconds waited at those ages (Nelson-Aalen by piece), forgotten with ``tau_s``.

    Exposure comes from the join times of the callers waiting (sorted, oldest first): over
    [t0, t1], the caller-seconds spent below age b are dt·#{joined at or after t1-b} plus, for
    those crossing b in between, b - (t0 - joined). Only those crossing are summed one by one,
    so an update costs a few bisections, not one step per caller waiting."""

    __slots__ = ("bounds", "events", "exposure", "tau_s", "at")

    def __init__(self, bounds: tuple[float, ...], tau_s: float, start: float) -> None:
        self.bounds = bounds                      # ascending ages > 0; the last piece is open-ended
        self.events = [0.0] * (len(bounds) + 1)
        self.exposure = [0.0] * (len(bounds) + 1)
        self.tau_s = tau_s
        self.at = start

    def advance(self, now: float, joins: list[float]) -> None:
        """Add the exposure of the callers waiting (``joins``: their join times, ascending) up to ``now``."""
        t0, dt = self.at, now - self.at
        if dt <= 0:
            return
        keep = math.exp(-dt / self.tau_s)
        weight = self.tau_s * (1.0 - keep) / dt   # the decayed weight of the interval, per second of it
        events, exposure = self.events, self.exposure
        below, k = 0.0, 0
        for k, b in enumerate(self.bounds):
            lo = bisect.bisect_right(joins, t0 - b)
            hi = bisect.bisect_left(joins, now - b, lo)
            crossing = math.fsum(joins[lo:hi]) + (b - t0) * (hi - lo) if hi > lo else 0.0
            under = dt * (len(joins) - hi) + crossing
            events[k] *= keep
            exposure[k] = exposure[k] * keep + (under - below) * weight
            below = under
        last = len(self.bounds)
        events[last] *= keep
        exposure[last] = exposure[last] * keep + (dt * len(joins) - below) * weight
        self.at = now

    def event(self, age_s: float) -> None:
        self.events[bisect.bisect_right(self.bounds, age_s)] += 1.0

    def hazards(self, pooled: float) -> list[float]:
        """Each piece's hazard: ``pooled`` (θ over all ages, as the caller keeps it), departed from
        only as far as the pieces differ beyond the Poisson noise of their counts (empirical Bayes:
        a gamma prior around the pooled rate, its variance from the pieces' spread less their noise,
        by moments). With exponential patience every piece shows the pooled rate; callers who take a
        callback offer after a minute make the piece at that age stand out at once."""
        events, exposure = self.events, self.exposure
        spread = sum((e - pooled * x) ** 2 - pooled * x for e, x in zip(events, exposure, strict=True))
        squares = sum(x * x for x in exposure)
        var = spread / squares if squares > 0 else 0.0
        if var <= 0 or pooled <= 0:
            return [pooled] * len(events)
        b = pooled / var                              # the prior's weight, in seconds of exposure
        return [(e + pooled * b) / (x + b) for e, x in zip(events, exposure, strict=True)]


class CumulativeHazard:
    """∫_0^age of a piecewise-constant hazard (``hazards[k]`` below ``bounds[k]``, the last one beyond)."""

    __slots__ = ("bounds", "hazards", "starts", "below")

    def __init__(self, hazards: list[float], bounds: tuple[float, ...]) -> None:
        self.bounds, self.hazards = bounds, hazards
        self.starts = (0.0, *bounds)
        self.below = [0.0]
        for k, b in enumerate(bounds):
            self.below.append(self.below[-1] + hazards[k] * (b - self.starts[k]))

    def at(self, age_s: float) -> float:
        k = bisect.bisect_left(self.bounds, age_s)
        return self.below[k] + self.hazards[k] * (age_s - self.starts[k])
