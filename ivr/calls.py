"""The call path's adapter: an AGI connection in, a flow run, a call summary out.

Reads the world once per call (clock, contingency level, caller history) into
``CallFacts`` and hands everything else to the pure interpreter."""

from __future__ import annotations

import asyncio

import datetime as dt
import time
from zoneinfo import ZoneInfo

import orjson
import redis.asyncio as aioredis

from ivr import redis_keys as keys
from ivr.agi.channel import AgiChannel, LineTransport
from ivr.call import CallInfo, CallLog
from ivr.announcements import AnnouncementSets, playable
from ivr.contingency.plan import Plan
from ivr.flow.conditions import CallFacts
from ivr.flow.interpreter import FlowInterpreter
from ivr.flow.registry import FlowRegistry
from ivr.logs import mask_number

CALLS_STREAM_MAXLEN = 2_000_000
LAST_CALL_TTL_S = 7 * 24 * 3600


class LiveState:
    """Values every engine process must agree on within a second (the
    contingency level), polled from Redis in one round trip with the flows, and
    what the level asks of the flows (from queue/contingency.yaml)."""

    def __init__(self, plan: Plan | None = None, announcements: AnnouncementSets | None = None) -> None:
        self.level = 0
        self.lists: dict[str, frozenset[str]] = {}
        self.calendars: dict[str, frozenset[dt.date]] = {}
        self.plan = plan
        self.announcements: AnnouncementSets = announcements or {}
        self._valid_at = -1
        self._valid: dict[str, tuple[str, ...]] = {}

    def valid_sets(self, now: dt.datetime) -> dict[str, tuple[str, ...]]:
        """Every set's items valid at ``now``; worked out once a second, not per call."""
        second = int(now.timestamp())
        if second != self._valid_at:
            self._valid = {name: playable(self.announcements, name, now) for name in self.announcements}
            self._valid_at = second
        return self._valid

    def facts(self, now: dt.datetime, **call) -> CallFacts:
        lv = self.plan.level(self.level) if self.plan else None
        sets = self.valid_sets(now)
        return CallFacts(now=now, level=self.level, lists=self.lists, calendars=self.calendars,
                         announcements=sets.get(lv.announcements, ()) if lv and lv.announcements else (),
                         announcement_sets=sets,
                         callback_mode=lv.callback if lv else "offer",
                         short_menu=lv.short_menu if lv else False,
                         hold_music=lv.hold_music if lv else None, **call)


class CallSummaries:
    """Call summaries go to a Redis stream in batches: one pipeline per 100 ms
    instead of one round trip per call on the hot path."""

    def __init__(self, redis: aioredis.Redis, log, flush_s: float = 0.1) -> None:
        self.redis = redis
        self.log = log
        self.flush_s = flush_s
        self._buf: list[dict[str, str]] = []
        self._wake = asyncio.Event()

    def add(self, fields: dict[str, str]) -> None:
        # One JSON field per entry: redis-py packs a 19-field XADD at several
        # times the CPU of json.dumps, and this runs once per call.
        self._buf.append({"j": orjson.dumps(fields).decode()})

    async def flush(self) -> None:
        if not self._buf:
            return
        batch, self._buf = self._buf, []
        pipe = self.redis.pipeline(transaction=False)
        for fields in batch:
            pipe.xadd(keys.CALLS, fields, maxlen=CALLS_STREAM_MAXLEN, approximate=True)
        try:
            await pipe.execute()
        except Exception as exc:  # keep them for the next round: losing a call record is worse
            self._buf[:0] = batch
            self.log.error("call_summaries_not_written", error=repr(exc), pending=len(self._buf))

    async def run(self) -> None:
        while not asyncio.current_task().cancelling():  # see Engine._refresh_loop
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
        "message": record.message_path,
        "callback_accepted": "1" if record.callback_accepted else "0",
        "sent_to_message": "1" if record.sent_to_message else "0",
        "level": str(level),
        "digits": "".join(record.digits),
        "failures": ",".join(record.failures),
    }


def read_summary(entry: dict[str, str]) -> dict[str, str]:
    """A call summary as written by ``CallSummaries``."""
    return orjson.loads(entry["j"])


class CallService:
    def __init__(self, *, registry: FlowRegistry, interpreter: FlowInterpreter, live: LiveState,
                 summaries: CallSummaries, redis: aioredis.Redis, timezone: ZoneInfo,
                 prompt_prefix: str, recordings_dir: str, log) -> None:
        self.registry = registry
        self.interpreter = interpreter
        self.live = live
        self.summaries = summaries
        self.redis = redis
        self.tz = timezone
        self.prompt_prefix = prompt_prefix
        self.recordings_dir = recordings_dir
        self.log = log
        self.active = 0
        self.finished = 0

    async def handle(self, env: dict[str, str], transport: LineTransport) -> CallLog:
        started = time.time()
        call = CallInfo.from_agi_env(env)
        log = self.log.bind(call_id=call.uniqueid)
        channel = AgiChannel(transport, call, prompt_prefix=self.prompt_prefix,
                             recordings_dir=self.recordings_dir)
        self.active += 1
        try:
            bundle = self.registry.pinned(call.flow)
            version = self.registry.current.get(call.flow)
            last_age = None
            if bundle is not None and call.caller_number and self.registry.needs_history(call.flow):
                last_age = await self._touch_history(call.caller_number, started)
            facts = self.live.facts(dt.datetime.fromtimestamp(started, self.tz), caller=call.caller_number,
                                    last_call_age_s=last_age)
            log.info("call_start", caller=call.caller_number, flow=call.flow, version=version)
            if bundle is None:
                log.error("unknown_flow", flow=call.flow)
                record = await self.interpreter.fallback_only(channel, log)
            else:
                record = await self.interpreter.run(bundle, call.flow, channel, facts, log)
            ended = time.time()
            self.summaries.add(summary_fields(call, record, started, ended, version, self.live.level))
            log.info("call_end", outcome=record.outcome, steps=len(record.steps),
                     commands=channel.commands, duration_s=round(ended - started, 3),
                     queue_status=record.queue_result.status.value if record.queue_result else None)
            return record
        finally:
            self.active -= 1
            self.finished += 1

    async def _touch_history(self, number: str, now: float) -> float | None:
        """Record this call and return the age of the previous one, in one atomic
        round trip (SET ... GET)."""
        try:
            prev = await self.redis.set(keys.last_call(number), f"{now:.3f}", ex=LAST_CALL_TTL_S, get=True)
        except Exception as exc:  # history is a nicety: the call goes on without it
            self.log.warning("call_history_unavailable", error=repr(exc), number=mask_number(number))
            return None
        return now - float(prev) if prev else None

