"""`ivr drill`: the whole engine (FastAGI server, AMI controller, contingency
supervisor, missed-call capture, callback scheduler, embedded Redis) against the
simulated Asterisk, with citizens arriving from a profile.

Everything runs on one simulated clock, ``speed`` times the wall clock: the
PBX side (arrivals, patience, conversations, wrap-up, Queue() timeouts) and the
engine, which is given the same time line as its clock (``ivr/clock.py``). So
the engine's calling hours, deadlines, spacing, threshold hold times and the
live figures are in the same simulated seconds as the report. The drill's day
starts at 09:00 in the hotline's time zone, whatever the hour it is run.

Lines: when the profile (or ``--lines``) gives the PBX a number of trunk lines,
every call holds one from arrival to hang-up, and so does every callback's
citizen leg; an arrival that finds them all busy hears busy, is counted, and
is seen by nobody else (no AGI, no queue, no missed call), as with a real
carrier. The citizen redials as the profile says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import heapq
import itertools
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import logs
from ivr.callback.reconcile import CLEANUP_EVERY_S, GRACE_S
from ivr.callback.store import CallbackQueries, CallbackStore
from ivr.child_process import die_with_parent
from ivr.clock import ScaledClock
from ivr.contingency.store import ContingencyStore
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries, text_or_none
from ivr.redisdb.server import EmbeddedRedis, connect
from ivr.rehearsal.sim import scores
from ivr.rehearsal.sim.agi_peer import Caller, Pace, QueueOutcome, SimChannel, prompt_lengths
from ivr.rehearsal.sim.ami_server import SimAmiServer
from ivr.rehearsal.sim.baselines import accuracy
from ivr.rehearsal.sim.callcenter import CallCenter, Outcome
from ivr.rehearsal.sim.dialplan import read_context, run_dialplan
from ivr.rehearsal.sim.pbx import SimEntry, SimPbx
from ivr.rehearsal.sim.profiles import Profile
from ivr.runtime.engine import Engine, raise_open_file_limit
from ivr.settings import load_settings

TICK_S = 0.02           # wall seconds between advances of the simulated PBX
ENGINE_START_S = 3.0    # wall seconds from the drill's start to its time 0 (the engine starts meanwhile)
HOLD_OFFER_EVERY_S = 60.0  # the busy level's hold music repeats its callback offer about this often
PROCESSES_START_S = 15.0   # the same with engine processes (each imports the whole engine)
ON_BREAK = ("Local/101@ivr-seats/n", "Local/102@ivr-seats/n")   # queue/seats.yaml front-line, paused
LINE_GROUP = ("ivr", "trunk")      # the shipped dialplan's GROUP(ivr)=trunk: what Dial's b() sets on a callback leg
QUEUE_OUTCOMES = {"answered": "answered", "abandoned": "abandoned", "timeout": "timeout", "withdrawn": "callback"}


REPORT_READ_TIMEOUT_S = 120.0   # one reply to the report's reads may take this long


class SimClock:
    """The drill's time line: simulated seconds since the drill's start for the
    simulated PBX and the report, and the same instant as epoch seconds
    (``engine``, a ``ScaledClock``) for the engine, so the engine's calling
    hours, deadlines, spacing and windows run in the drill's seconds."""

    def __init__(self, speed: float, start_epoch: float, lead_s: float = 0.0,
                 later: tuple[tuple[float, float], ...] = ()) -> None:
        self.engine = ScaledClock(start_epoch, speed, time.monotonic() + lead_s, later)

    @property
    def speed(self) -> float:
        return self.engine.speed

    def now(self) -> float:
        return self.engine.elapsed()

    async def sleep(self, sim_s: float) -> None:
        await self.engine.sleep(sim_s)


def default_start(tz) -> float:
    """09:00 today where the hotline is: a drill starts in the working day, at
    whatever hour it is run, so callbacks fall within calling hours."""
    today = dt.datetime.now(tz).date()
    return dt.datetime.combine(today, dt.time(9, 0), tzinfo=tz).timestamp()


@dataclass
class CallRecord:
    number: str
    at: float
    redial: bool
    emergency: bool
    outcome: str = "in_progress"   # answered | abandoned | balked | left_in_flow | satisfied | callback_accepted
    #                                message | refused_recorded (above IVR_LINES: recorded, then busy) | other
    patience_s: float = math.inf   # how long this citizen would wait for a seat
    # after a conversation: the key pressed for the rating, "" none (hung up); None: not offered (an
    # emergency call is never surveyed, flows/main.yaml; the engine records no survey for it either)
    survey: str | None = None
    balked_at_queue: bool = False  # a balker who hung up as Queue() started (the engine records an abandon)
    wait_s: float | None = None
    wanted_person: bool = False
    leaves_after_policy: bool = False   # hangs up satisfied if the policy announcement plays
    engine: str = ""                    # the engine running its flow now (chaos: whom a kill hits)


PBX_RESTART_S = 60.0    # a killed PBX starts again (empty) after this long (simulated seconds)
BUSY_HEARD_S = 3.0      # a citizen refused by the dialplan hears busy this long, then hangs up
# the survey after a conversation (an assumption; Beijing publishes its 满意率, not its split by wait):
# a quarter hang up without rating; the others' satisfied / basically / dissatisfied by how long they waited
SURVEY_HANG_UP = 0.25
SURVEY_RATINGS = ((15.0, (0.85, 0.12, 0.03)), (60.0, (0.70, 0.22, 0.08)), (180.0, (0.50, 0.30, 0.20)),
                  (math.inf, (0.30, 0.35, 0.35)))
# a follow-up call (智能回访): the share of citizens reached who say their matter was heard (key 1; the others 2)
FOLLOWUP_HEARD_YES = 0.8
DRILL_MANAGER = "drill:值班长 seat manager"      # who chooses the profile's follow-up batch, in the audit log


class _DialplanPbx:
    """What a site's PBX does for ``[ivr-12345]`` beyond the channel."""

    def __init__(self, drill: Drill, site: Site) -> None:
        self.drill = drill
        self.site = site

    def group_count(self, group: str, category: str = "") -> int:
        return self.site.pbx.trunk.group_count(group, category)

    def epoch(self) -> int:
        return int(self.drill.clock.engine.now())

    def db_put(self, key: str, value: str) -> None:
        self.site.pbx.astdb[key] = value

    def user_event(self, sim: SimChannel, name: str, fields: list[tuple[str, str]]) -> None:
        self.site.pbx.dialplan_event(sim.channel, sim.uniqueid, sim.caller.number, name, fields)

    async def busy(self, sim: SimChannel) -> None:
        await self.drill._refused(sim)


@dataclass(eq=False)
class Site:
    """One simulated PBX of the drill: its queues and seats, its trunk lines,
    its AMI server and what its dialplan does beyond the channel."""

    name: str
    pbx: SimPbx
    cc: CallCenter
    ami: SimAmiServer | None = None
    dialplan: _DialplanPbx | None = None
    seen_originates: int = 0          # of ``pbx.originated``, served so far
    k: int = 0                        # its place among the drill's PBXs (which seats, which share of the lines)
    calls: dict[str, asyncio.Task[None]] = field(default_factory=dict)   # citizens' calls on it, by uniqueid
    placed: set[asyncio.Task[None]] = field(default_factory=set)         # callbacks and follow-ups it places
    down: bool = False                # killed (chaos): no call reaches it until it has started again


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)      # most trunk lines in use within the interval
    blocked: list[int] = field(default_factory=list)    # attempts that heard busy within the interval


def arrival_times(profile: Profile, rng: random.Random, duration_s: float) -> list[float]:
    """A Poisson process with the profile's rate over time (thinning)."""
    peak, t = profile.peak_per_s, 0.0
    out: list[float] = []
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
                 http_listen: str = "127.0.0.1:0", on_ready=None, start_epoch: float | None = None,
                 processes: int = 0, chaos: bool = False, progress_every_s: float = 1.0,
                 log_dir: Path | None = None, lines: int | None = None, admission: bool = True,
                 pbxs: int = 1) -> None:
        self.p = profile
        # trunk lines: --lines overrides the profile (0: unlimited); None when unlimited
        self.lines = (lines or None) if lines is not None else profile.lines
        self.admission = admission          # False: the behaviour before admission (a comparison run)
        # IVR_LINES in [globals]: above it the dialplan records the caller, then busy (the site's setting,
        # docs/lines.md: the trunk's lines less a headroom); the behaviour before lines had no such limit
        self.line_limit = (profile.dialplan_line_limit(self.lines) if admission else self.lines) \
            if self.lines else None
        self.blocked_recorded = 0           # refused above IVR_LINES: recorded by the dialplan, then busy
        self.pbx_count = max(1, pbxs)       # simulated PBXs, the profile's seats and lines split over them
        self.sites: list[Site] = []         # the simulated PBXs (``_build_sites``)
        self._dispatch_rr = 0
        self._site_of: dict[str, Site] = {}  # a citizen's call (uniqueid) -> the PBX it came in on
        self.home = home
        self.speed = speed or profile.speed
        self.start_epoch = start_epoch
        self.contingency = contingency        # "auto" | "plan" | "0".."N" (fixed)
        self.rng = random.Random(seed)
        self.duration_s = duration_s or profile.duration_s
        self.later_speeds = profile.later_speeds(self.speed, self.duration_s)   # the quiet hours, faster
        self.progress = progress
        self.http_listen = http_listen      # the console, while the drill runs
        self.on_ready = on_ready            # awaited with the engine once it answers calls
        self.calls: dict[str, CallRecord] = {}
        self.futures: dict[str, asyncio.Future] = {}
        self.tasks: set[asyncio.Task] = set()
        self.series = Series()
        self.registered_early = 0           # took the early offer (flows' admit step) and freed the line
        self._ended_wanted = self._ended_lost = 0  # the progress line's running counts (``_count_ended``)
        self._loop_late: list[float] = []   # per round of the drill's loop: how late, simulated seconds
        self.cb_made = self.cb_reached = self.cb_seat_busy = 0
        self.cb_surveys: Counter[str] = Counter()   # the rating key pressed after a callback ('none': hung up)
        self.followups_answered: Counter[str] = Counter()   # the rating key pressed on a follow-up call
        self.followups_heard: Counter[str] = Counter()      # the key pressed for "was the matter heard"
        self.followup_batch: dict[str, Any] | None = None   # the profile's batch, as the service chose it
        self.followup_refused = ""                          # why it was not chosen (an empty sample)
        self._numbers = 0
        self._rr = 0
        self.engine_urls: list[str] = []
        self.dialplan_queued = 0
        self.cb_doubled = 0
        self._cb_active: set[str] = set()
        self.faults: list[dict] = []
        self._faults_running = 0
        self._one_fault = asyncio.Lock()
        self._settle_by = 0.0               # monotonic: the engines' sweeps have settled the faults' calls
        self.chaos = chaos
        # engines in processes of their own (0: one engine in this process); chaos needs two or more
        self.processes = max(processes, 2) if chaos else processes
        self.progress_every_s = progress_every_s
        self.log_dir = log_dir              # engine processes' logs (kept after the drill)
        self.attempts = self.blocked = self.blocked_emergency = self.redials_after_busy = 0
        self.cb_line_busy = 0
        self.dialled: set[str] = set()      # every number that dialled, also those who only heard busy
        self.first_call_at: list[float] = []
        self.queued: list[dict[str, Any]] = []          # one record per queue join (the report's queued_calls)
        self._open_queued: dict[str, dict[str, Any]] = {}   # uniqueid -> its record while it waits
        self._bucket_blocked = 0
        self._legs = itertools.count(1)
        self._redials: list[tuple[float, str]] = []     # a heap: (when, number)
        # what the caller hears takes its recording's length on the drill's clock (a line is held all along)
        self._pace: Pace | None = None

    # -- the PBX ------------------------------------------------------------------

    @property
    def pbx(self) -> SimPbx:
        """The first (with one site, the only) simulated PBX."""
        return self.sites[0].pbx

    @property
    def cc(self) -> CallCenter:
        return self.sites[0].cc

    @property
    def ami(self) -> SimAmiServer:
        ami = self.sites[0].ami
        assert ami is not None          # started with the backend
        return ami

    def _build_sites(self) -> list[Site]:
        """The simulated PBXs: one with the profile's seats and lines; with
        ``--pbxs N``, N of them, each with every Nth seat and its share of
        the lines, named as ``queue/pbxs.yaml`` names them (the first is the
        engine's own link, ``main``) and each with its systemname, the prefix
        of its uniqueids."""
        n = self.pbx_count
        self.sites = []
        for k in range(n):
            name = "main" if k == 0 else f"pbx-{k + 1}"
            pbx, cc = self._build_pbx(k, n)
            pbx.system_name = name if n > 1 else ""
            site = Site(name, pbx, cc, k=k)
            site.dialplan = _DialplanPbx(self, site)
            self.sites.append(site)
        return self.sites

    def site_lines(self, k: int) -> tuple[int, int, int, int] | None:
        """PBX ``k``'s (lines, IVR_LINES, emergency reserve, early-offer threshold): its share of the
        profile's (None: unlimited lines)."""
        total = self.lines
        if not total:
            return None
        n = self.pbx_count
        lines = total // n + (1 if k < total % n else 0)
        limit = self.line_limit or total
        reserve, below = self.p.line_rules(total)

        def share(v: int) -> int:
            return max(1, round(v * lines / total)) if v else 0
        return lines, min(lines, share(limit)), min(share(reserve), lines - 1), min(share(below), lines)

    def _dispatch(self) -> Site:
        """Where the carrier sends a call: the PBX with the most free lines (in turn when equal), as a
        city's dispatcher spreads the hotline's number over its PBXs."""
        if len(self.sites) == 1:
            return self.sites[0]
        self._dispatch_rr = (self._dispatch_rr + 1) % len(self.sites)
        order = [site for site in self.sites[self._dispatch_rr:] + self.sites[:self._dispatch_rr] if not site.down]
        return max(order or self.sites, key=lambda site: (site.pbx.trunk.total or 0) - site.pbx.trunk.in_use)

    def _site(self, uniqueid: str) -> Site:
        return self._site_of.get(uniqueid) or self.sites[0]

    def _build_pbx(self, k: int = 0, n: int = 1) -> tuple[SimPbx, CallCenter]:
        """PBX ``k`` of ``n``: every ``n``th seat from the ``k``th, its share of the lines."""
        cc: CallCenter | None = None

        def now() -> float:
            assert cc is not None       # set before the PBX first reads its clock
            return cc.now

        pbx = SimPbx(now)
        mine = self.site_lines(k)
        pbx.trunk.total = mine[0] if mine else None
        pbx.globals, _ = read_context(self.home / "asterisk" / "extensions.conf", "ivr-12345", "12345")
        pbx.globals["IVR_LINES"] = str(mine[1] if mine and self.line_limit else 0)    # the site's [globals]
        cc = CallCenter(pbx, on_end=self._queue_ended, on_connect=self._connected)
        b = self.p.callers
        pbx.add_queue("general-q", wrapup_s=b.wrapup_s)
        pbx.add_queue("emergency-q", strategy="ringall", weight=10, wrapup_s=b.wrapup_s)
        for i in range(k, self.p.seats, n):  # general seats serve the emergency line after the reserved ones
            iface = f"Local/{10001 + i}@ivr-seats/n"
            pbx.add_member("general-q", iface, f"Seat{10001 + i}", f"Custom:seat{10001 + i}")
            pbx.add_member("emergency-q", iface, f"Seat{10001 + i}", f"Custom:seat{10001 + i}", penalty=5)
        for iface in ON_BREAK if k == 0 else ():     # on a break: level 1 calls them back
            no = iface.split("/")[1].split("@")[0]
            pbx.add_member("general-q", iface, f"Seat{no}", f"Custom:seat{no}")
            pbx.action({"Action": "QueuePause", "Interface": iface, "Paused": "true", "Reason": "break"})
        for i in range(k, self.p.emergency_seats, n):
            seat = 109 if i == 0 else 9001 + i
            iface = f"Local/{seat}@ivr-seats/n"
            pbx.add_member("emergency-q", iface, f"Seat{seat}", f"Custom:seat{seat}")
            if seat == 109:    # as in asterisk/queues.conf: the last resort of the general line
                pbx.add_member("general-q", iface, f"Seat{seat}", f"Custom:seat{seat}", penalty=10)
        pbx.drain()
        return pbx, cc

    def _connected(self, e: SimEntry, b) -> None:
        self._close_queued(e.uniqueid, "answered", self._site(e.uniqueid).cc.now - e.joined)

    def _close_queued(self, uniqueid: str, outcome: str, wait_s: float) -> None:
        record = self._open_queued.pop(uniqueid, None)
        if record is not None:
            record["outcome"], record["wait_s"] = outcome, round(wait_s, 1)

    def _queue_ended(self, uniqueid: str, out: Outcome) -> None:
        if out.kind != "answered":
            self._close_queued(uniqueid, QUEUE_OUTCOMES.get(out.kind, out.kind), out.wait_s)
        fut = self.futures.pop(uniqueid, None)
        if fut is not None and not fut.done():
            fut.set_result(out)

    async def _decide(self, ch: SimChannel, queue: str, prio: int, timeout_s: int) -> QueueOutcome:
        rec = self.calls[ch.uniqueid]
        b = self.p.callers
        fut = asyncio.get_running_loop().create_future()
        self.futures[ch.uniqueid] = fut
        patience = rec.patience_s if math.isfinite(rec.patience_s) else self.rng.expovariate(1 / b.patience_s)
        record: dict[str, Any] = {}                     # filled below; closed at once if a seat is free
        self._open_queued[ch.uniqueid] = record
        e = self._site(ch.uniqueid).cc.join(queue, ch.caller.number, priority=prio, uniqueid=ch.uniqueid,
                         patience_s=patience, max_wait_s=timeout_s or math.inf,
                         handle_s=self.rng.expovariate(1 / b.handle_s), emergency=rec.emergency or prio >= 10,
                         chan_vars=ch.vars)
        self._record_join(e, queue, record)
        accepts = len(ch.caller.digits) > 1 and ch.caller.digits[1] == "1"
        busy = bool(self.series.level) and self.series.level[-1] >= 1
        if accepts and busy and not (rec.emergency or prio >= 10):
            # the hold music of a busy level offers "press 1 to keep your place and be called back"
            self._spawn(self._press_while_waiting(ch.uniqueid, min(patience * 0.5, HOLD_OFFER_EVERY_S)))
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
                if not (rec.emergency or prio >= 10):
                    rec.survey = self._survey_answer(ch, out.wait_s)
        outcome.wait = wait
        return outcome

    def _record_join(self, e: SimEntry, queue: str, record: dict[str, Any]) -> None:
        """The per-call record of one queue join: what was known then, and
        (filled when the caller leaves the queue) the wait they had."""
        est = e.estimates
        answered = record.get("outcome") == "answered"        # a free seat took the caller at once
        ql = est.get("queue_length")
        fields = {"at_s": round(e.joined, 1), "queue": queue, "priority": e.priority,
                  "position": e.original_position, "engine_position": e.engine_position,
                  "est_engine": e.wait_est_s, "est_asterisk_holdtime": est.get("asterisk_holdtime"),
                  "est_head_of_line": est.get("head_of_line"),
                  "est_queue_length": None if ql is None else round(ql, 1),
                  "wait_s": record.get("wait_s") if answered else None,
                  "outcome": "answered" if answered else "in_progress"}
        record.clear()                 # the same dict (still open if the caller waits), keys in this order
        record.update(fields)
        self.queued.append(record)

    async def _press_while_waiting(self, uniqueid: str, after_s: float) -> None:
        await self.clock.sleep(after_s)
        pbx = self._site(uniqueid).pbx
        if pbx.find(uniqueid) is not None:     # still waiting: the key reaches AMI as DTMFEnd
            pbx.dtmf(uniqueid, "1")

    async def _dialplan_queue(self, ch: SimChannel, queue: str, prio: int) -> None:
        """``Queue(general-q,,,,600)`` of the dialplan itself (no engine finished the call)."""
        rec = self.calls[ch.uniqueid]
        self.dialplan_queued += 1
        if rec.outcome == "answered":        # served before its engine died: the citizen hangs up
            ch.dead = True
            return
        outcome = await self._decide(ch, queue, prio, 600)
        ch.queue_calls.append((queue, prio, 600))
        assert outcome.wait is not None     # _decide() holds every call it queues
        await outcome.wait()
        if outcome.kind == "abandon":
            ch.dead = True

    # -- citizens -----------------------------------------------------------------

    def _new_call(self, number: str | None, at: float) -> None:
        b = self.p.callers
        redial = number is not None
        if number is None:
            self._numbers += 1
            number = f"139{self._numbers:08d}"
            self.first_call_at.append(at)
        emergency = self.rng.random() < b.emergency_share
        accepts = self.rng.random() < b.accept_callback
        digits = ["1" if emergency else "2", "1" if accepts else ""]
        # the early offer (flows/main.yaml admission): an emergency presses 1, whoever takes callbacks 2
        answers = {"admission-offer": "1" if emergency else ("2" if accepts else "")}
        hang = "policy/" if self.rng.random() < b.satisfied_by_announcement else None
        patience = self.rng.expovariate(1 / b.patience_s)
        if self._pace is None:
            self._pace = Pace(self.clock.sleep, prompt_lengths(self.home / "prompts"))
        site = self._dispatch()
        ch = SimChannel(Caller(number=number, digits=digits, answers=answers, hangup_on=hang, message_samples=16000,
                               patience_s=None if emergency else patience),
                        flow="main", pace=self._pace)
        _on_pbx(ch, site.pbx)
        self.attempts += 1
        self.dialled.add(number)
        if not site.pbx.trunk.seize(ch.channel):        # every line busy: the carrier answers busy
            self._busy(number, at, emergency)
            return
        self._site_of[ch.uniqueid] = site
        self.calls[ch.uniqueid] = CallRecord(number, at, redial, emergency, leaves_after_policy=hang is not None,
                                             patience_s=patience)
        task = asyncio.create_task(self._call(ch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        uid = ch.uniqueid
        site.calls[uid] = task

        def gone(_task: asyncio.Task[None]) -> None:
            site.calls.pop(uid, None)
        task.add_done_callback(gone)
        rec = self.calls[ch.uniqueid]
        task.add_done_callback(lambda _task: self._count_ended(rec))

    def _count_ended(self, rec: CallRecord) -> None:
        """The progress line's running count of the calls that wanted a person
        and ended (a scan of every call each line took 0.5 s of the drill's
        loop by the end of the Beijing day's 1.2 million calls)."""
        if rec.wanted_person and rec.outcome != "in_progress":
            self._ended_wanted += 1
            self._ended_lost += rec.outcome != "answered"

    def _busy(self, number: str, at: float, emergency: bool) -> None:
        """A busy tone: nobody but the carrier knows; the citizen may dial again."""
        self.blocked += 1
        self._bucket_blocked += 1
        self.blocked_emergency += emergency
        b = self.p.callers
        if self.rng.random() < b.redial_probability:
            when = at + self.rng.expovariate(1 / b.redial_after_s)
            if when < self.duration_s:
                self.redials_after_busy += 1
                heapq.heappush(self._redials, (when, number))

    def _survey_answer(self, ch: SimChannel, wait_s: float) -> str:
        """How the citizen answers the survey after the conversation (flows/main.yaml):
        a share hang up at once; the others rate, less kindly the longer they
        waited (SURVEY_RATINGS, an assumption: no published split)."""
        if self.rng.random() < SURVEY_HANG_UP:
            # the survey's own prompt, not its thanks; whatever else would have made them hang up (a policy
            # announcement they never heard) is past: before, such a citizen was counted "no answer" here
            # and pressed the menu's next digit to the survey, a rating the engine recorded
            ch.caller.hangup_on = "/survey "
            return ""
        shares = next(s for limit, s in SURVEY_RATINGS if wait_s <= limit)
        digit = self.rng.choices(("1", "2", "3"), weights=shares)[0]
        ch.caller.answers["/survey"] = digit
        return digit

    async def _refused(self, ch: SimChannel) -> None:
        """Above IVR_LINES: recorded in AstDB and announced (IvrBlocked), then
        busy; the citizen hangs up after a few rings of it and may dial again."""
        self.blocked_recorded += 1
        await self.clock.sleep(BUSY_HEARD_S)
        ch.dead = True

    def _set_group(self, ch: SimChannel, category: str, group: str) -> None:
        self._site(ch.uniqueid).pbx.trunk.set_group(ch.channel, category, group)

    async def _call(self, ch: SimChannel) -> None:
        """The citizen's call as Asterisk runs it: the shipped [ivr-12345]
        context, which tries the engines in turn and queues the caller itself
        when no engine finished the call (ivr/rehearsal/sim/dialplan.py)."""
        rec = self.calls[ch.uniqueid]
        site = self._site(ch.uniqueid)
        urls = self.engine_urls
        first = self._rr % len(urls)              # calls spread over the engines (one trunk each)
        self._rr += 1
        order = urls[first:] + urls[:first]
        rec.engine = order[0]
        refused = cut = False
        try:
            run = await run_dialplan(self.home / "asterisk" / "extensions.conf", ch, queue_join=self._dialplan_queue,
                               decide_queue=self._decide, engines="&".join(order), connect_timeout_s=5,
                               set_group=self._set_group, pbx=site.dialplan,
                               site_globals={"IVR_LINES": site.pbx.globals["IVR_LINES"]})
            refused = run.refused
        except asyncio.CancelledError:
            if not site.down:
                raise
            cut = True                  # the PBX died under the call: the citizen hears the line drop
        except Exception as exc:  # a broken call is a finding, not a crash of the drill
            rec.outcome = "other"
            self.log.warning("drill_call_failed", error=repr(exc))
            return
        finally:
            rec.engine = ""
            site.pbx.trunk.release(ch.channel)           # the citizen hangs up: the line is free
            self._site_of.pop(ch.uniqueid, None)
        cmds = ch.commands
        # as the engine counts it (flow/interpreter.py): queued, told the wait, offered an early callback
        # (taken or not), registered because lines ran low, or left a message
        rec.wanted_person = (bool(ch.queue_calls) or ch.balked or refused
                             or any(c.startswith("RECORD") or "admission-offer" in c or "callback-confirmed" in c
                                    or "lines-busy-registered" in c for c in cmds))
        if rec.outcome == "answered":
            return
        if cut:
            rec.outcome = "cut"
            return
        if refused:                          # recorded by the dialplan, then busy: a callback is due
            rec.outcome = "refused_recorded"
            if self.rng.random() < self.p.callers.redial_probability:
                at = self.clock.now() + self.rng.expovariate(1 / self.p.callers.redial_after_s)
                if at < self.duration_s:
                    heapq.heappush(self._redials, (at, rec.number))
            return
        self._not_answered(ch, rec)

    def _not_answered(self, ch: SimChannel, rec: CallRecord) -> None:
        """How a call that reached no seat ended, as the citizen lived it; some dial again."""
        cmds = ch.commands
        heard_policy = any("policy/" in c for c in cmds)
        if rec.leaves_after_policy and heard_policy and ch.caller.hangup_on is None and not ch.queue_calls:
            rec.outcome = "satisfied"
        elif any("callback-confirmed" in c or "lines-busy-registered" in c for c in cmds):
            rec.outcome = "callback_accepted"
            self.registered_early += any("admission-offer" in c for c in cmds) and not ch.queue_calls
        elif any(c.startswith("RECORD") for c in cmds):
            rec.outcome = "message"
        elif ch.balked:
            rec.outcome = "balked"            # told a wait beyond their patience: hung up rather than wait
            rec.balked_at_queue = ch.balked_at_queue
        elif ch.queue_calls:
            rec.outcome = "abandoned"
        else:
            rec.outcome = "left_in_flow"
        b = self.p.callers
        if (rec.outcome in ("abandoned", "balked", "message", "left_in_flow")
                and self.rng.random() < b.redial_probability):
            at = self.clock.now() + self.rng.expovariate(1 / b.redial_after_s)
            if at < self.duration_s:
                heapq.heappush(self._redials, (at, rec.number))

    # -- callbacks the engine places ---------------------------------------------------

    def _serve_originates(self) -> None:
        for site in self.sites:
            new = site.pbx.originated[site.seen_originates:]
            site.seen_originates = len(site.pbx.originated)
            for msg in new:
                placed = (self._followup(msg, site) if msg.get("Context") == "ivr-followup"
                          else self._callback(msg, site))
                task = asyncio.create_task(placed)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                site.placed.add(task)
                task.add_done_callback(site.placed.discard)

    async def _callback(self, msg: dict[str, str], site: Site) -> None:
        number = msg.get("Exten", "")
        if number in self._cb_active:          # dialled while a callback to them is under way
            self.cb_doubled += 1
        self._cb_active.add(number)
        try:
            await self._callback_call(msg, site)
        finally:
            self._cb_active.discard(number)

    async def _callback_call(self, msg: dict[str, str], site: Site) -> None:
        """A callback originated on ``site``'s PBX: its seat, then the citizen over its trunk."""
        pbx = site.pbx
        seat = msg.get("Channel", "")
        cb_vars = dict(kv.split("=", 1) for kv in msg.get("Variable", "").split(",") if "=" in kv)
        cid = cb_vars.get("IVR_CB_ID", "")
        if not pbx.occupy(seat):
            self.cb_seat_busy += 1
            pbx.originate_result(msg, False, reason=5)
            return
        self.cb_made += 1
        try:
            await self.clock.sleep(5)                        # the seat picks up
            pbx.originate_result(msg, True)
            await self._citizen_leg(site, msg.get("Exten", ""), seat, cid, cb_vars)
        finally:
            pbx.release(seat)

    async def _citizen_leg(self, site: Site, number: str, seat: str, cid: str,
                           cb_vars: dict[str, str] | None = None) -> None:
        """``Dial(${IVR_TRUNK}/<citizen>,...,b(ivr-trunk-line^s^1)F(ivr-callback-survey^s^1))``:
        the citizen's leg takes a trunk line (and joins GROUP(ivr)=trunk) for as
        long as it lives; with every line busy the carrier refuses it. When the
        seat hangs up a conversation, the leg is not hung up: F() sends it to
        ``[ivr-callback-survey]`` at once (fact 14), still on its line."""
        pbx = site.pbx
        leg = f"Local/{number}@ivr-trunk-{next(self._legs):08x};1"
        if not pbx.trunk.seize(leg):
            self.cb_line_busy += 1
            pbx.user_event("IvrCallback", seat, Id=cid, DialStatus="CONGESTION")
            return
        pbx.trunk.set_group(leg, *LINE_GROUP)
        try:
            if self.rng.random() < self.p.callback_reach:
                self.cb_reached += 1
                await self.clock.sleep(self.rng.expovariate(1 / self.p.callers.handle_s))
                pbx.user_event("IvrCallback", seat, Id=cid, DialStatus="ANSWER")
                await self._callback_survey(site, leg, number, cb_vars or {})
            else:
                await self.clock.sleep(30)
                pbx.user_event("IvrCallback", seat, Id=cid, DialStatus="NOANSWER")
        finally:
            pbx.trunk.release(leg)

    async def _followup(self, msg: dict[str, str], site: Site) -> None:
        """A follow-up call (智能回访): ``Local/<n>@ivr-followup-out/n`` dials the
        citizen on a trunk line, no seat; answered, the other half runs the
        shipped ``[ivr-followup]``. As Asterisk 22 reports it: Success when the
        citizen answers; rung out, the dialplan's ``IvrFollowup`` NOANSWER and
        ``OriginateResponse`` Failure with Reason 0 (fixtures ami/session-followup.json)."""
        fu = dict(kv.split("=", 1) for kv in msg.get("Variable", "").split(",") if "=" in kv)
        number, fid = fu.get("IVR_FU_NUMBER", ""), fu.get("IVR_FU_ID", "")
        pbx = site.pbx
        leg = f"Local/{number}@ivr-followup-out-{next(self._legs):08x}"
        if not pbx.trunk.seize(leg + ";2"):
            pbx.user_event("IvrFollowup", leg + ";2", Id=fid, DialStatus="CONGESTION")
            pbx.originate_result(msg, False, reason=0)
            return
        pbx.trunk.set_group(leg + ";2", *LINE_GROUP)
        try:
            if self.rng.random() >= self.p.callback_reach:
                await self.clock.sleep(30)               # rings out, as a callback's citizen leg does here
                pbx.user_event("IvrFollowup", leg + ";2", Id=fid, DialStatus="NOANSWER")
                pbx.originate_result(msg, False, reason=0)
                return
            pbx.originate_result(msg, True)
            if self._pace is None:
                self._pace = Pace(self.clock.sleep, prompt_lengths(self.home / "prompts"))
            heard = "1" if self.rng.random() < FOLLOWUP_HEARD_YES else "2"
            ch = SimChannel(Caller(number="12345", name="12345回访", digits=[heard]), flow="followup",
                            pace=self._pace)
            _on_pbx(ch, pbx)
            ch.channel, ch.answered = leg + ";1", True
            ch.vars.update(fu)
            rating = self._survey_answer(ch, 0.0) or "none"
            try:
                await run_dialplan(self.home / "asterisk" / "extensions.conf", ch, queue_join=self._dialplan_queue,
                                   context="ivr-followup", exten="s", engines="&".join(self.engine_urls),
                                   connect_timeout_s=5)
            except Exception as exc:  # a broken follow-up is a finding, not a crash of the drill
                self.log.warning("drill_followup_failed", error=repr(exc))
            # counted once the call is over, as the engine counts it: one still going at the end is in neither
            self.followups_heard[heard] += 1
            self.followups_answered[rating] += 1
            pbx.user_event("IvrFollowup", leg + ";2", Id=fid, DialStatus="ANSWER")
        finally:
            pbx.trunk.release(leg + ";2")

    async def _callback_survey(self, site: Site, leg: str, number: str, cb_vars: dict[str, str]) -> None:
        """The shipped ``[ivr-callback-survey]`` on the citizen's leg, with the
        variables ``[ivr-callback]`` made inheritable (``__IVR_CB_*``); the
        citizen rates as a live caller does who waited little, or hangs up."""
        if self._pace is None:
            self._pace = Pace(self.clock.sleep, prompt_lengths(self.home / "prompts"))
        ch = SimChannel(Caller(number=number, name="12345回拨"), flow="callback_survey", pace=self._pace)
        _on_pbx(ch, site.pbx)
        ch.channel = leg
        ch.answered = True
        ch.vars.update({"IVR_CB_ID": cb_vars.get("IVR_CB_ID", ""), "IVR_CB_SEAT": cb_vars.get("IVR_CB_SEAT", ""),
                        "IVR_CB_KIND": cb_vars.get("IVR_CB_KIND", ""), "IVR_CB_NUMBER": number})
        self.cb_surveys[self._survey_answer(ch, 0.0) or "none"] += 1
        try:
            await run_dialplan(self.home / "asterisk" / "extensions.conf", ch, queue_join=self._dialplan_queue,
                               context="ivr-callback-survey", exten="s", engines="&".join(self.engine_urls),
                               connect_timeout_s=5)
        except Exception as exc:  # a broken survey is a finding, not a crash of the drill
            self.log.warning("drill_callback_survey_failed", error=repr(exc))

    async def _choose_followups(self, plan) -> None:
        """The profile's follow-up batch, chosen as a seat manager does (`ivr
        followup sample`): through the service, by a named drill user, audited,
        of the day on the drill's clock (its reached callbacks so far)."""
        from ivr.errors import InvalidInput
        from ivr.services import followups as followup_service

        tz = load_settings({"IVR_HOME": str(self.home)}).timezone
        try:
            self.followup_batch = await followup_service.choose(
                self.redis, tz, share=plan.share, of=plan.of, day=None, by=DRILL_MANAGER,
                now=self.clock.engine.now())
            self.followup_batch["at_s"] = round(self.clock.now(), 1)
        except InvalidInput as exc:             # nobody to follow up yet: a finding of the report
            self.followup_refused = str(exc)
        except Exception as exc:  # noqa: BLE001 - Redis failing over in a chaos drill: reported, not raised
            self.followup_refused = repr(exc)
            self.log.warning("drill_followup_batch_failed", error=repr(exc))
        self.log.info("drill_followup_batch", batch=self.followup_batch, refused=self.followup_refused)

    async def _followup_report(self, redis) -> dict[str, Any] | None:
        """The profile's follow-up batch from the engine's records (the store),
        beside what the simulated citizens pressed (``sim_*``)."""
        if self.p.followup is None:
            return None
        from ivr.callback.followup import FollowupStore, outcome_counts

        b = self.followup_batch
        plan = dataclasses.asdict(self.p.followup)
        if b is None:
            return {"planned": plan, "batch": None, "refused": self.followup_refused}
        _, items = await FollowupStore(redis).batch(b["batch"])
        f = outcome_counts(items)
        sv = f["survey"]
        return {
            "planned": plan, "batch": b["batch"], "at_s": b["at_s"], "by": b["by"], "of": b["of"], "day": b["day"],
            "share": b["share"], "candidates": b["candidates"],
            **{k: f[k] for k in ("chosen", "called", "attempts", "reached", "unreached", "open", "heard_yes",
                                 "heard_no", "comments")},
            "survey": {"offered": f["reached"], "answered": f["reached"] - sv["no_answer"], **sv,
                       "satisfaction_rate": f["satisfaction_rate"]},
            # what the simulated citizens pressed (all follow-ups the PBX answered, this batch's)
            "sim_answered": sum(self.followups_answered.values()),
            "sim_heard": {"yes": self.followups_heard["1"], "no": self.followups_heard["2"]},
            "sim_ratings": {k: self.followups_answered[d] for k, d in (
                ("satisfied", "1"), ("basically_satisfied", "2"), ("dissatisfied", "3"), ("no_answer", "none"))},
        }

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> dict:
        raise_open_file_limit()
        self.log = logs.get("ivr.drill")
        with tempfile.TemporaryDirectory(prefix="ivr-drill-") as tmp:
            self.tmp = Path(tmp)
            try:
                await self._start_backend()
                return await self._drive()
            finally:
                await self._stop_backend()

    # -- the engine side: one engine in this process, or engine processes ------------

    async def _start_backend(self) -> None:
        for site in self._build_sites():
            site.ami = SimAmiServer(site.pbx)
            await site.ami.start()
        self.engine = self.engine_set = self.sentinels = self.redis_srv = None
        self._engine_task = None
        home, secrets = self._city_home()
        os.environ.update(secrets)          # the other PBXs' AMI secrets, as a unit's EnvironmentFile sets them
        settings_env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(self.tmp), "IVR_LEADER": "yes",
                        "IVR_DRAIN_S": "2", "IVR_HTTP_LISTEN": self.http_listen,
                        "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{self.ami.port}"}
        tz = load_settings({"IVR_HOME": str(self.home)}).timezone
        start = self.start_epoch if self.start_epoch is not None else default_start(tz)
        mode = "auto" if self.contingency == "auto" else "propose"
        settings_env.update(self._terms(mode))
        # the drill's own audit key and checkpoints: its Redis is not the hotline's
        from ivr.audit import signing as audit_keys
        key, checkpoints = self.tmp / "audit.key", self.tmp / "audit-checkpoints.jsonl"
        audit_keys.configure(key, checkpoints)
        if self.processes == 0:
            self.redis_srv = EmbeddedRedis(self.tmp, persist=False, preexec_fn=die_with_parent)
            url = self.redis_srv.start()
            self.redis = connect(url)
            self.redis_url = url
            self.clock = SimClock(self.speed, start, lead_s=ENGINE_START_S, later=self.later_speeds)
            settings = load_settings({**settings_env, "IVR_REDIS_URL": url, "IVR_AGI_LISTEN": "127.0.0.1:0"})
            self.engine = Engine(settings, self.redis, logs.get("ivr.runtime.engine"), clock=self.clock.engine,
                                 redis_url=url)
            await self._fixed_level()
            stop, ready = asyncio.Event(), asyncio.Event()
            self._engine_stop = stop
            self._engine_task = asyncio.create_task(self.engine.run(stop, ready))
            await asyncio.wait_for(ready.wait(), 30)
            self.engine_urls = [f"agi://127.0.0.1:{self.engine.agi.port}"]
        else:
            from ivr.rehearsal.sim.engines import EngineSet
            from ivr.rehearsal.sim.sentinel_set import SentinelSet

            if self.chaos:
                self.sentinels = await asyncio.to_thread(SentinelSet(self.tmp / "redis").start)
                url = self.sentinels.url
            else:
                self.redis_srv = EmbeddedRedis(self.tmp, persist=False, preexec_fn=die_with_parent)
                url = self.redis_srv.start()
            self.redis = connect(url)
            self.redis_url = url
            self.clock = SimClock(self.speed, start, lead_s=PROCESSES_START_S, later=self.later_speeds)
            await self._fixed_level()
            self.engine_set = EngineSet(
                self.processes, home=home, folder=self.log_dir or self.tmp / "engines", redis_url=url,
                ami_url=settings_env["IVR_AMI_URL"], clock=self.clock.engine.describe(),
                http_listen=self.http_listen,
                extra_env={"IVR_AUDIT_KEY_FILE": str(key), "IVR_AUDIT_CHECKPOINT_FILE": str(checkpoints),
                           **self._terms(mode), **secrets})
            await self.engine_set.start()
            self.engine_urls = self.engine_set.urls
        while any(site.ami is None or site.ami.logins < 1 for site in self.sites):   # the leader holds every link
            await asyncio.sleep(0.05)
        if self.on_ready is not None and self.engine is not None:
            await self.on_ready(self.engine)

    def _terms(self, mode: str) -> dict[str, str]:
        """The shipped configuration as this drill runs it, as settings (so that
        engine processes of their own and the console's process run on it too,
        ``runtime.engine.adjust_for``): the plan in its mode, the profile's
        lines (queue/lines.yaml as the profile states it; unlimited: no line
        count for the engine either), or the behaviour before admission for a
        comparison."""
        terms = {"IVR_CONTINGENCY_MODE": mode, "IVR_DRILL_ADMISSION": "on" if self.admission else "off"}
        if self.pbx_count > 1 and self.lines is not None:
            return terms                     # each PBX's lines in the drill's queue/lines.yaml (``_city_home``)
        if self.lines is None:
            lines = "unlimited"
        else:
            reserve, below = self.p.line_rules(self.lines)
            lines = f"{self.lines},{reserve},{below}"
        return {**terms, "IVR_DRILL_LINES": lines}

    def _city_home(self) -> tuple[Path, dict[str, str]]:
        """The configuration the engines run on, and the environment they need: the project's own
        with one PBX; with several, a copy whose ``queue/pbxs.yaml`` names each simulated PBX (its AMI
        address, queues and seats; the first is the engine's link, ``IVR_AMI_URL``) and whose
        ``queue/lines.yaml`` gives each its share of the lines; the others' AMI secrets as
        ``secret_env`` names them."""
        if self.pbx_count == 1:
            return self.home, {}
        import shutil

        import yaml
        home = self.tmp / "home"
        for d in ("flows", "prompts", "queue", "callback", "asterisk", "config"):
            if (self.home / d).is_dir():
                shutil.copytree(self.home / d, home / d)
        shipped = _shipped_seats(self.home)
        pbxs: dict[str, dict[str, Any]] = {}
        lines: dict[str, dict[str, int]] = {}
        secrets: dict[str, str] = {}
        for k, site in enumerate(self.sites):
            members = sorted({m for q in site.pbx.queues.values() for m in q.members})
            entry: dict[str, Any] = {"queues": ["general-q", "emergency-q"]}
            if k == 0:
                entry = {"ami": "IVR_AMI_URL", **entry, "seats": sorted(set(members) | set(shipped))}
            else:
                env = f"IVR_AMI_SECRET_{site.name.upper().replace('-', '_')}"
                assert site.ami is not None
                entry = {"ami": f"ami://ivr@127.0.0.1:{site.ami.port}", "secret_env": env, **entry, "seats": members}
                secrets[env] = "ivrsecret"
            pbxs[site.name] = entry
            mine = self.site_lines(k)
            if mine is not None:
                lines[site.name] = {"lines": mine[0], "emergency_reserve": mine[2], "callback_below_free": mine[3]}
        (home / "queue" / "pbxs.yaml").write_text(yaml.safe_dump({"pbxs": pbxs}, allow_unicode=True), "utf-8")
        if lines:
            (home / "queue" / "lines.yaml").write_text(yaml.safe_dump({"pbxs": lines}), "utf-8")
        return home, secrets

    async def _fixed_level(self) -> None:
        if self.contingency.isdigit():           # a fixed level: no automatic changes
            await ContingencyStore(self.redis).set_level(int(self.contingency), by="drill",
                                                         reason="drill at a fixed level", now=self.clock.engine.now())

    async def _stop_backend(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._engine_task is not None:
            self._engine_stop.set()
            await asyncio.wait_for(self._engine_task, 30)
        if self.engine_set is not None:
            await asyncio.to_thread(self.engine_set.stop)
        for site in self.sites:
            if site.ami is not None:
                await site.ami.stop()
        if getattr(self, "redis", None) is not None:
            await self.redis.aclose()
        if self.sentinels is not None:
            await asyncio.to_thread(self.sentinels.stop)
        if self.redis_srv is not None:
            self.redis_srv.stop()

    # -- the run --------------------------------------------------------------------------

    async def _drive(self) -> dict:
        redis = self.redis
        arrivals = arrival_times(self.p, self.rng, self.duration_s)
        store = CallbackStore(redis)
        bucket_s = self.duration_s / 60
        next_bucket, bucket_arrivals, i = bucket_s, 0, 0
        last_progress = 0.0
        faults = sorted(self.fault_plan(), key=lambda f: f[0])
        followup = self.p.followup
        while self.clock.now() < 0:              # the drill's time 0: the engines are up by then
            await asyncio.sleep(TICK_S)
        wall0 = tick_at = time.monotonic()
        while True:
            now = self.clock.now()
            while i < len(arrivals) and arrivals[i] <= now:
                self._new_call(None, arrivals[i])
                i += 1
                bucket_arrivals += 1
            while self._redials and self._redials[0][0] <= now:
                at, number = heapq.heappop(self._redials)
                self._new_call(number, at)
                bucket_arrivals += 1
            while faults and faults[0][0] <= now:
                at, kind = faults.pop(0)
                self._spawn(self._fault(kind, at))
            if followup is not None and followup.at_s <= now:
                self._spawn(self._choose_followups(followup))
                followup = None
            self._run_pbxs(now)
            progress_due = self.progress is not None and time.monotonic() - last_progress >= self.progress_every_s
            if now >= next_bucket or progress_due:
                open_now, level = await self._backlog_and_level(store)
                if now >= next_bucket:
                    self._sample(next_bucket, bucket_arrivals, open_now, level)
                    next_bucket += bucket_s
                    bucket_arrivals = 0
                if progress_due and self.progress is not None:
                    last_progress = time.monotonic()
                    self.progress(self._progress_line(now, open_now, level))
            if now >= self.duration_s + 1 and i >= len(arrivals) and not self._faults_running:
                break
            await asyncio.sleep(TICK_S)
            # how late this round of the simulated PBX came, in simulated seconds: at a high speed the
            # drill's own loop falls behind and every timing it plays (a busy tone, a queue's dispatch) stretches
            tick_at, late = time.monotonic(), (time.monotonic() - tick_at - TICK_S) * self.clock.speed
            self._loop_late.append(late)
        return await self._finish(redis, wall0)

    async def _finish(self, redis, wall0: float) -> dict:
        """After the last arrival: the calls drain, the PBXs stop, the capture catches up, the report."""
        # the lines empty: callers still waiting abandon or time out, conversations end
        end_by = self.clock.now() + min(self.p.callers.patience_s * 5 + self.p.callers.handle_s * 3,
                                        0.1 * self.duration_s)
        while self.tasks and self.clock.now() < end_by:
            self._run_pbxs(self.clock.now())
            await asyncio.sleep(TICK_S)
        # the simulated PBX is driven no further: the console is read no further either (a board read after
        # this shows callers and seats frozen as the PBX left them, a seat "idle" beside waiting callers)
        self.pbx_driven_until_s = self.clock.now()
        for site in self.sites:
            site.cc.run_until(self.pbx_driven_until_s)
        from ivr.rehearsal.sim.identities import finish as identities_checked
        self.identities_checked = await identities_checked(self)
        await asyncio.sleep(2.0 if self.processes else 1.0)     # the capture reads the last summaries
        await self._capture_caught_up(redis)
        if self.processes:
            await asyncio.sleep(GRACE_S + 1)     # the reconciliation writes what dead engines could not
            await asyncio.sleep(max(0.0, self._settle_by - time.monotonic()))
            await self._capture_caught_up(redis)     # what the sweeps wrote is recorded too
        wall = time.monotonic() - wall0
        # the report reads a whole day (1.2 million summaries, a million callbacks) on a client of its own that
        # waits for a slow reply: on the shared one, one reply later than 5 s ended the Beijing day without a report
        reader = connect(self.redis_url, socket_timeout=REPORT_READ_TIMEOUT_S)
        try:
            return await self._report(reader, wall)
        finally:
            await reader.aclose()

    def _run_pbxs(self, now: float) -> None:
        """One round of every simulated PBX: queues to ``now``, callbacks placed, AMI events out."""
        for site in self.sites:
            site.cc.run_until(now)
        self._serve_originates()
        for site in self.sites:
            assert site.ami is not None
            site.ami.flush()

    async def _backlog_and_level(self, store: CallbackStore) -> tuple[int, int]:
        """The open callbacks and the level now (the last sampled, Redis failing over in a chaos drill)."""
        try:
            return (await store.counts())["open"], int(await self.redis.get(keys.CONTINGENCY_LEVEL) or 0)
        except Exception:  # noqa: BLE001
            return (self.series.backlog[-1] if self.series.backlog else 0,
                    self.series.level[-1] if self.series.level else 0)

    async def _capture_caught_up(self, redis, timeout_s: float = 120.0) -> None:
        """Wait (wall seconds, bounded) until the missed-call capture has read
        and acknowledged every call summary: at a high speed it runs behind,
        and a report read before it catches up counts recorded callers as
        unrecorded."""
        from ivr.callback.capture import GROUP

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                stream = await redis.xinfo_stream(keys.CALLS)
                groups = {text_or_none(g["name"]): g for g in await redis.xinfo_groups(keys.CALLS)}
            except Exception:  # noqa: BLE001 - no stream yet (no call ended) or Redis failing over
                return
            g = groups.get(GROUP)
            if g is None or (int(g["pending"]) == 0 and
                             text_or_none(g["last-delivered-id"]) == text_or_none(stream["last-generated-id"])):
                return
            await asyncio.sleep(0.5)

    # -- chaos: faults injected while citizens call -------------------------------------

    def fault_plan(self) -> list[tuple[float, str]]:
        """When (simulated seconds) each fault strikes: spread over the busy
        middle of the drill, one at a time."""
        if not self.chaos:
            return []
        d = self.duration_s
        if len(self.sites) > 1 or self.pbx_count > 1:      # a city: one PBX dies, another's AMI link breaks
            return [(0.15 * d, "kill_leader_engine"), (0.29 * d, "kill_engine_in_flow"),
                    (0.43 * d, "redis_failover"), (0.57 * d, "ami_link_drop"), (0.68 * d, "pbx_killed"),
                    (0.85 * d, "pbx_ami_drop")]
        return [(0.20 * d, "kill_leader_engine"), (0.38 * d, "kill_engine_in_flow"),
                (0.56 * d, "redis_failover"), (0.74 * d, "ami_link_drop")]

    async def _fault(self, kind: str, at: float) -> None:
        self._faults_running += 1
        async with self._one_fault:          # one at a time: a PBX killed takes a minute or two to come back
            await self._one_fault_now(kind)

    async def _one_fault_now(self, kind: str) -> None:
        wall0, sim0 = time.monotonic(), self.clock.now()
        detail: dict = {}
        try:
            detail = await getattr(self, "_fault_" + kind)()
            ok = True
        except Exception as exc:  # noqa: BLE001 - a fault that could not be recovered is a finding
            detail, ok = {"error": repr(exc)}, False
        finally:
            self._faults_running -= 1
        wall1, sim1 = detail.pop("_recovered", None) or (time.monotonic(), self.clock.now())
        self.faults.append({"kind": kind, "at_s": round(sim0, 1),
                            "recovered_after_s": round(sim1 - sim0, 1) if ok else None,
                            "recovered_after_wall_s": round(wall1 - wall0, 2) if ok else None, **detail})
        self.log.warning("drill_fault", kind=kind, ok=ok, **detail)

    async def _until(self, pred, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not recovered within {timeout_s:.0f} s")
            await asyncio.sleep(0.05)

    async def _leader_engine(self):
        holder = text_or_none(await self.redis.get(keys.AMI_LEADER))
        pid = int(holder.split(":")[1]) if holder and holder.count(":") >= 2 else -1
        assert self.engine_set is not None      # engine-process drills only
        return self.engine_set.by_pid(pid)

    async def _fault_kill_leader_engine(self) -> dict:
        """SIGKILL the engine that holds the leader role; another takes over the
        AMI link, the capture and the callbacks; the killed one is restarted."""
        victim = await self._leader_engine()
        if victim is None:
            raise RuntimeError("no engine holds the leader role")
        logins = self.ami.logins
        in_flow = sum(1 for c in self.calls.values() if c.engine == victim.url)
        await asyncio.to_thread(victim.kill)
        await self._until(lambda: self.ami.logins > logins)          # a new leader logged in to AMI
        recovered = (time.monotonic(), self.clock.now())
        victim.spawn()                                                # and the killed one comes back
        await victim.wait_answering(60)
        return {"engine": victim.name, "calls_in_flow": in_flow, "_recovered": recovered}

    async def _fault_kill_engine_in_flow(self) -> dict:
        """SIGKILL a non-leader engine while citizens are in its flows: the
        dialplan sends them to the general queue (fact 10)."""
        leader = await self._leader_engine()
        assert self.engine_set is not None
        others = [e for e in self.engine_set.engines if e is not leader and e.pid is not None]
        await self._until(lambda: any(c.engine in {e.url for e in others} for c in self.calls.values()), 60)
        victim = max(others, key=lambda e: sum(1 for c in self.calls.values() if c.engine == e.url))
        in_flow = sum(1 for c in self.calls.values() if c.engine == victim.url)
        await asyncio.to_thread(victim.kill)
        victim.spawn()
        await victim.wait_answering(60)
        return {"engine": victim.name, "calls_in_flow": in_flow}

    async def _fault_redis_failover(self) -> dict:
        """SIGKILL the Redis master; the sentinels promote the replica; every
        client follows; nothing acknowledged is lost."""
        sentinels = self.sentinels
        assert sentinels is not None            # a Sentinel drill
        killed, promoted_s = await asyncio.to_thread(sentinels.kill_master)
        while True:                                                  # writes go through again
            try:
                await self.redis.set(keys.DRILL_PROBE, "1", ex=60)
                break
            except Exception:  # noqa: BLE001 - the client finds the new master by itself
                await asyncio.sleep(0.1)
        await asyncio.to_thread(sentinels.wait_ready)
        return {"killed": killed, "promoted_after_wall_s": round(promoted_s, 2)}

    async def _fault_ami_link_drop(self) -> dict:
        """The AMI link breaks: the leader reconnects and resyncs."""
        logins = self.ami.logins
        cut = self.ami.drop_clients()
        await self._until(lambda: self.ami.logins > logins)
        return {"connections_cut": cut}

    async def _fault_pbx_killed(self) -> dict:
        """The last PBX dies at the peak (power, a crash): its AMI links drop, every call on it is cut
        (the citizens hear the line drop, as in reality), its queues and seats go with it, and the
        carrier sends no call there. It starts again empty after ``PBX_RESTART_S`` on the same AMI
        port; recovered when the leader is logged in to it again. The other PBXs carry on; every cut
        caller who wanted a person must still have a missed-call record (the engine's own call record
        of the call it lost)."""
        site = self.sites[-1]
        assert site.ami is not None
        port, logins = site.ami.port, site.ami.logins
        site.down = True
        await site.ami.stop()
        victims = list(site.calls.values()) + list(site.placed)
        waiting = sum(len(q.entries) for q in site.pbx.queues.values())
        for t in victims:
            t.cancel()
        await asyncio.gather(*victims, return_exceptions=True)
        await self.clock.sleep(PBX_RESTART_S)
        pbx, cc = self._build_pbx(site.k, len(self.sites))
        pbx.system_name = site.pbx.system_name
        site.pbx, site.cc, site.seen_originates = pbx, cc, 0
        site.ami = SimAmiServer(pbx, port=port)
        await site.ami.start()
        site.down = False
        ami = site.ami
        await self._until(lambda: ami.logins > 0, timeout_s=120)      # the leader links to it again
        # a caller whose engine died and whom the dead PBX held (queued by the dialplan itself) left no
        # event: the leader's sweep settles such calls once their PBX is back, seen so in two sweeps running
        self._settle_by = time.monotonic() + 2 * CLEANUP_EVERY_S + 1
        return {"pbx": site.name, "calls_cut": len(victims), "waiting_cut": waiting, "logins_before": logins,
                "restarted_after_s": PBX_RESTART_S}

    async def _fault_pbx_ami_drop(self) -> dict:
        """One PBX's AMI link breaks (not the engine's own link): the leader reconnects to it while the
        other PBXs carry on."""
        site = self.sites[1]
        ami = site.ami
        assert ami is not None
        logins = ami.logins
        cut = ami.drop_clients()
        await self._until(lambda: ami.logins > logins)
        return {"pbx": site.name, "connections_cut": cut}

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _sample(self, t: float, arrivals: int, backlog: int, level: int) -> None:
        if not hasattr(self, "identities"):     # the console read as staff do, checked (docs/console.md)
            from ivr.rehearsal.sim.identities import IdentitySampler
            self.identities = IdentitySampler.start(self)
        s = self.series
        s.t.append(round(t, 1))
        s.arrivals.append(arrivals)
        s.waiting.append(self._waiting())
        s.busy.append(self._busy_seats())
        s.backlog.append(backlog)
        s.level.append(level)
        s.lines.append(sum(site.pbx.trunk.take_interval_peak() for site in self.sites))
        s.blocked.append(self._bucket_blocked)
        self._bucket_blocked = 0

    def _waiting(self) -> int:
        return sum(len(q.entries) for site in self.sites for q in site.pbx.queues.values())

    def _busy_seats(self) -> int:
        return sum(len(site.pbx.calls) + len(site.pbx.occupied) for site in self.sites)

    def _progress_line(self, now: float, backlog: int, level: int) -> str:
        from ivr.rehearsal.sim.identities import seats_on_shift
        waiting, busy = self._waiting(), self._busy_seats()
        rate = self._ended_lost / self._ended_wanted if self._ended_wanted else 0.0
        h, m, s = int(now // 3600), int(now % 3600 // 60), int(now % 60)
        trunks = [site.pbx.trunk for site in self.sites]
        lines = (f"lines {sum(t.in_use for t in trunks)}/{sum(t.total or 0 for t in trunks)}  busy tones "
                 f"{self.blocked}  " if all(t.total for t in trunks) else "")
        on_shift = sum(seats_on_shift(site.pbx) for site in self.sites)
        return (f"模拟时钟 {h:02d}:{m:02d}:{s:02d}  in system {len(self.tasks)}  waiting {waiting}  "
                f"seats busy {busy}/{on_shift}  {lines}not answered {rate:.0%}  "
                f"callback backlog {backlog}  level {level}")

    async def _report(self, redis, wall_s: float) -> dict:
        calls = list(self.calls.values())
        by = {k: sum(1 for c in calls if c.outcome == k) for k in
              ("answered", "abandoned", "balked", "left_in_flow", "satisfied", "callback_accepted", "message",
               "refused_recorded", "other", "in_progress", "cut")}
        answered = [c for c in calls if c.outcome == "answered"]
        em = [c.wait_s for c in answered if c.emergency and c.wait_s is not None]
        ordinary = [c.wait_s for c in answered if not c.emergency and c.wait_s is not None]
        failed: list[dict[str, str]] = []       # a part of the report whose reads failed: named, not fatal

        async def part(name: str, read: Callable[[], Awaitable[Any]], default: Any) -> Any:
            try:
                return await read()
            except Exception as exc:  # noqa: BLE001 - one part lost, the rest of a long run's report kept
                self.log.exception("drill_report_part_failed", part=name)
                failed.append({"part": name, "error": f"{type(exc).__name__}: {exc}"})
                return default

        records = await part("callback_records", lambda: _slim_records(redis), None)
        records_read = records is not None
        records = records or []
        numbers_with_record = {r.get("number") for r in records}
        unanswered_wanting = {c.number for c in calls
                              if c.wanted_person and c.outcome not in ("answered", "in_progress", "other")}
        missing = unanswered_wanting - numbers_with_record if records_read else set()
        lost_sample: list[dict[str, Any]] = [{"number": c.number, "at_s": round(c.at, 1), "outcome": c.outcome,
                        "wait_s": None if c.wait_s is None else round(c.wait_s, 1)}
                       for c in calls if c.number in missing][:20]
        if missing:          # where the trail ends: a summary in the stream, or none
            seen: dict[str, list[dict[str, str | None]]] = {}

            def trail(sm: dict[str, str]) -> None:
                if sm.get("number") in missing:
                    seen.setdefault(sm["number"], []).append({k: sm.get(k) for k in (
                        "uniqueid", "queue_status", "wanted_person", "outcome", "hold_s", "source")})
            await part("missing_trail", lambda: _each_summary(redis, trail), None)
            pending = await part("missing_pending", lambda: redis.xpending(keys.CALLS, "callbacks"), {})
            for x in lost_sample:
                x["summaries"] = seen.get(x["number"], [])
            lost_sample.append({"stream_pending": pending.get("pending"),
                                "consumers": [c.get("name") for c in pending.get("consumers", [])]})
        counts = await part("callback_counts", lambda: CallbackStore(redis).counts(), {"open": None})
        misdials = sum(1 for r in records if r.get("closed_reason") == "misdial")
        merged = sum(int(r.get("calls") or 1) - 1 for r in records)
        audit = await part("audit", lambda: self._verify_audit(redis), {})
        identity_violations = self.identities_checked
        console_figures = await part("console_figures", lambda: self._console_figures(redis), None)
        followups = await part("followups", lambda: self._followup_report(redis), None)

        def pct(values, q):
            if not values:
                return None
            return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1) if len(values) > 1 \
                else round(values[0], 1)
        offered = len(calls)
        not_answered = offered - by["answered"] - by["in_progress"]
        return {
            "profile": self.p.name, "speed": self.speed,
            "speed_later": [{"at_s": at, "speed": sp} for at, sp in self.later_speeds], "sim_duration_s": self.duration_s,
            "wall_s": round(wall_s, 1), "contingency": self.contingency,
            "drill_loop_late_s": _lateness(self._loop_late),
            "seats": self.p.seats, "emergency_seats": self.p.emergency_seats,
            "offered": offered, "first_calls": sum(1 for c in calls if not c.redial),
            "redials": sum(1 for c in calls if c.redial),
            "answered": by["answered"], "not_answered": not_answered, "in_progress": by["in_progress"],
            "abandoned_in_queue": by["abandoned"], "left_in_flow": by["left_in_flow"],
            "balked_when_told_the_wait": by["balked"], "refused_recorded": by["refused_recorded"],
            "survey": _survey_figures(answered),
            "callback_survey": _counted_survey(self.cb_surveys),
            "followups": followups,
            "satisfied_by_announcement": by["satisfied"], "callback_accepted": by["callback_accepted"],
            "callbacks_registered_early": self.registered_early,
            "admission": self.admission,
            "left_message": by["message"], "failed": by["other"],
            "cut_by_a_pbx_that_died": by["cut"],
            "answered_within_20s": sum(1 for c in answered if (c.wait_s or 0) <= 20),
            "answered_within_60s": sum(1 for c in answered if (c.wait_s or 0) <= 60),
            "emergency_calls": sum(1 for c in calls if c.emergency),
            "emergency_wait_p50_s": pct(em, 50), "emergency_wait_p95_s": pct(em, 95),
            "ordinary_wait_p50_s": pct(ordinary, 50), "ordinary_wait_p95_s": pct(ordinary, 95),
            # unread records: unknown, not zero
            "missed_call_records": len(records) - misdials if records_read else None,
            "misdials": misdials if records_read else None,
            "repeat_dialers_merged": merged if records_read else None, "queued_by_the_dialplan": self.dialplan_queued,
            "callbacks_made": self.cb_made, "callbacks_reached": self.cb_reached,
            "callbacks_seat_busy": self.cb_seat_busy, "callback_backlog_end": counts["open"],
            "consistent": offered == by["answered"] + not_answered + by["in_progress"],
            "every_missed_caller_recorded": not missing if records_read else None,
            "missed_callers_without_record": len(missing) if records_read else None,
            "missed_callers_without_record_sample": lost_sample,
            "engines": self.processes or 1, "chaos": self.chaos, "faults": self.faults,
            "pbxs": [{"name": site.name, "seats": len({m for q in site.pbx.queues.values() for m in q.members}),
                      "lines": site.pbx.trunk.total, "peak_lines_in_use": site.pbx.trunk.peak}
                     for site in self.sites],
            "lost_callers": len(missing) + by["other"] if records_read else None, "callbacks_doubled": self.cb_doubled,
            "audit_chains_verify": all(v == "ok" for v in audit.values()) if audit else None, "audit": audit,
            "report_parts_failed": failed,
            "identity_violations": identity_violations,
            "pbx_driven_until_s": round(self.pbx_driven_until_s, 1),
            # the national figures as the console and the auditors compute them, from the engine's own call
            # summaries (ivr/callback/figures.py): the report's figures above must agree with them
            "console_figures": console_figures,
            **self._line_report(calls, records if records_read else None, numbers_with_record),
            "series": dataclasses.asdict(self.series),
            "queued_calls": self.queued,
        }

    async def _console_figures(self, redis) -> dict[str, Any]:
        """The national figures of the run from the engine's call summaries
        (the calls stream), as the wall, ``/metrics`` and the auditors' report
        compute them."""
        from ivr.callback.figures import Figures
        start, end = self.clock.engine.start, self.clock.engine.now() + 1
        fig = Figures(start, end, dt.UTC, now=end)
        await _each_summary(redis, fig.add_call)
        f = fig.result()
        live = f["per_kind"].get("live", {})
        # the period's survey is of every kind (after callbacks, follow-ups too): the live calls' own beside it
        return {**{k: f[k] for k in ("offered", "answered", "answered_within_15s", "answered_within_15s_rate",
                                     "abandoned_within_15s", "satisfaction_rate", "survey")},
                "live_survey": live.get("survey"), "live_satisfaction_rate": live.get("satisfaction_rate")}

    def _line_report(self, calls: list[CallRecord], records: list[dict] | None, recorded: set) -> dict:
        """Lines, the standard's rates, the seats a 95 % answer rate needs and
        the wait estimates' accuracy (docs/drill.md says what each means)."""
        trunks = [site.pbx.trunk for site in self.sites]
        light = [scores.Call(c.number, c.at, c.redial, c.outcome if c.outcome != "balked" or c.balked_at_queue
                             else "left_in_flow", c.wait_s, c.wanted_person, c.survey) for c in calls]
        quick, rate15 = scores.answered_within(light, self.blocked)
        national = scores.national(light, self.blocked, self.duration_s)
        only_busy = self.dialled - {c.number for c in calls}
        citizens = len(self.dialled)
        line_s = sum(t.line_seconds() for t in trunks)
        # every conversation's length, those still going too (the ended ones alone are the short ones)
        talk = [o.talk_s for site in self.sites for o in site.cc.outcomes.values() if o.kind == "answered"] + \
            [o.talk_s for site in self.sites for o in site.cc.talking.values()]
        return {
            "lines": self.lines, "dialplan_line_limit": self.line_limit, "attempts": self.attempts,
            "blocked_attempts": self.blocked, "busy_recorded_by_the_dialplan": self.blocked_recorded,
            "line_rules": dict(zip(("emergency_reserve", "callback_below_free"),
                                   self.p.line_rules(self.lines), strict=True)) if self.lines and self.admission
            else None,
            "blocked_emergency_attempts": self.blocked_emergency, "redials_after_busy": self.redials_after_busy,
            "attempts_add_up": self.attempts == self.blocked + len(calls),
            "citizens": citizens, "citizens_only_busy": len(only_busy),
            "citizens_only_busy_recorded_nowhere": not (only_busy & recorded) if records is not None else None,
            "peak_lines_in_use": sum(t.peak for t in trunks),     # each PBX's own peak, summed "line_seconds": round(line_s),
            "line_seconds_per_citizen": round(line_s / citizens, 1) if citizens else None,
            "callbacks_line_busy": self.cb_line_busy,
            "answered_within_15s": quick, "answered_within_15s_rate": rate15,
            # the auditors' figures (ivr/callback/figures.py) of the same calls: its 15秒接通率 agrees with
            # the one above, its 满意率 with the report's own "survey"
            "answer_rate_24h": national["answer_rate_24h"],
            "average_speed_of_answer_s": national["average_speed_of_answer_s"],
            "abandoned_within_15s": national["abandoned_within_15s"],
            "satisfaction_rate": national["satisfaction_rate"],
            "national_answered_within_15s_rate": national["answered_within_15s_rate"],
            **(scores.broad_answer_rate(light, self.dialled, records, self.clock.engine.now()) if records is not None
               else dict.fromkeys(("broad_answer_rate_within_deadline", "citizens_wanting_an_answer",
                                   "citizens_answered_live", "citizens_reached_by_callback_in_time",
                                   "callbacks_open_within_deadline_end"))),
            **scores.seats_for_95(first_call_times=self.first_call_at, duration_s=self.duration_s, calls=light,
                                  talk_times=talk, wrapup_s=self.p.callers.wrapup_s, queued=self.queued,
                                  redial_probability=self.p.callers.redial_probability),
            "wait_estimate_accuracy": accuracy(self.queued),
        }

    async def _verify_audit(self, redis) -> dict[str, str]:
        from ivr.audit.chain import AuditLog

        out = {}
        for name, stream in keys.AUDIT_LOGS.items():
            try:
                res = await AuditLog(redis, stream).verify()       # and against the drill's latest checkpoint
                out[name] = "ok" if res.ok else str(getattr(res, "problem", "") or res)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                out[name] = repr(exc)
        return out


def _survey_figures(answered: list[CallRecord]) -> dict[str, Any]:
    """The survey after each conversation: the split by answer, and 满意率 as
    (满意 + 基本满意) ÷ surveys offered (no answer is its own outcome, never
    counted as satisfied)."""
    n = {k: sum(1 for c in answered if c.survey == d) for k, d in
         (("satisfied", "1"), ("basically_satisfied", "2"), ("dissatisfied", "3"), ("no_answer", ""))}
    offered = sum(1 for c in answered if c.survey is not None)
    rate = round((n["satisfied"] + n["basically_satisfied"]) / offered, 4) if offered else None
    return {"offered": offered, "answered": offered - n["no_answer"], **n, "satisfaction_rate": rate}


def _counted_survey(keys_pressed: Counter[str]) -> dict[str, Any]:
    """The survey after a callback as the simulated citizens answered it."""
    n = {k: keys_pressed[d] for k, d in (("satisfied", "1"), ("basically_satisfied", "2"), ("dissatisfied", "3"),
                                        ("no_answer", "none"))}
    offered = sum(n.values())
    rate = round((n["satisfied"] + n["basically_satisfied"]) / offered, 4) if offered else None
    return {"offered": offered, "answered": offered - n["no_answer"], **n, "satisfaction_rate": rate}


def _on_pbx(ch: SimChannel, pbx: SimPbx) -> None:
    """Several PBXs: a channel's uniqueid names its PBX (asterisk.conf's systemname), as the engine reads it."""
    if pbx.system_name:
        ch.uniqueid = f"{pbx.system_name}-{ch.uniqueid}"


def _shipped_seats(home: Path) -> list[str]:
    """The seats of the project's ``queue/seats.yaml`` (every one must be on some PBX)."""
    from ivr.contingency.plan import load_seats

    seats, _ = load_seats(home / "queue")
    if seats is None:
        return []
    return sorted({s.interface for g in seats.groups.values() for s in g} | seats.reserved)


async def run_drill(profile: Profile, **kw) -> dict:
    return await Drill(profile, **kw).run()


SUMMARY_PAGE = 5000


SLIM_FIELDS = ("number", "deadline", "closed_reason", "closed_at", "state", "calls")


async def _slim_records(redis) -> list[dict[str, str]]:
    """Every callback record of the run with only what the report reads of
    it: a million whole records held at once doubled the drill's memory."""
    return await CallbackQueries(redis).all_records(closed_since=0, fields=SLIM_FIELDS)


async def _each_summary(redis, each: Callable[[dict[str, str]], None]) -> None:
    """Every call summary of the run, a page at a time: one XRANGE of the
    Beijing day's 1.2 million outlasted the client's socket timeout and ended
    the drill before its report. By stream id, not by the period: the ids are
    the wall clock's, the summaries' times the drill's faster one."""
    from ivr.calls.service import read_summary
    lo = "-"
    while True:
        rows = stream_entries(await redis.xrange(keys.CALLS, lo, "+", count=SUMMARY_PAGE))
        for _, f in rows:
            each(read_summary(f))
        if len(rows) < SUMMARY_PAGE:
            return
        lo = "(" + rows[-1][0]


def _lateness(late: list[float]) -> dict[str, float | int | None]:
    """How late the drill's loop came round, in simulated seconds (its median,
    99th percentile and worst, and the rounds later than one second): what a
    reader needs to know whether the speed asked for bent the timings."""
    if not late:
        return {"p50": None, "p99": None, "max": None, "rounds": 0, "over_1s": 0}
    srt = sorted(late)
    return {"p50": round(srt[len(srt) // 2], 2), "p99": round(srt[min(len(srt) - 1, len(srt) * 99 // 100)], 2),
            "max": round(srt[-1], 2), "rounds": len(srt), "over_1s": sum(1 for x in srt if x > 1.0)}


def print_report(r: dict, out=sys.stdout) -> None:
    def s(v):
        return "-" if v is None else f"{v:.0f} s"
    recorded = ("OK" if r["every_missed_caller_recorded"]
                else "未读 NOT READ (see report_parts_failed)" if r["every_missed_caller_recorded"] is None
                else f"FAILED ({r['missed_callers_without_record']} without)")
    later = "".join(f", {x['speed']:g} from {x['at_s'] / 3600:.3g} h" for x in r.get("speed_later", ()))
    lines = [
        f"演练报告 drill report: {r['profile']} ({r['sim_duration_s'] / 60:.0f} simulated minutes in {r['wall_s']:.0f} s, "
        f"speed {r['speed']:g}{later}, contingency {r['contingency']})",
        *[f"  报告缺项 report part not read: {f['part']}: {f['error']}" for f in r.get("report_parts_failed", ())],
        *_lateness_line(r),
        f"  来电 offered {r['offered']} (first calls {r['first_calls']}, redials {r['redials']}); "
        f"seats {r['seats']} + {r['emergency_seats']} emergency",
        f"  接通 answered {r['answered']} ({r['answered'] / max(r['offered'], 1):.0%}); within 20 s "
        f"{r['answered_within_20s']}, within 60 s {r['answered_within_60s']}",
        f"  未接通 not answered {r['not_answered']}: abandoned in queue {r['abandoned_in_queue']}, left in the flow "
        f"{r['left_in_flow']}, hung up when told the wait {r['balked_when_told_the_wait']}, refused (recorded) "
        f"{r['refused_recorded']}, satisfied by the "
        f"announcement {r['satisfied_by_announcement']}, callback accepted "
        f"{r['callback_accepted']}, left a message {r['left_message']}, failed {r['failed']}"
        + (f", cut by a PBX that died {r['cut_by_a_pbx_that_died']}" if r.get("cut_by_a_pbx_that_died") else "")
        + f"; in progress {r['in_progress']}",
        f"  紧急 emergency {r['emergency_calls']} calls: wait p50 {s(r['emergency_wait_p50_s'])}, "
        f"p95 {s(r['emergency_wait_p95_s'])}; ordinary wait p50 {s(r['ordinary_wait_p50_s'])}, "
        f"p95 {s(r['ordinary_wait_p95_s'])}",
        f"  回拨 callbacks: missed-call records {r['missed_call_records']} (+{r['misdials']} misdials), repeat dialers merged "
        f"{r['repeat_dialers_merged']}, callbacks made {r['callbacks_made']}, reached {r['callbacks_reached']}, "
        f"backlog at the end {r['callback_backlog_end']}",
        *([f"  故障 faults ({r['engines']} engines): " + "; ".join(
            f"{f['kind']} at {f['at_s']:.0f} s, recovered after "
            + (f"{f['recovered_after_s']:.0f} s ({f['recovered_after_wall_s']:.1f} s wall)"
               if f['recovered_after_s'] is not None else f"NOT ({f.get('error')})") for f in r["faults"]),
           f"  lost callers {r['lost_callers']}, callbacks dialled twice at once {r['callbacks_doubled']}, "
           f"queued by the dialplan itself {r['queued_by_the_dialplan']}, audit chains verify: "
           f"{'OK' if r['audit_chains_verify'] else '未读 not read' if r['audit_chains_verify'] is None else 'FAILED ' + str(r['audit'])}"] if r.get("chaos") else []),
        *_line_lines(r),
        *_followup_lines(r),
        f"  checks: offered = answered + not answered + in progress: {'OK' if r['consistent'] else 'FAILED'}; "
        f"attempts = busy + offered: {'OK' if r.get('attempts_add_up', True) else 'FAILED'}; "
        f"every unanswered caller who wanted a person has a missed-call record: {recorded}",
    ]
    print("\n".join(lines), file=out)


def _followup_lines(r: dict) -> list[str]:
    """The follow-up batch (智能回访) of the profile, as printed."""
    from ivr.callback.followup import SOURCES

    f = r.get("followups")
    if not f:
        return []
    if f.get("batch") is None:
        return [f"  智能回访 follow-up calls: 未抽样 no batch chosen at {f['planned']['at_s']:g} s — "
                f"{f.get('refused') or '-'}"]
    sv = f["survey"]
    rate = "-" if sv["satisfaction_rate"] is None else f"{sv['satisfaction_rate']:.1%}"
    return [
        f"  智能回访 follow-up calls: 批次 batch {f['batch']} at {f['at_s'] / 60:.0f} min by {f['by']}: "
        f"{f['share'] * 100:g}% of {f['candidates']} {' '.join(SOURCES.get(f['of'], (f['of'],)))} -> 抽取 "
        f"{f['chosen']}, 已拨 called {f['called']}, "
        f"接通 reached {f['reached']}, 未接通 unreached {f['unreached']}, 待拨 open {f['open']}; "
        f"问题已有回音 heard 是 yes {f['heard_yes']} / 否 no {f['heard_no']}; 评价 满意 {sv['satisfied']}, "
        f"基本满意 {sv['basically_satisfied']}, 不满意 {sv['dissatisfied']}, 未评价 no answer {sv['no_answer']}; "
        f"回访满意率 {rate}",
    ]


def _line_lines(r: dict) -> list[str]:
    """The report's lines, rates and estimates, as printed."""
    if "attempts" not in r:
        return []

    def rate(v):
        return "-" if v is None else f"{v:.1%}"
    busy_share = r["blocked_attempts"] / r["attempts"] if r["attempts"] else 0.0
    sizing = r["seats_needed_for_95_inputs"]
    acc = r["wait_estimate_accuracy"]
    scored = "; ".join(f"{name} " + (f"rrmse {a['rrmse']}, within {rate(a['within_share'])} (n {a['n']})"
                                     if a["n"] else "none") for name, a in acc.items())
    return [
        f"  线路 lines {r['lines'] or 'unlimited'} (IVR_LINES {r['dialplan_line_limit'] or 0}): attempts "
        f"{r['attempts']}, busy recorded nowhere {r['blocked_attempts']} "
        f"({busy_share:.1%}; emergency {r['blocked_emergency_attempts']}), busy recorded by the dialplan "
        f"{r['busy_recorded_by_the_dialplan']}, redials after busy "
        f"{r['redials_after_busy']}; peak lines in use {r['peak_lines_in_use']}; line-seconds per citizen "
        f"{r['line_seconds_per_citizen']} ({r['citizens']} citizens, {r['citizens_only_busy']} only ever heard busy)",
        f"  满意度 survey: {r['survey']['offered']} offered, 满意 {r['survey']['satisfied']}, 基本满意 "
        f"{r['survey']['basically_satisfied']}, 不满意 {r['survey']['dissatisfied']}, no answer "
        f"{r['survey']['no_answer']}; 满意率 {rate(r['survey']['satisfaction_rate'])}"
        + (f"; 回拨后 after callbacks: {cs['offered']} offered, 满意 {cs['satisfied']}, 基本满意 "
           f"{cs['basically_satisfied']}, 不满意 {cs['dissatisfied']}, no answer {cs['no_answer']}; 满意率 "
           f"{rate(cs['satisfaction_rate'])}" if (cs := r.get("callback_survey")) and cs["offered"] else ""),
        f"  接通率 answered within 15 s of queueing {rate(r['answered_within_15s_rate'])} "
        f"({r['answered_within_15s']}); 广义接通率 within deadline {rate(r['broad_answer_rate_within_deadline'])} "
        f"({r['citizens_answered_live']} live + {r['citizens_reached_by_callback_in_time']} by callback of "
        f"{r['citizens_wanting_an_answer']}; {r['callbacks_open_within_deadline_end']} still open in time); "
        f"seats needed for 95 %: {r['seats_needed_for_95']} ({sizing['arrivals_per_s']}/s, handle "
        f"{sizing['handle_s']} s, patience {sizing['patience_s']} s)",
        f"  考核指标 national figures: 15秒接通率 {rate(r['answered_within_15s_rate'])}, 24小时接通率 "
        f"{rate(r['answer_rate_24h'])}, 平均应答 ASA {r['average_speed_of_answer_s']} s, 15秒内放弃 abandoned "
        f"within 15 s {r['abandoned_within_15s']}, 满意率 {rate(r['satisfaction_rate'])}",
        f"  等待预估 wait estimates at queue join, callers answered: {scored}",
    ]


def _lateness_line(r: dict) -> list[str]:
    late = r.get("drill_loop_late_s") or {}
    if not late.get("rounds"):
        return []
    return [f"  演练时钟延迟 drill loop late (simulated s): p50 {late['p50']}, p99 {late['p99']}, max {late['max']}; "
            f"{late['over_1s']} of {late['rounds']} rounds over 1 s (timings stretch by as much)"]
