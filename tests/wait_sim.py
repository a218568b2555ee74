"""A small discrete-event simulation of one hotline queue for scoring wait
estimates: M_t/M/s_t+M with two priority classes. Arrivals are Poisson with a
piecewise-linear rate; each caller has exponential patience and leaves if no
seat comes first; a seat takes the head caller (highest class, then earliest)
for an exponential talk time plus a fixed wrap-up; the number of seats changes
on a schedule (a seat that goes off duty mid-call finishes that call while the
others keep taking callers, as app_queue does with a paused member).

Every event is fed to a ``QueueObserver`` as the engine would feed it, every
caller's estimates are taken at join, and the callers who reached a seat are
scored. Seeded and pure Python: tests/test_wait_estimate.py runs it in a few
seconds; ``python -m tests.wait_sim`` prints the figures in docs/wait-estimate.md.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.admission.accuracy import wait_estimate_accuracy
from ivr.admission.announce import Announcement, announce
from ivr.admission.estimate import Estimates, EstimateSettings, QueueObserver


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    arrivals: tuple[tuple[float, float], ...]     # (at_s, calls per hour), linear in between
    seats: tuple[tuple[float, int], ...]          # (at_s, seats on duty), from then on
    handle_s: float
    wrapup_s: float
    patience_s: float
    high_share: float = 0.05                      # callers of the higher priority class
    seed: int = 12345
    # the hold music's callback offer ("press 1 to be called back"), on for callers joining in
    # [from, until): that share of ordinary callers withdraw at min(patience × 0.5, the offer's period)
    offer: tuple[float, float] | None = None
    offer_share: float = 0.0
    offer_every_s: float = 60.0
    # callers hear the engine's estimate as the IVR says it before joining ("预计等待约3分钟", taken as
    # 2.5 minutes) and hang up when it is beyond their patience, as the drill's citizens do
    balk: bool = False

    def rate_per_s(self, t: float) -> float:
        pts = self.arrivals
        if t <= pts[0][0]:
            return pts[0][1] / 3600
        for (t0, r0), (t1, r1) in itertools.pairwise(pts):
            if t0 <= t <= t1:
                return (r0 + (r1 - r0) * (t - t0) / (t1 - t0 if t1 > t0 else 1)) / 3600
        return pts[-1][1] / 3600

    @property
    def capacity_per_hour(self) -> float:
        return self.seats[0][1] * 3600 / (self.handle_s + self.wrapup_s)


# 60 seats for Beijing's 1,820: demand 5x capacity rising to 8x and back to 6x;
# seats called in at 20 min, a shift leaving at 45 min. Beijing's callers.
BEIJING = Scenario(
    "beijing-like", 3600,
    arrivals=((0, 5 * 847), (1800, 8 * 847), (3600, 6 * 847)),
    seats=((0, 60), (1200, 72), (2700, 54)),
    handle_s=240, wrapup_s=15, patience_s=120)

# The demo's mid-size hotline: 40 seats, a surge to about 3x capacity after a
# policy announcement, then calm; six seats called in during the surge.
DEMO = Scenario(
    "demo-like", 4200,
    arrivals=((0, 400), (300, 2400), (1000, 2400), (1300, 250), (4200, 200)),
    seats=((0, 40), (500, 46), (1500, 40)),
    handle_s=180, wrapup_s=10, patience_s=150, seed=2024)

# Near capacity all along (about 0.9 to 1.1 of it): short waits, many callers seated at once.
MODERATE = Scenario(
    "moderate", 3600,
    arrivals=((0, 700), (1800, 880), (3600, 700)),
    seats=((0, 40), (1800, 42)),
    handle_s=180, wrapup_s=10, patience_s=150, seed=7)

# The demo drill as its citizens behave (queue/drills/demo.yaml, ivr.rehearsal.sim.drill): 40 seats
# and no seats called in, the same surge; once the contingency level rises (about 400 s in) the busy
# level's hold music offers a callback about every 60 s, and 60 % of ordinary callers press 1 at
# min(patience × 0.5, 60 s) of waiting. The line ahead then thins twice as fast as exponential
# patience of 150 s says, mostly before a minute of waiting.
HOLD_OFFER = Scenario(
    "hold-offer", 4200,
    arrivals=((0, 400), (300, 2400), (1000, 2400), (1300, 250), (4200, 200)),
    seats=((0, 40),),
    handle_s=180, wrapup_s=10, patience_s=150, seed=2025,
    offer=(400, 1300), offer_share=0.6, offer_every_s=60, balk=True)

SCENARIOS = (BEIJING, DEMO, MODERATE, HOLD_OFFER)


def told_wait_s(said: Announcement) -> float:
    """The wait a caller takes from what was said: the middle of the rounded-up minutes, 0 when none."""
    if said.wait_kind == "none":
        return 0.0
    return 60.0 * (said.minutes if said.wait_kind == "over" else said.minutes - 0.5)


Probe = Callable[[float, QueueObserver, Estimates], None]    # (now, observer, a new caller's estimates)


@dataclass(frozen=True)
class Seated:
    """A caller who reached a seat: what was estimated at join, and the wait it had."""
    joined_at: float
    priority: int
    estimates: Estimates
    wait_s: float


@dataclass
class Result:
    scenario: str
    calls: int = 0
    served: int = 0
    abandoned: int = 0
    balked: int = 0
    seated: list[Seated] = field(default_factory=list)

    def accuracy(self, priority: int | None = None) -> dict[str, dict[str, float | int | None]]:
        return wait_estimate_accuracy((c.estimates.seconds(), c.wait_s) for c in self.seated
                                      if priority is None or c.priority == priority)


class _Sim:
    """One run: the event list, the seats, the lines, and the observer fed as the engine would feed it."""

    def __init__(self, scenario: Scenario, observer: QueueObserver, probe: Probe | None) -> None:
        self.scenario, self.observer, self.probe = scenario, observer, probe
        self.rng = random.Random(scenario.seed)
        self.events: list[tuple[float, int, str, str]] = []
        self.seq = itertools.count()
        self.staffed, self.busy = scenario.seats[0][1], 0
        self.leaving = 0                          # busy seats gone off duty: they finish the call, then go
        self.lines: dict[int, deque[str]] = {1: deque(), 0: deque()}     # by priority, in join order
        self.joined: dict[str, tuple[float, int, Estimates]] = {}
        self.waiting: set[str] = set()
        self.result = Result(scenario.name)

    def at(self, t: float, kind: str, payload: str = "") -> None:
        heapq.heappush(self.events, (t, next(self.seq), kind, payload))

    def run(self) -> Result:
        sc, rng = self.scenario, self.rng
        peak = max(r for _, r in sc.arrivals) / 3600
        t = rng.expovariate(peak)
        while t < sc.duration_s:                  # thinning: a Poisson process with the profile's rate
            if rng.random() * peak <= sc.rate_per_s(t):
                self.at(t, "arrive")
            t += rng.expovariate(peak)
        for when, n in sc.seats[1:]:
            self.at(when, "seats", str(n))
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            getattr(self, f"on_{kind}")(now, payload)
        return self.result

    def on_arrive(self, now: float, _: str) -> None:
        self.result.calls += 1
        caller = f"c{self.result.calls}"
        sc = self.scenario
        prio = 1 if self.rng.random() < sc.high_share else 0
        patience = self.rng.expovariate(1 / sc.patience_s) if sc.balk else -1.0
        if sc.balk and told_wait_s(announce(self.observer.preview(prio, now).engine)) > patience:
            self.result.balked += 1               # told a wait beyond their patience: hangs up rather than wait
            return
        self.observer.joined(caller, prio, now)
        est = self.observer.estimate(caller, now)
        assert est is not None
        self.joined[caller] = (now, prio, est)
        if self.probe is not None:
            self.probe(now, self.observer, est)
        self.waiting.add(caller)
        self.lines[prio].append(caller)
        if patience < 0:
            patience = self.rng.expovariate(1 / sc.patience_s)
        if (sc.offer is not None and prio == 0 and sc.offer[0] <= now < sc.offer[1]
                and self.rng.random() < sc.offer_share):   # takes the callback when it is offered
            patience = min(patience * 0.5, sc.offer_every_s)
        self.at(now + patience, "abandon", caller)
        self.seat_callers(now)

    def on_abandon(self, now: float, caller: str) -> None:
        if caller in self.waiting:
            self.waiting.discard(caller)
            self.observer.abandoned(caller, now)
            self.result.abandoned += 1

    def on_free(self, now: float, _: str) -> None:
        if self.leaving and self.rng.random() * self.busy < self.leaving:
            self.leaving -= 1                     # an off-duty seat finished its last call
        self.busy -= 1
        self.observer.seats(now, self.staffed, self.busy)
        self.seat_callers(now)

    def on_seats(self, now: float, n: str) -> None:
        """Seats on duty change as Asterisk sees it: a seat paused or logged off
        mid-call finishes that call; the seats still on duty keep taking callers."""
        new = int(n)
        if new < self.staffed:
            idle = max(0, self.staffed - (self.busy - self.leaving))
            self.leaving += max(0, self.staffed - new - idle)
        else:
            self.leaving -= min(self.leaving, new - self.staffed)
        self.staffed = new
        self.observer.seats(now, self.staffed, self.busy)
        self.seat_callers(now)

    def seat_callers(self, now: float) -> None:
        while self.busy - self.leaving < self.staffed:
            caller = self.head()
            if caller is None:
                return
            self.waiting.discard(caller)
            self.busy += 1
            joined_at, prio, estimates = self.joined.pop(caller)
            self.observer.served(caller, now)
            self.observer.seats(now, self.staffed, self.busy)
            self.result.served += 1
            self.result.seated.append(Seated(joined_at, prio, estimates, now - joined_at))
            self.at(now + self.rng.expovariate(1 / self.scenario.handle_s) + self.scenario.wrapup_s, "free")

    def head(self) -> str | None:
        for prio in (1, 0):
            line = self.lines[prio]
            while line:
                caller = line.popleft()
                if caller in self.waiting:
                    return caller
        return None


def run(scenario: Scenario, settings: EstimateSettings | None = None, *, know_plan: bool = False,
        probe: Probe | None = None) -> Result:
    """One seeded run; ``settings`` default to priors from the scenario's handle time and patience."""
    settings = settings or EstimateSettings(prior_cycle_s=scenario.handle_s, prior_patience_s=scenario.patience_s)
    observer = QueueObserver("general", settings, staffed=scenario.seats[0][1], busy=0, start=0.0)
    if know_plan:
        observer.plan_seats(scenario.seats[1:])
    return _Sim(scenario, observer, probe).run()


def table(results: list[Result]) -> str:
    rows = ["| scenario | estimator | RRMSE | within ±25 % or ±60 s | n |", "| --- | --- | ---: | ---: | ---: |"]
    for r in results:
        for method, s in r.accuracy().items():
            rows.append(f"| {r.scenario} | {method} | {s['rrmse']:.3f} | {s['within_share']:.1%} | {s['n']} |")
    return "\n".join(rows)


# what each refinement adds: (label, settings overrides, know the seat plan)
VARIANTS: tuple[tuple[str, dict[str, object], bool], ...] = (
    ("QL_m (Ibrahim & Whitt), position by class", {"served_only": False, "priority_arrivals": False}, False),
    ("QL_m + higher-class arrivals during the wait", {"served_only": False}, False),
    ("QL_m conditioned on reaching a seat", {"priority_arrivals": False}, False),
    ("engine: conditioned + higher-class arrivals", {}, False),
    ("engine without the arrival trend", {"trend_horizon_s": 0.0}, False),
    ("engine with the seat plan known", {}, True),
    ("engine with calibration", {"calibrate": True}, False),
    ("engine with θ over all ages (no hazard by time waited)", {"age_hazard": False}, False),
)


def ablation(seeds: range) -> str:
    from dataclasses import replace
    from statistics import mean
    scenarios = SCENARIOS
    head = "| variant | " + " | ".join(s.name for s in scenarios) + " |"
    rows = [head, "|" + " --- |" * (len(scenarios) + 1)]
    base = {s.name: [run(replace(s, seed=k)).accuracy() for k in seeds] for s in scenarios}
    for label, overrides, plan in VARIANTS:
        cells = []
        for sc in scenarios:
            accs = [run(replace(sc, seed=k), EstimateSettings(prior_cycle_s=sc.handle_s,
                                                              prior_patience_s=sc.patience_s, **overrides),  # type: ignore[arg-type]
                        know_plan=plan).accuracy()["engine"] for k in seeds]
            cells.append(f"{mean(a['rrmse'] for a in accs):.3f} / {mean(a['within_share'] for a in accs):.1%}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    for method in ("asterisk_holdtime", "head_of_line", "queue_length"):
        cells = [f"{mean(a[method]['rrmse'] for a in base[s.name]):.3f} / "
                 f"{mean(a[method]['within_share'] for a in base[s.name]):.1%}" for s in scenarios]
        rows.append(f"| baseline {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def promises(seeds: range) -> str:
    """How often the rounded announcement ("约N分钟") held for callers who reached a seat."""
    from dataclasses import replace

    from ivr.admission.announce import AnnounceRules, announce
    rows = ["| scenario | spread factor | wait within what was said | said minus actual (mean) |", "| --- | ---: | ---: | ---: |"]
    for sc in SCENARIOS:
        runs = [run(replace(sc, seed=k)) for k in seeds]
        for factor in (0.0, 0.5, 1.0):
            rules, kept, n, excess = AnnounceRules(spread_factor=factor, say_wait_from_s=0), 0, 0, 0.0
            for r in runs:
                for c in r.seated:
                    a = announce(c.estimates.engine, rules)
                    n += 1
                    kept += a.wait_kind == "over" or c.wait_s <= a.minutes * 60
                    excess += a.minutes * 60 - c.wait_s
            rows.append(f"| {sc.name} | {factor} | {kept / n:.1%} | {excess / n:.0f} s |")
    return "\n".join(rows)


if __name__ == "__main__":
    import time
    started = time.process_time()
    out = [run(s) for s in SCENARIOS]
    print(table(out))
    for r in out:
        print(f"{r.scenario}: {r.calls} calls, {r.served} seated, {r.abandoned} left without a seat, {r.balked} balked")
    print(f"cpu {time.process_time() - started:.1f} s\n")
    print(ablation(range(1, 11)), "\n")
    print(promises(range(1, 11)))
