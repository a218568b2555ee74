"""`ivr drill`: the whole engine (FastAGI server, AMI controller, contingency
supervisor, missed-call capture, callback scheduler, embedded Redis) against the
simulated Asterisk, with citizens arriving from a profile.

Everything runs on one simulated clock, ``speed`` times the wall clock: the
PBX side (arrivals, patience, conversations, wrap-up, Queue() timeouts) and the
engine, which is given the same time line as its clock (``ivr/clock.py``). So
the engine's calling hours, deadlines, spacing, threshold hold times and the
live figures are in the same simulated seconds as the report. The drill's day
starts at 09:00 in the hotline's time zone, whatever the hour it is run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr import logs
from ivr.callback.store import CallbackQueries, CallbackStore
from ivr.clock import ScaledClock
from ivr.contingency.store import ContingencyStore
from ivr.engine import Engine, raise_open_file_limit
from ivr.redis_server import EmbeddedRedis, connect
from ivr.settings import load_settings
from ivr.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
from ivr.sim.ami_server import SimAmiServer
from ivr.sim.callcenter import CallCenter, Outcome
from ivr.sim.pbx import SimPbx
from ivr.sim.profiles import Profile

TICK_S = 0.02           # wall seconds between advances of the simulated PBX
ENGINE_START_S = 3.0    # wall seconds from the drill's start to its time 0 (the engine starts meanwhile)
ON_BREAK = ("Local/101@ivr-seats/n", "Local/102@ivr-seats/n")   # queue/seats.yaml front-line, paused


class SimClock:
    """The drill's time line: simulated seconds since the drill's start for the
    simulated PBX and the report, and the same instant as epoch seconds
    (``engine``, a ``ScaledClock``) for the engine, so the engine's calling
    hours, deadlines, spacing and windows run in the drill's seconds."""

    def __init__(self, speed: float, start_epoch: float, lead_s: float = 0.0) -> None:
        self.speed = speed
        self.engine = ScaledClock(start_epoch, speed, time.monotonic() + lead_s)

    def now(self) -> float:
        return self.engine.elapsed()

    async def sleep(self, sim_s: float) -> None:
        await self.engine.sleep(sim_s)


def default_start(tz) -> float:
    """09:00 today where the hotline is: a drill starts in the working day, at
    whatever hour it is run, so callbacks fall within calling hours."""
    today = dt.datetime.now(tz).date()
    return dt.datetime.combine(today, dt.time(9, 0), tzinfo=tz).timestamp()


def plan_mode(mode: str):
    """The drill runs the shipped plan in its own mode (``auto``: the level moves
    by itself; ``propose``: a fixed level)."""
    def adjust(snap):
        plan = dataclasses.replace(snap.ops.plan, mode=mode)
        return dataclasses.replace(snap, ops=dataclasses.replace(snap.ops, plan=plan))
    return adjust


@dataclass
class CallRecord:
    number: str
    at: float
    redial: bool
    emergency: bool
    outcome: str = "in_progress"   # answered | abandoned | left_in_flow | satisfied | callback_accepted | message | other
    wait_s: float | None = None
    wanted_person: bool = False
    leaves_after_policy: bool = False   # hangs up satisfied if the policy announcement plays


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    level: list[int] = field(default_factory=list)


def arrival_times(profile: Profile, rng: random.Random, duration_s: float) -> list[float]:
    """A Poisson process with the profile's rate over time (thinning)."""
    peak, t, out = profile.peak_per_s, 0.0, []
    if peak <= 0:
        return out
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return out
        if rng.random() * peak <= profile.rate_per_s(t):
            out.append(t)


class Drill:
    def __init__(self, profile: Profile, *, home: Path, speed: float | None = None, contingency: str = "auto",
                 seed: int = 12345, duration_s: float | None = None, progress=None,
                 http_listen: str = "127.0.0.1:0", on_ready=None, start_epoch: float | None = None) -> None:
        self.p = profile
        self.home = home
        self.speed = speed or profile.speed
        self.start_epoch = start_epoch
        self.contingency = contingency        # "auto" | "plan" | "0".."N" (fixed)
        self.rng = random.Random(seed)
        self.duration_s = duration_s or profile.duration_s
        self.progress = progress
        self.http_listen = http_listen      # the console, while the drill runs
        self.on_ready = on_ready            # called with the engine once it answers calls
        self.calls: dict[str, CallRecord] = {}
        self.futures: dict[str, asyncio.Future] = {}
        self.tasks: set[asyncio.Task] = set()
        self.series = Series()
        self.cb_made = self.cb_reached = self.cb_seat_busy = 0
        self._seen_originates = 0
        self._numbers = 0

    # -- the PBX ------------------------------------------------------------------

    def _build_pbx(self) -> tuple[SimPbx, CallCenter]:
        cc: CallCenter | None = None
        pbx = SimPbx(lambda: cc.now)
        cc = CallCenter(pbx, on_end=self._queue_ended)
        b = self.p.callers
        pbx.add_queue("general-q", wrapup_s=b.wrapup_s)
        pbx.add_queue("emergency-q", strategy="ringall", weight=10, wrapup_s=b.wrapup_s)
        for i in range(self.p.seats):       # general seats serve the emergency line after the reserved ones
            iface = f"Local/{10001 + i}@ivr-seats/n"
            pbx.add_member("general-q", iface, f"Seat{10001 + i}", f"Custom:seat{10001 + i}")
            pbx.add_member("emergency-q", iface, f"Seat{10001 + i}", f"Custom:seat{10001 + i}", penalty=5)
        for iface in ON_BREAK:           # on a break: level 1 calls them back
            n = iface.split("/")[1].split("@")[0]
            pbx.add_member("general-q", iface, f"Seat{n}", f"Custom:seat{n}")
            pbx.action({"Action": "QueuePause", "Interface": iface, "Paused": "true", "Reason": "break"})
        for i in range(self.p.emergency_seats):
            n = 109 if i == 0 else 9001 + i
            iface = f"Local/{n}@ivr-seats/n"
            pbx.add_member("emergency-q", iface, f"Seat{n}", f"Custom:seat{n}")
            if n == 109:    # as in asterisk/queues.conf: the last resort of the general line
                pbx.add_member("general-q", iface, f"Seat{n}", f"Custom:seat{n}", penalty=10)
        pbx.drain()
        return pbx, cc

    def _queue_ended(self, uniqueid: str, out: Outcome) -> None:
        fut = self.futures.pop(uniqueid, None)
        if fut is not None and not fut.done():
            fut.set_result(out)

    async def _decide(self, ch: SimChannel, queue: str, prio: int, timeout_s: int) -> QueueOutcome:
        rec = self.calls[ch.uniqueid]
        b = self.p.callers
        fut = asyncio.get_running_loop().create_future()
        self.futures[ch.uniqueid] = fut
        self.cc.join(queue, ch.caller.number, priority=prio, uniqueid=ch.uniqueid,
                     patience_s=self.rng.expovariate(1 / b.patience_s), max_wait_s=timeout_s or math.inf,
                     handle_s=self.rng.expovariate(1 / b.handle_s), emergency=rec.emergency or prio >= 10)
        outcome = QueueOutcome(kind="answered")
        kinds = {"answered": "answered", "abandoned": "abandon", "timeout": "timeout", "withdrawn": "withdraw"}

        async def wait() -> None:
            out: Outcome = await fut
            outcome.kind = kinds[out.kind]
            outcome.member = out.member
            outcome.hold_s = int(out.wait_s)
            rec.wait_s = out.wait_s
            if out.kind == "answered":
                rec.outcome = "answered"
        outcome.wait = wait
        return outcome

    # -- citizens -----------------------------------------------------------------

    def _new_call(self, number: str | None, at: float) -> None:
        b = self.p.callers
        redial = number is not None
        if number is None:
            self._numbers += 1
            number = f"139{self._numbers:08d}"
        emergency = self.rng.random() < b.emergency_share
        digits = ["1" if emergency else "2", "1" if self.rng.random() < b.accept_callback else ""]
        hang = "policy/" if self.rng.random() < b.satisfied_by_announcement else None
        ch = SimChannel(Caller(number=number, digits=digits, hangup_on=hang, message_samples=16000), flow="main")
        self.calls[ch.uniqueid] = CallRecord(number, at, redial, emergency, leaves_after_policy=hang is not None)
        task = asyncio.create_task(self._call(ch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, ch: SimChannel) -> None:
        rec = self.calls[ch.uniqueid]
        try:
            await run_call("127.0.0.1", self.engine.agi.port, ch, decide_queue=self._decide, timeout_s=24 * 3600)
        except Exception as exc:  # a broken call is a finding, not a crash of the drill
            rec.outcome = "other"
            self.log.warning("drill_call_failed", error=repr(exc))
            return
        cmds = ch.commands
        rec.wanted_person = bool(ch.queue_calls) or any(c.startswith("RECORD") for c in cmds)
        if rec.outcome == "answered":
            return
        heard_policy = any("policy/" in c for c in cmds)
        if rec.leaves_after_policy and heard_policy and ch.caller.hangup_on is None and not ch.queue_calls:
            rec.outcome = "satisfied"
        elif any("callback-confirmed" in c for c in cmds):
            rec.outcome = "callback_accepted"
        elif any(c.startswith("RECORD") for c in cmds):
            rec.outcome = "message"
        elif ch.queue_calls:
            rec.outcome = "abandoned"
        else:
            rec.outcome = "left_in_flow"
        b = self.p.callers
        if rec.outcome in ("abandoned", "message", "left_in_flow") and self.rng.random() < b.redial_probability:
            at = self.clock.now() + self.rng.expovariate(1 / b.redial_after_s)
            if at < self.duration_s:
                self._redials.append((at, rec.number))

    # -- callbacks the engine places ---------------------------------------------------

    def _serve_originates(self) -> None:
        new = self.pbx.originated[self._seen_originates:]
        self._seen_originates = len(self.pbx.originated)
        for msg in new:
            task = asyncio.create_task(self._callback(msg))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _callback(self, msg: dict[str, str]) -> None:
        seat = msg.get("Channel", "")
        cid = dict(kv.split("=", 1) for kv in msg.get("Variable", "").split(",") if "=" in kv).get("IVR_CB_ID", "")
        if not self.pbx.occupy(seat):
            self.cb_seat_busy += 1
            self.pbx.originate_result(msg, False, reason=5)
            return
        self.cb_made += 1
        try:
            await self.clock.sleep(5)                        # the seat picks up
            self.pbx.originate_result(msg, True)
            if self.rng.random() < self.p.callback_reach:
                self.cb_reached += 1
                await self.clock.sleep(self.rng.expovariate(1 / self.p.callers.handle_s))
                self.pbx.user_event("IvrCallback", seat, Id=cid, DialStatus="ANSWER")
            else:
                await self.clock.sleep(30)
                self.pbx.user_event("IvrCallback", seat, Id=cid, DialStatus="NOANSWER")
        finally:
            self.pbx.release(seat)

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> dict:
        raise_open_file_limit()
        self.log = logs.get("ivr.drill")
        with tempfile.TemporaryDirectory(prefix="ivr-drill-") as tmp:
            redis_srv = EmbeddedRedis(Path(tmp), persist=False)
            url = redis_srv.start()
            redis = connect(url)
            try:
                return await self._run(redis, url, Path(tmp))
            finally:
                await redis.aclose()
                redis_srv.stop()

    async def _run(self, redis, url: str, tmp: Path) -> dict:
        self.pbx, self.cc = self._build_pbx()
        self.ami = SimAmiServer(self.pbx)
        await self.ami.start()
        settings = load_settings({"IVR_HOME": str(self.home), "IVR_DATA_DIR": str(tmp), "IVR_REDIS_URL": url,
                                  "IVR_AGI_LISTEN": "127.0.0.1:0", "IVR_LEADER": "yes", "IVR_DRAIN_S": "2",
                                  "IVR_HTTP_LISTEN": self.http_listen,
                                  "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{self.ami.port}"})
        start = self.start_epoch if self.start_epoch is not None else default_start(settings.timezone)
        self.clock = SimClock(self.speed, start, lead_s=ENGINE_START_S)
        mode = "auto" if self.contingency == "auto" else "propose"
        self.engine = Engine(settings, redis, logs.get("ivr.engine"), clock=self.clock.engine, adjust=plan_mode(mode))
        if self.contingency.isdigit():
            # a fixed level: no automatic changes
            level = min(int(self.contingency), self.engine.config.current.plan.top)
            await ContingencyStore(redis).set_level(level, by="drill", reason="drill at a fixed level",
                                                    now=self.clock.engine.now())
        stop, ready = asyncio.Event(), asyncio.Event()
        engine_task = asyncio.create_task(self.engine.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 30)
        while self.engine.controller is None or not self.engine.controller.ready.is_set():
            await asyncio.sleep(0.05)
        if self.on_ready is not None:
            self.on_ready(self.engine)
        arrivals = arrival_times(self.p, self.rng, self.duration_s)
        self._redials: list[tuple[float, str]] = []
        store = CallbackStore(redis)
        bucket_s = self.duration_s / 60
        next_bucket, bucket_arrivals, i = bucket_s, 0, 0
        last_progress = 0.0
        while self.clock.now() < 0:              # the drill's time 0: the engine is up by then
            await asyncio.sleep(TICK_S)
        wall0 = time.monotonic()
        try:
            while True:
                now = self.clock.now()
                while i < len(arrivals) and arrivals[i] <= now:
                    self._new_call(None, arrivals[i])
                    i += 1
                    bucket_arrivals += 1
                due = [r for r in self._redials if r[0] <= now]
                for r in due:
                    self._redials.remove(r)
                    self._new_call(r[1], r[0])
                    bucket_arrivals += 1
                self.cc.run_until(now)
                self._serve_originates()
                self.ami.flush()
                if now >= next_bucket:
                    counts = await store.counts()
                    level = int(await redis.get("ivr:contingency:level") or 0)
                    self._sample(next_bucket, bucket_arrivals, counts["open"], level)
                    next_bucket += bucket_s
                    bucket_arrivals = 0
                if self.progress is not None and time.monotonic() - last_progress >= 1.0:
                    last_progress = time.monotonic()
                    self.progress(self._progress_line(now))
                if now >= self.duration_s + 1 and i >= len(arrivals):
                    break
                await asyncio.sleep(TICK_S)
            # the lines empty: callers still waiting abandon or time out, conversations end
            end_by = self.clock.now() + min(self.p.callers.patience_s * 5 + self.p.callers.handle_s * 3,
                                            0.1 * self.duration_s)
            while self.tasks and self.clock.now() < end_by:
                self.cc.run_until(self.clock.now())
                self._serve_originates()
                self.ami.flush()
                await asyncio.sleep(TICK_S)
            await asyncio.sleep(1.0)           # the capture reads the last summaries
        finally:
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self._capture = self.engine.capture          # its counts, for the report
            stop.set()
            await asyncio.wait_for(engine_task, 30)
            await self.ami.stop()
        wall = time.monotonic() - wall0
        return await self._report(redis, wall)

    def _sample(self, t: float, arrivals: int, backlog: int, level: int) -> None:
        s = self.series
        s.t.append(round(t, 1))
        s.arrivals.append(arrivals)
        s.waiting.append(sum(len(q.entries) for q in self.pbx.queues.values()))
        s.busy.append(len(self.pbx.calls) + len(self.pbx.occupied))
        s.backlog.append(backlog)
        s.level.append(level)

    def _progress_line(self, now: float) -> str:
        waiting = sum(len(q.entries) for q in self.pbx.queues.values())
        busy = len(self.pbx.calls) + len(self.pbx.occupied)
        done = [c for c in self.calls.values() if c.outcome != "in_progress" and c.wanted_person]
        lost = sum(1 for c in done if c.outcome != "answered")
        rate = lost / len(done) if done else 0.0
        h, m, s = int(now // 3600), int(now % 3600 // 60), int(now % 60)
        backlog = self.series.backlog[-1] if self.series.backlog else 0
        level = self.series.level[-1] if self.series.level else 0
        return (f"模拟时钟 {h:02d}:{m:02d}:{s:02d}  in system {len(self.tasks)}  waiting {waiting}  "
                f"seats busy {busy}/{self.p.seats + self.p.emergency_seats}  not answered {rate:.0%}  "
                f"callback backlog {backlog}  level {level}")

    async def _report(self, redis, wall_s: float) -> dict:
        calls = list(self.calls.values())
        by = {k: sum(1 for c in calls if c.outcome == k) for k in
              ("answered", "abandoned", "left_in_flow", "satisfied", "callback_accepted", "message", "other",
               "in_progress")}
        answered = [c for c in calls if c.outcome == "answered"]
        em = [c.wait_s for c in answered if c.emergency and c.wait_s is not None]
        ordinary = [c.wait_s for c in answered if not c.emergency and c.wait_s is not None]
        records = await CallbackQueries(redis).all_records(closed_since=0)
        numbers_with_record = {r.get("number") for r in records}
        unanswered_wanting = {c.number for c in calls
                              if c.wanted_person and c.outcome not in ("answered", "in_progress", "other")}
        missing = unanswered_wanting - numbers_with_record
        counts = await CallbackStore(redis).counts()
        capture = getattr(self, "_capture", None)

        def pct(values, q):
            if not values:
                return None
            return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1) if len(values) > 1 \
                else round(values[0], 1)
        offered = len(calls)
        not_answered = offered - by["answered"] - by["in_progress"]
        return {
            "profile": self.p.name, "speed": self.clock.speed, "sim_duration_s": self.duration_s,
            "wall_s": round(wall_s, 1), "contingency": self.contingency,
            "seats": self.p.seats, "emergency_seats": self.p.emergency_seats,
            "offered": offered, "first_calls": sum(1 for c in calls if not c.redial),
            "redials": sum(1 for c in calls if c.redial),
            "answered": by["answered"], "not_answered": not_answered, "in_progress": by["in_progress"],
            "abandoned_in_queue": by["abandoned"], "left_in_flow": by["left_in_flow"],
            "satisfied_by_announcement": by["satisfied"], "callback_accepted": by["callback_accepted"],
            "left_message": by["message"], "failed": by["other"],
            "answered_within_20s": sum(1 for c in answered if (c.wait_s or 0) <= 20),
            "answered_within_60s": sum(1 for c in answered if (c.wait_s or 0) <= 60),
            "emergency_calls": sum(1 for c in calls if c.emergency),
            "emergency_wait_p50_s": pct(em, 50), "emergency_wait_p95_s": pct(em, 95),
            "ordinary_wait_p50_s": pct(ordinary, 50), "ordinary_wait_p95_s": pct(ordinary, 95),
            "missed_call_records": capture.recorded if capture else 0,
            "misdials": capture.misdials if capture else 0,
            "repeat_dialers_merged": capture.merged if capture else 0,
            "callbacks_made": self.cb_made, "callbacks_reached": self.cb_reached,
            "callbacks_seat_busy": self.cb_seat_busy, "callback_backlog_end": counts["open"],
            "consistent": offered == by["answered"] + not_answered + by["in_progress"],
            "every_missed_caller_recorded": not missing, "missed_callers_without_record": len(missing),
            "series": dataclasses.asdict(self.series),
        }


async def run_drill(profile: Profile, **kw) -> dict:
    return await Drill(profile, **kw).run()


def print_report(r: dict, out=sys.stdout) -> None:
    def s(v):
        return "-" if v is None else f"{v:.0f} s"
    recorded = ("OK" if r["every_missed_caller_recorded"]
                else f"FAILED ({r['missed_callers_without_record']} without)")
    lines = [
        f"演练报告 drill report: {r['profile']} ({r['sim_duration_s'] / 60:.0f} simulated minutes in {r['wall_s']:.0f} s, "
        f"speed {r['speed']:g}, contingency {r['contingency']})",
        f"  来电 offered {r['offered']} (first calls {r['first_calls']}, redials {r['redials']}); "
        f"seats {r['seats']} + {r['emergency_seats']} emergency",
        f"  接通 answered {r['answered']} ({r['answered'] / max(r['offered'], 1):.0%}); within 20 s "
        f"{r['answered_within_20s']}, within 60 s {r['answered_within_60s']}",
        f"  未接通 not answered {r['not_answered']}: abandoned in queue {r['abandoned_in_queue']}, left in the flow "
        f"{r['left_in_flow']}, satisfied by the announcement {r['satisfied_by_announcement']}, callback accepted "
        f"{r['callback_accepted']}, left a message {r['left_message']}, failed {r['failed']}; in progress {r['in_progress']}",
        f"  紧急 emergency {r['emergency_calls']} calls: wait p50 {s(r['emergency_wait_p50_s'])}, "
        f"p95 {s(r['emergency_wait_p95_s'])}; ordinary wait p50 {s(r['ordinary_wait_p50_s'])}, "
        f"p95 {s(r['ordinary_wait_p95_s'])}",
        f"  回拨 callbacks: missed-call records {r['missed_call_records']} (+{r['misdials']} misdials), repeat dialers merged "
        f"{r['repeat_dialers_merged']}, callbacks made {r['callbacks_made']}, reached {r['callbacks_reached']}, "
        f"backlog at the end {r['callback_backlog_end']}",
        f"  checks: offered = answered + not answered + in progress: {'OK' if r['consistent'] else 'FAILED'}; "
        f"every unanswered caller who wanted a person has a missed-call record: {recorded}",
    ]
    print("\n".join(lines), file=out)
