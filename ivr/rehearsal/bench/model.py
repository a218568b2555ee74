"""`ivr bench model`: the leader's live model (``ivr/ami/model.py``) fed the AMI
events of a long line; CPU per event and per reading, and against a baseline
model in the same run (``--baseline FILE``, a copy of ``model.py`` from another
commit, e.g. ``git show 49c91c0:ivr/ami/model.py > /tmp/model_before.py``: the
model before it kept its lines incrementally). The baseline is loaded under a
name of its own and uses this tree's estimator, lines and statistics.

The scenario, seeded: ``--seats`` seats split over two queues (two thirds,
one third), each seat serving one; a standing line of ``--callers`` waiting
callers, 1 % of them at the emergency priority (``QUEUE_PRIO`` as a
ChanVariable, as manager.conf's ``channelvars`` sends it). Citizens arrive at
``--rate`` per second. In Asterisk 22's order (the transcripts): a caller
joins (QueueCallerJoin); a seat whose call ends (AgentComplete, its talk time
between 2 and 6 minutes) takes the first caller of its queue, highest priority
first (QueueCallerLeave, then AgentConnect); while the line is longer than
``--callers`` a random caller gives up (QueueCallerAbandon, then
QueueCallerLeave). ``--warmup-s`` simulated seconds are replayed first without
any reading, to fill the 15-minute window of outcomes as a busy hour would.

Then ``--calls`` more citizens, and at the leader's cadence, every
``--publish-s`` simulated seconds: the capture's ``estimated_wait`` (it asks
once per courtesy callback), the contingency supervisor's ``observation`` (every
5 s) and ``lines``, each here once per publish for a figure per call; then the
controller's publish (``snapshot``, then ``outlook``). CPU is the
process's (``time.process_time``): the events between two publishes are timed
as one batch, each reading alone. Models alternate within a round, the order
swapped every round; medians over ``--rounds``. The figures of the two models
are compared at the end of the first round (all but the estimated wait, whose
meaning changed with issue 23)."""

from __future__ import annotations

import gc
import heapq
import importlib.util
import json
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.ami.model import LiveModel

QUEUES = (("general-q", 2 / 3), ("enterprise-q", 1 / 3))
EMERGENCY_PRIORITY = 10
READINGS = ("snapshot", "outlook", "observation", "estimated_wait", "lines")
T0 = 1_800_000_000.0

Event = dict[str, Any]


@dataclass
class Schedule:
    warmup: list[tuple[float, Event]]
    batches: list[tuple[float, list[tuple[float, Event]]]]     # (publish at, the events before it)
    calls: int
    standing: int

    @property
    def events(self) -> int:
        return sum(len(b) for _, b in self.batches)


@dataclass
class _Queue:
    name: str
    lines: dict[int, deque[str]] = field(default_factory=lambda: {EMERGENCY_PRIORITY: deque(), 0: deque()})
    idle: list[str] = field(default_factory=list)

    def head(self, waiting: dict[str, tuple[str, float, int]]) -> str | None:
        for prio in (EMERGENCY_PRIORITY, 0):
            line = self.lines[prio]
            while line and line[0] not in waiting:      # gave up: dropped when it reaches the head
                line.popleft()
            if line:
                return line.popleft()
        return None


class _Generator:
    """The PBX side of the scenario: who waits where, which seat ends when."""

    def __init__(self, seats: int, rng: random.Random) -> None:
        self.rng = rng
        self.queues = [_Queue(name) for name, _ in QUEUES]
        self.shares = [share for _, share in QUEUES]
        self.waiting: dict[str, tuple[str, float, int]] = {}      # uniqueid -> (queue, joined at, priority)
        self.pool: list[str] = []                                   # the waiting, for a random abandon
        self.index: dict[str, int] = {}
        self.ends: list[tuple[float, str, int, str]] = []           # heap: (ends at, seat, queue index, caller)
        self.seq = 0
        self.out: list[tuple[float, Event]] = []
        n = 0
        for qi, share in enumerate(self.shares):
            count = round(seats * share) if qi < len(self.shares) - 1 else seats - n
            for _ in range(count):
                n += 1
                iface = f"Local/{1000 + n}@ivr-seats/n"
                self.queues[qi].idle.append(iface)
                self.out.append((T0, {"Event": "QueueMemberAdded", "Queue": self.queues[qi].name,
                                      "Interface": iface, "MemberName": f"Seat{1000 + n}",
                                      "StateInterface": f"Custom:seat{1000 + n}", "Membership": "static",
                                      "Penalty": "0", "CallsTaken": "0", "LastCall": "0", "LastPause": "0",
                                      "LoginTime": "0", "InCall": "0", "Status": "1", "Paused": "0",
                                      "PausedReason": "", "Ringinuse": "0", "Wrapuptime": "0"}))

    def emit(self, t: float, ev: Event) -> None:
        self.out.append((t, ev))

    def join(self, t: float) -> None:
        self.seq += 1
        uid = f"{int(T0)}.{self.seq}"
        qi = 0 if self.rng.random() < self.shares[0] else 1
        q = self.queues[qi]
        prio = EMERGENCY_PRIORITY if self.rng.random() < 0.01 else 0
        ev: Event = {"Event": "QueueCallerJoin", "Channel": f"PJSIP/trunk-{self.seq:08x}",
                     "CallerIDNum": f"13{self.seq % 10**9:09d}", "Uniqueid": uid, "Queue": q.name,
                     "Position": str(len(self.waiting) + 1), "Count": str(len(self.waiting) + 1)}
        if prio:
            ev["ChanVariable"] = [f"QUEUE_PRIO={prio}"]
        self.emit(t, ev)
        self.waiting[uid] = (q.name, t, prio)
        self.index[uid] = len(self.pool)
        self.pool.append(uid)
        q.lines[prio].append(uid)
        if q.idle:
            self.connect(t, qi, q.idle.pop())

    def _gone(self, uid: str) -> tuple[str, float, int]:
        i = self.index.pop(uid)
        last = self.pool.pop()
        if last != uid:
            self.pool[i] = last
            self.index[last] = i
        return self.waiting.pop(uid)

    def connect(self, t: float, qi: int, seat: str) -> None:
        q = self.queues[qi]
        uid = q.head(self.waiting)
        if uid is None:
            q.idle.append(seat)
            return
        _, joined, _ = self._gone(uid)
        self.emit(t, {"Event": "QueueCallerLeave", "Uniqueid": uid, "Queue": q.name, "Position": "1",
                      "Count": str(len(self.waiting))})
        self.emit(t, {"Event": "AgentConnect", "Uniqueid": uid, "Queue": q.name, "Interface": seat,
                      "MemberName": seat, "HoldTime": str(int(t - joined)), "RingTime": "1"})
        heapq.heappush(self.ends, (t + self.rng.uniform(120.0, 360.0), seat, qi, uid))

    def seats_done(self, t: float) -> None:
        while self.ends and self.ends[0][0] <= t:
            at, seat, qi, uid = heapq.heappop(self.ends)
            self.emit(at, {"Event": "AgentComplete", "Uniqueid": uid, "Queue": self.queues[qi].name,
                           "Interface": seat, "MemberName": seat, "Reason": "caller", "TalkTime": "240"})
            self.connect(at, qi, seat)

    def abandon_beyond(self, t: float, standing: int) -> None:
        while len(self.waiting) > standing:
            uid = self.pool[self.rng.randrange(len(self.pool))]
            queue, joined, _ = self._gone(uid)
            self.emit(t, {"Event": "QueueCallerAbandon", "Uniqueid": uid, "Queue": queue, "Position": "1",
                          "OriginalPosition": "1", "HoldTime": str(int(t - joined))})
            self.emit(t, {"Event": "QueueCallerLeave", "Uniqueid": uid, "Queue": queue, "Position": "1",
                          "Count": str(len(self.waiting))})

    def take(self) -> list[tuple[float, Event]]:
        out, self.out = self.out, []
        return out


def scenario(*, seats: int, standing: int, calls: int, rate: float, warmup_s: float, publish_s: float,
             seed: int = 1) -> Schedule:
    gen = _Generator(seats, random.Random(seed))
    for i in range(seats + standing):          # every seat on a call, the line standing behind them
        gen.join(T0 + i * 1e-3)
    t = T0 + 1.0
    step = 1.0 / rate
    end_warmup = t + warmup_s
    while t < end_warmup:
        gen.seats_done(t)
        gen.join(t)
        gen.abandon_beyond(t, standing)
        t += step
    warmup = gen.take()
    batches: list[tuple[float, list[tuple[float, Event]]]] = []
    next_publish = t + publish_s
    for _ in range(calls):
        while t >= next_publish:
            batches.append((next_publish, gen.take()))
            next_publish += publish_s
        gen.seats_done(t)
        gen.join(t)
        gen.abandon_beyond(t, standing)
        t += step
    batches.append((next_publish, gen.take()))
    return Schedule(warmup, batches, calls, standing)


def load_model(path: Path) -> type[LiveModel]:
    """``LiveModel`` from another copy of ``model.py`` (its imports resolve to this tree)."""
    name = "ivr_bench_baseline_model"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module              # dataclasses look their module up there
    spec.loader.exec_module(module)
    cls: type[LiveModel] = module.LiveModel
    return cls


def replay(cls: type[LiveModel], sched: Schedule) -> tuple[dict[str, float], LiveModel]:
    """-> (CPU seconds: events and each reading, summed; counts), the model at the end."""
    model = cls(emergency_queues=("emergency-q",), emergency_priority=EMERGENCY_PRIORITY)
    for t, ev in sched.warmup:
        model.apply(ev, t)
    gc.collect()
    cpu = dict.fromkeys(("events", *READINGS), 0.0)
    clock = time.process_time
    readings: list[tuple[str, Callable[[float], object]]] = [
        ("estimated_wait", lambda now: model.estimated_wait("general-q", now)),
        ("observation", lambda now: model.observation(now, ("general-q",))), ("lines", model.lines),
        ("snapshot", model.snapshot), ("outlook", model.outlook)]
    for at, batch in sched.batches:
        apply = model.apply
        start = clock()
        for t, ev in batch:
            apply(ev, t)
        cpu["events"] += clock() - start
        for name, read in readings:
            start = clock()
            read(at)
            cpu[name] += clock() - start
    return cpu, model


def _comparable(model: LiveModel, at: float) -> dict[str, Any]:
    snap: dict[str, Any] = json.loads(json.dumps(model.snapshot(at)))
    for q in snap["queues"].values():
        q.pop("estimated_wait_s")
    obs = model.observation(at)
    return {"snapshot": snap, "observation": [obs.calls_waiting, obs.longest_wait_s, obs.abandon_rate, obs.offered],
            "ordered": {q: [w.uniqueid for w in model.ordered(q)] for q in sorted(model.queue_names)},
            "emergency_waiting": [w.uniqueid for w in model.emergency_waiting()]}


def run(args: Any) -> dict[str, Any]:
    sched = scenario(seats=args.seats, standing=args.callers, calls=args.calls, rate=args.rate,
                     warmup_s=args.warmup_s, publish_s=args.publish_s, seed=args.seed)
    models: dict[str, type[LiveModel]] = {"model": LiveModel}
    if args.baseline:
        models = {"baseline": load_model(Path(args.baseline)), **models}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    agree: bool | None = None
    estimates: dict[str, float] = {}
    order = list(models)
    for r in range(args.rounds):
        ends: dict[str, LiveModel] = {}
        for name in order if r % 2 == 0 else reversed(order):
            cpu, ends[name] = replay(models[name], sched)
            runs[name].append(cpu)
        if r == 0:
            at = sched.batches[-1][0]
            for name, m in ends.items():
                estimates[name] = m.estimated_wait("general-q", at)
            if len(ends) == 2:
                agree = _comparable(ends["baseline"], at) == _comparable(ends["model"], at)
    publishes = len(sched.batches)
    out: dict[str, Any] = {
        "seats": args.seats, "standing_line": args.callers, "calls": sched.calls, "events": sched.events,
        "publishes": publishes, "rounds": args.rounds, "figures_agree": agree,
        "general_q_estimated_wait_s": estimates, "models": {}}
    for name, cpus in runs.items():
        med = {k: statistics.median(c[k] for c in cpus) for k in cpus[0]}
        per_call_ms = (med["events"] + med["snapshot"] + med["outlook"]) / sched.calls * 1e3
        out["models"][name] = {
            "event_us": med["events"] / sched.events * 1e6,
            **{f"{k}_ms": med[k] / publishes * 1e3 for k in READINGS},
            "leader_per_call_ms": per_call_ms,
            "rounds_per_call_ms": [(c["events"] + c["snapshot"] + c["outlook"]) / sched.calls * 1e3 for c in cpus]}
    return out


def main(args: Any) -> int:
    r = run(args)
    print(f"ivr bench model: {r['seats']:,} seats, a standing line of {r['standing_line']:,} callers over two "
          f"queues; {r['calls']:,} calls, {r['events']:,} AMI events, {r['publishes']:,} publishes; "
          f"medians of {r['rounds']} rounds")
    names = list(r["models"])
    print(f"  {'CPU':<36}" + "".join(f"{n:>14}" for n in names) + ("       ratio" if len(names) == 2 else ""))
    rows = [("per AMI event (µs)", "event_us")] + [(f"{k} per call (ms)", f"{k}_ms") for k in READINGS] + \
        [("leader per citizen call (ms; events +", "leader_per_call_ms")]
    for label, key in rows:
        vals = [r["models"][n][key] for n in names]
        ratio = f"{vals[0] / vals[1]:>11.1f}x" if len(vals) == 2 and vals[1] > 0 else ""
        print(f"  {label:<36}" + "".join(f"{v:>14.4f}" for v in vals) + ratio)
    print("   snapshot + outlook at each publish)")
    est = ", ".join(f"{n} {v:.1f} s" for n, v in r["general_q_estimated_wait_s"].items())
    print(f"  general-q's estimated wait at the end: {est}")
    if r["figures_agree"] is not None:
        print(f"  figures (all but the estimated wait) agree: {'yes' if r['figures_agree'] else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0 if r["figures_agree"] is not False else 1
