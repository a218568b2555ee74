"""The call path's adapter: an AGI connection in, a flow run, a call summary out.

Reads the world once per call (clock, contingency level, caller history, an
open callback: ``ivr.calls.arrival``) into ``CallFacts`` and hands everything
else to the pure interpreter."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast
from zoneinfo import ZoneInfo

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from ivr.agi.channel import AgiChannel, LineTransport
from ivr.aio import cancelling
from ivr.call_channel import CallInfo, CallLog, pbx_system
from ivr.calls.arrival import UNKNOWN, ArrivalLookups
from ivr.contingency.plan import Plan
from ivr.errors import NotReplicated
from ivr.flow.conditions import CallFacts, Elsewhere
from ivr.flow.interpreter import FlowInterpreter
from ivr.flow.registry import FlowRegistry
from ivr.logs import Log
from ivr.prompts.announcements import AnnouncementSets, playable
from ivr.redisdb import keys
from ivr.redisdb.durable import Replication
from ivr.redisdb.report_hours import summary_hour
from ivr.settings import calls_kept

if TYPE_CHECKING:
    from ivr.clock import Clock
    from ivr.runtime.snapshot import ConfigSnapshot

# how many call summaries the calls stream keeps (IVR_CALLS_KEPT, checked by load_settings):
# the auditors' figures of older hours come from the report's hour parts (ivr.callback.rollup)
CALLS_STREAM_MAXLEN = calls_kept(os.environ, strict=False)
ALIVE_BEAT_S = 2.0          # the engine's "alive" key is renewed at least this often (it expires after 10 s)

# KEYS[1]: the calls stream, KEYS[2]: calls live (hash uniqueid -> engine),
# KEYS[3]: summaries written per hour of their calls' start (the report's parts)
# ARGV[1]: the stream's approximate maximum length; ARGV[2], ARGV[3]: the
#   summarised mark's key prefix and suffix; ARGV[4]: its expiry (s);
#   ARGV[5..]: per summary, its uniqueid ('' none), the epoch hour its call
#   started in, then its JSON
# Each summary in order: appended to the stream (field j), counted in its hour,
# its call marked summarised and taken out of calls live. Returns how many were written.
SUMMARIES = """
for i = 5, #ARGV, 3 do
  local uid = ARGV[i]
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'j', ARGV[i + 2])
  redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
  if uid ~= '' then
    redis.call('SET', ARGV[2] .. uid .. ARGV[3], 'engine', 'EX', ARGV[4])
    redis.call('HDEL', KEYS[2], uid)
  end
end
return (#ARGV - 4) / 3
"""


# an emergency caller is moved to another PBX's queue (a queue step's ``other_pbxs``) when the wait at
# home is at least this (GB/T 33358-2016: answered within 15 s) ...
MOVE_AFTER_S = 15.0
MOVE_GAIN_S = 10.0      # ... and the other PBX's is this much shorter (the move itself takes a few seconds)
PEER_RETRY_S = 60.0     # wall seconds a PBX a move failed to is left out (its trunk down, its engines busy)
FRESH_S = 0.02          # wall seconds: calls asking within this of a read of the outlook share it
FRESH_WAIT_S = 0.2      # ... and a read slower than this leaves the last outlook (the caller is not held)

class CallSpecific(TypedDict, total=False):
    """The facts ``LiveState.facts`` takes from the call itself (``CallFacts`` fields)."""

    caller: str
    last_call_age_s: float | None
    variables: Mapping[str, str]
    registered_ahead: int | None
    outbound: str
    rated_seat: str
    emergency_matter: bool


class LiveState:
    """What every call reads besides its flow: the contingency level (polled
    from Redis with the flows, so every engine process agrees within a second)
    and the configuration snapshot in force (the plan, announcement sets,
    number lists, calendars)."""

    def __init__(self, snapshot: ConfigSnapshot | None = None) -> None:
        self.level = 0
        self.plan: Plan | None = None
        self.announcements: AnnouncementSets = {}
        self.lists: dict[str, frozenset[str]] = {}
        self.calendars: dict[str, frozenset[dt.date]] = {}
        self._valid_at = -1
        self._valid: dict[str, tuple[str, ...]] = {}
        # from the leader's live figures (read with the level): Asterisk queue ->
        # priority -> (callers ahead, expected wait s, spread s); free lines low
        self.outlook: dict[str, dict[int, tuple[int, float, float]]] = {}
        self.lines_low = False
        # several PBXs: each PBX's own outlook and lines, by its systemname (the
        # prefix of its calls' uniqueids): a caller waits on and holds a line of their own PBX
        self._by_system: dict[str, tuple[dict[str, dict[int, tuple[int, float, float]]], bool]] = {}
        # by systemname: the PBX's name and where the other PBXs reach it over IAX2 (its peer_address)
        self._peers: dict[str, tuple[str, str]] = {}
        self._unreachable: dict[str, float] = {}      # PBX name -> monotonic time a move to it last failed
        self._sending: dict[str, int] = {}            # PBX name -> callers this engine moved there since the last read
        # where the leader's latest outlook is read (the engine sets it: one GET of ``keys.OUTLOOK``)
        self.outlook_source: Callable[[], Awaitable[bytes | str | None]] | None = None
        self._outlook_read_at = -math.inf       # monotonic
        self._outlook_reading: asyncio.Task[None] | None = None
        if snapshot is not None:
            self.use(snapshot)

    def use(self, snapshot: ConfigSnapshot) -> None:
        """A new snapshot: calls that start from now on read it."""
        self.plan, self.announcements = snapshot.plan, snapshot.announcements
        self.lists, self.calendars = snapshot.lists, snapshot.calendars
        self._valid_at = -1

    def use_outlook(self, raw: str | bytes | None) -> None:
        """The leader's outlook (``keys.OUTLOOK``); unreadable or absent: nothing
        is known, and no step offers or says anything on its account."""
        try:
            doc = orjson.loads(raw) if raw else {}
            self.outlook, self.lines_low = _outlook_of(doc)
            systems = doc.get("systems") or {}
            named = [name for name in systems.values() if name]
            self._by_system = {name: _outlook_of(doc["pbxs"][pbx]) for pbx, name in systems.items()
                               if name and named.count(name) == 1 and pbx in doc.get("pbxs", {})}
            self._sending = {}              # the new outlook counts the callers moved before it
            peers = doc.get("peers") or {}
            self._peers = {name: (pbx, str(peers[pbx])) for pbx, name in systems.items()
                           if name in self._by_system and peers.get(pbx)}
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError, KeyError):
            self.outlook, self.lines_low, self._by_system, self._peers = {}, False, {}, {}

    async def fresh_outlook(self) -> None:
        """The leader's latest outlook, read now (``CallFacts.fresh``: a step
        about to tell a caller their place reads it, not the engine's periodic
        read of up to ``REFRESH_S`` ago). Calls asking within ``FRESH_S`` of a
        read, or while one is under way, share it; a read that fails or takes
        longer than ``FRESH_WAIT_S`` leaves the last outlook: the caller is never
        held for it."""
        source = self.outlook_source
        if source is None or time.monotonic() - self._outlook_read_at < FRESH_S:
            return
        if self._outlook_reading is None or self._outlook_reading.done():
            async def read() -> None:
                try:
                    self.use_outlook(await source())
                    self._outlook_read_at = time.monotonic()
                except (RedisError, OSError, TimeoutError):
                    pass                 # the periodic read tries again; the last outlook stands
            self._outlook_reading = asyncio.create_task(read())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._outlook_reading), FRESH_WAIT_S)

    def queues_now(self, system: str = "") -> tuple[dict[str, dict[int, tuple[int, float, float]]], bool]:
        """The outlook as last read (``use_outlook``): what a flow's step reads
        when it is reached; ``system``: the call's PBX (``pbx_system`` of its
        uniqueid), whose own outlook and lines it is, when the leader
        published them; else the city's."""
        own = self._by_system.get(system) if system else None
        return own if own is not None else (self.outlook, self.lines_low)

    def sooner_elsewhere(self, system: str, queue: str, priority: int) -> Elsewhere | None:
        """Another PBX whose ``queue`` would take a caller of ``priority`` on PBX
        ``system`` sooner: when the wait at home is at least ``MOVE_AFTER_S``
        (GB/T 33358's 15 s) and another PBX's, reachable over IAX2 (its
        ``peer_address``), is at least ``MOVE_GAIN_S`` shorter; the shortest of
        them. None when the call's PBX or its outlook is not known: the caller
        stays (a caller is never moved on a guess)."""
        home = self._by_system.get(system) if system else None
        if home is None:
            return None
        mine = home[0].get(queue, {}).get(priority)
        own_wait = mine[1] if mine is not None else math.inf
        if own_wait < MOVE_AFTER_S:
            return None
        best: Elsewhere | None = None
        now = time.monotonic()
        for name, (pbx, address) in self._peers.items():
            if now - self._unreachable.get(pbx, -math.inf) < PEER_RETRY_S:
                continue
            theirs = self._by_system[name][0].get(queue, {}).get(priority) if name != system else None
            if theirs is None:
                continue
            wait = _after_sent(theirs, self._sending.get(pbx, 0))
            if wait + MOVE_GAIN_S > own_wait:
                continue
            if best is None or wait < best.wait_s:
                best = Elsewhere(pbx, address, wait, own_wait)
        return best

    def sending(self, pbx: str) -> None:
        """A caller is being moved to ``pbx``: until the next outlook shows them
        there, the callers after them see its line one longer."""
        self._sending[pbx] = self._sending.get(pbx, 0) + 1

    def unreachable(self, pbx: str) -> None:
        """A move to ``pbx`` failed (its trunk unreachable, its engines refused
        the call): the next emergency callers of this engine stay at home for
        ``PEER_RETRY_S`` rather than each losing the ring time on it."""
        self._unreachable[pbx] = time.monotonic()

    def valid_sets(self, now: dt.datetime) -> dict[str, tuple[str, ...]]:
        """Every set's items valid at ``now``; worked out once a second, not per call."""
        second = int(now.timestamp())
        if second != self._valid_at:
            self._valid = {name: playable(self.announcements, name, now) for name in self.announcements}
            self._valid_at = second
        return self._valid

    def facts(self, now: dt.datetime, pbx: str = "", **call: Unpack[CallSpecific]) -> CallFacts:
        """``pbx``: the systemname of the PBX the call is on (its outlook and lines)."""
        lv = self.plan.level(self.level) if self.plan else None
        sets = self.valid_sets(now)
        outlook, lines_low = self.queues_now(pbx)
        return CallFacts(now=now, level=self.level, lists=self.lists, calendars=self.calendars,
                         announcements=sets.get(lv.announcements, ()) if lv and lv.announcements else (),
                         announcement_sets=sets,
                         callback_mode=lv.callback if lv else "offer",
                         short_menu=lv.short_menu if lv else False,
                         hold_music=lv.hold_music if lv else None,
                         outlook=outlook, lines_low=lines_low, current=lambda: self.queues_now(pbx),
                         elsewhere=lambda queue, priority: self.sooner_elsewhere(pbx, queue, priority),
                         unreachable=self.unreachable, sending=self.sending,
                         fresh=self.fresh_outlook,
                         admission_wait_s=lv.admission_wait_s if lv else None,
                         say_wait=lv.say_wait if lv else False, **call)


class CallSummaries:
    """Call summaries go to a Redis stream in batches: one pipeline per 100 ms
    instead of one round trip per call on the hot path.

    The same pipeline keeps ``CALLS_LIVE`` (which engine runs which call) and
    marks each summarised call, so the leader can tell a call whose engine died
    (no summary will come: it writes one from AMI) from one whose engine lives
    (it waits), and never counts a call twice (``callback/reconcile.py``).

    The summaries go in one script call (``SUMMARIES``), two arguments each:
    redis-py packed an XADD and a SET per call, 12 arguments, at about a tenth
    of the engine's CPU per call (docs/benchmarks.md)."""

    def __init__(self, redis: aioredis.Redis, log: Log, flush_s: float = 0.1, owner: str = "") -> None:
        self.redis = redis
        self.log = log
        self.flush_s = flush_s
        self.owner = owner
        self._buf: list[tuple[str, str, str]] = []    # (uniqueid, the epoch hour it started in, its JSON)
        # typed as redis-py's command arguments: its Mapping parameters take no dict[str, str]
        self._started: dict[FieldT, EncodableT] = {}
        self._last_beat = 0.0
        self.replication = Replication(redis)
        self._write = redis.register_script(SUMMARIES)

    def started(self, uniqueid: str, at: float, number: str = "") -> None:
        if uniqueid:
            self._started[uniqueid] = f"{self.owner}|{at:.3f}|{number}"

    def add(self, fields: dict[str, str]) -> None:
        # One JSON field per entry: redis-py packs a 19-field XADD at several
        # times the CPU of json.dumps, and this runs once per call.
        self._buf.append((fields.get("uniqueid", ""), summary_hour(fields), orjson.dumps(fields).decode()))

    async def flush(self) -> None:
        beat = bool(self.owner) and time.monotonic() - self._last_beat >= ALIVE_BEAT_S
        if not self._buf and not self._started and not beat:
            return
        if beat:
            self._last_beat = time.monotonic()
        batch, self._buf = self._buf, []
        started, self._started = self._started, {}
        for uid, _, _ in batch:
            started.pop(uid, None)          # began and ended within one batch
        pipe = self.redis.pipeline(transaction=False)
        if started:
            pipe.hset(keys.CALLS_LIVE, mapping=started)
        if batch:
            await self._write(keys=[keys.CALLS, keys.CALLS_LIVE, keys.REPORT_WRITTEN],
                              args=[CALLS_STREAM_MAXLEN, keys.CALL_SUMMARISED_PREFIX, keys.CALL_SUMMARISED_SUFFIX,
                                    keys.CALL_SUMMARISED_TTL_S, *(x for entry in batch for x in entry)], client=pipe)
        if self.owner:
            pipe.set(keys.engine_alive(self.owner), "1", ex=keys.ENGINE_ALIVE_TTL_S)
        try:
            await pipe.execute()
            if batch:
                await self.replication.wait()
        except NotReplicated as exc:
            # on the master, not on a replica yet: send again (the capture and
            # the summarised mark take a summary twice without counting it twice)
            self._buf[:0] = batch
            self.log.warning("call_summaries_not_replicated", error=str(exc), summaries=len(batch))
        except Exception as exc:  # keep them for the next round: losing a call record is worse
            self._buf[:0] = batch
            self._started = started | self._started
            self.log.error("call_summaries_not_written", error=repr(exc), pending=len(self._buf))

    async def run(self) -> None:
        while not cancelling():  # see Engine._refresh_loop
            await asyncio.sleep(self.flush_s)
            await self.flush()


def summary_fields(call: CallInfo, record: CallLog, started: float, ended: float, version: int | None,
                   level: int = 0) -> dict[str, str]:
    qr = record.queue_result
    return {
        "uniqueid": call.uniqueid,
        "number": call.caller_number,   # full number: the callback must dial it
        "flow": call.flow,
        "version": str(version or ""),
        "started": f"{started:.3f}",
        "ended": f"{ended:.3f}",
        "outcome": record.outcome,
        "last_step": record.steps[-1] if record.steps else "",
        "steps": ",".join(record.steps),
        "wanted_person": "1" if record.wanted_person else "0",
        "emergency": "1" if record.emergency else "0",
        "queue": record.queue,
        "queue_status": qr.status.value if qr else "",
        "member": qr.member if qr else "",
        "hold_s": str(qr.hold_s) if qr and qr.hold_s is not None else "",
        # left the queue without a seat: how long the caller was in it (no QEHOLDTIME then)
        "queue_wait_s": str(qr.wait_s) if qr and qr.wait_s is not None else "",
        "message": record.message_path,
        "callback_accepted": "1" if record.callback_accepted else "0",
        "sent_to_message": "1" if record.sent_to_message else "0",
        "level": str(level),
        "digits": "".join(record.digits),
        "failures": ",".join(record.failures),
        "admission_offered": "1" if record.admission_offered else "0",
        "already_registered": "1" if record.already_registered else "0",
        "wait_estimate_s": "" if record.wait_estimate_s is None else str(record.wait_estimate_s),
        "position_at_join": "" if record.position_at_join is None else str(record.position_at_join),
        # the rating after the conversation ("" none offered); the survey is the call's last act,
        # so its time is the call's end
        "survey": record.survey,
        "survey_seat": record.survey_seat,
        "survey_at": f"{ended:.3f}" if record.survey else "",
        # "" a citizen who called in; "callback": the citizen's leg of a callback after the
        # conversation (its survey), with the callback's id; "followup": a follow-up call (智能回访)
        # with its id. Not incoming calls: figures of calls in count only kind "".
        "kind": call.outbound,
        "callback_id": call.callback_id,
        "followup_id": call.followup_id,
        # what the flow's `set` steps set (name=value;...): a follow-up's FU_HEARD
        "flow_vars": ";".join(f"{k}={v}" for k, v in record.flow_vars.items()),
        "moved_to": record.moved_to,
    }


def read_summary(entry: dict[str, str]) -> dict[str, str]:
    """A call summary as written by ``CallSummaries``."""
    return cast("dict[str, str]", orjson.loads(entry["j"]))


class CallService:
    def __init__(self, *, registry: FlowRegistry, interpreter: FlowInterpreter, live: LiveState,
                 summaries: CallSummaries, arrivals: ArrivalLookups, timezone: ZoneInfo,
                 prompt_prefix: str, recordings_dir: str, log: Log, clock: Clock | None = None) -> None:
        self.registry = registry
        self.interpreter = interpreter
        self.live = live
        self.summaries = summaries
        self.arrivals = arrivals
        self.tz = timezone
        self.prompt_prefix = prompt_prefix
        self.recordings_dir = recordings_dir
        self.log = log
        self.now = clock.now if clock is not None else time.time
        self.active = 0
        self.finished = 0

    async def handle(self, env: dict[str, str], transport: LineTransport) -> CallLog:
        started = self.now()
        call = CallInfo.from_agi_env(env)
        after = call.named_args() if call.outbound else {}
        if after.get("number"):
            # a call the hotline placed: the citizen is the number dialled
            call = replace(call, caller_number=after["number"])
        if not after:
            # not for a call the hotline placed: were its engine to die, the leader's sweep would
            # take the citizen just reached for a missed call (ivr.callback.reconcile)
            self.summaries.started(call.uniqueid, started, call.caller_number)
        log = self.log.bind(call_id=call.uniqueid)
        channel = AgiChannel(transport, call, prompt_prefix=self.prompt_prefix, now=self.now,
                             recordings_dir=self.recordings_dir)
        self.active += 1
        try:
            bundle = self.registry.pinned(call.flow)
            version = self.registry.current.get(call.flow)
            arrival = UNKNOWN
            if bundle is not None and call.caller_number and not after:
                arrival = await self.arrivals.lookup(call.caller_number, started,
                                                     history=self.registry.needs_history(call.flow),
                                                     registration=self.registry.needs_registration(call.flow))
            facts = self.live.facts(dt.datetime.fromtimestamp(started, self.tz), pbx_system(call.uniqueid),
                                    caller=call.caller_number,
                                    last_call_age_s=arrival.last_call_age_s,
                                    registered_ahead=arrival.registered_ahead,
                                    outbound=call.outbound, rated_seat=after.get("seat", ""),
                                    emergency_matter=after.get("kind") == "emergency")
            log.info("call_start", caller=call.caller_number, flow=call.flow, version=version)
            if bundle is None and after:
                # a call the hotline placed: nothing queues the citizen, the dialplan hangs up
                log.error("unknown_flow", flow=call.flow, outbound=call.outbound)
                record = CallLog(outcome="failed")
            elif bundle is None:
                log.error("unknown_flow", flow=call.flow)
                record = await self.interpreter.fallback_only(channel, log)
            else:
                record = await self.interpreter.run(bundle, call.flow, channel, facts, log)
            ended = self.now()
            self.summaries.add(summary_fields(call, record, started, ended, version, self.live.level))
            log.info("call_end", outcome=record.outcome, steps=len(record.steps),
                     commands=channel.commands, duration_s=round(ended - started, 3),
                     queue_status=record.queue_result.status.value if record.queue_result else None)
            return record
        finally:
            self.active -= 1
            self.finished += 1


def _after_sent(entry: tuple[int, float, float], sent: int) -> float:
    """Another PBX's expected wait with ``sent`` more callers moved there since
    its outlook was read: each a place's time more; a line with no wait (a seat
    free, how many unknown) is trusted for one caller, then counted as a wait
    of ``MOVE_AFTER_S`` (callers deciding within one refresh all saw the same
    free seat)."""
    ahead, wait, _ = entry
    if sent <= 0:
        return wait
    if wait <= 0:
        return MOVE_AFTER_S
    return wait + sent * wait / (ahead + 1)


def _outlook_of(doc: dict[str, Any]) -> tuple[dict[str, dict[int, tuple[int, float, float]]], bool]:
    """An outlook document (``LiveModel.outlook``) -> (queue -> priority -> (ahead, wait, spread), lines low)."""
    outlook = {q: {int(p): (int(v[0]), float(v[1]), float(v[2])) for p, v in by_p.items()}
               for q, by_p in doc.get("queues", {}).items()}
    return outlook, bool(doc.get("lines_low", False))
