"""Missed-call capture: reads the call summaries every engine process writes to
``ivr:calls`` (a consumer group, so a restart resumes where it stopped and two
capture processes share the work) and records each missed call, or closes the
open callback of a citizen who got through on a later call.

Order per batch: the state change (idempotent: a replayed call is recognised by
its start time), then its audit entry, then the acknowledgement. A crash can
repeat an audit entry ("replayed"), never lose one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ivr.callback.followup import HEARD_VAR, FollowupStore, audit_id
from ivr.callback.policy import Miss, Policy, classify, first_attempt_at, reached_a_person
from ivr.callback.store import CallbackStore
from ivr.calls.service import read_summary
from ivr.logs import Log, mask_number
from ivr.redisdb import keys
from ivr.redisdb.durable import Replication
from ivr.redisdb.replies import read_group, stream_entries, text

GROUP = "callbacks"
ORPHAN_IDLE_MS = 10_000   # a summary delivered this long ago and not acknowledged: its capture died

_Meta = tuple[str, Miss, dict[str, str]]      # a record's number, missed call and summary, for its audit entry
_Result = tuple[str, str, int]                # what the record script did: (what, callback id, calls)


class MissedCallCapture:
    def __init__(self, redis: aioredis.Redis, store: CallbackStore, policy: Policy, tz: ZoneInfo, log: Log,
                 *, consumer: str = "capture-1", estimated_wait: Callable[[], float] = lambda: 0.0) -> None:
        self.redis = redis
        self.store = store
        self.policy = policy
        self.tz = tz
        self.log = log
        self.consumer = consumer
        self.estimated_wait = estimated_wait   # seconds until a courtesy caller's place reaches a seat
        self.recorded = self.merged = self.closed_later = self.misdials = self.surveys = self.followup_answers = 0
        self.followups = FollowupStore(redis)
        self.replication = Replication(redis)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.CALLS, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def claim_orphans(self, now: float | None = None, min_idle_ms: int = ORPHAN_IDLE_MS) -> int:
        """Summaries delivered to a capture that died before acknowledging them
        (a leader killed mid-batch: its consumer is gone with it) are taken
        over and handled here. Handling is idempotent, so a slow but living
        consumer's entries are safe to take too."""
        handled, start = 0, "0-0"
        while True:
            res = await self.redis.xautoclaim(keys.CALLS, GROUP, self.consumer, min_idle_ms, start, count=500)
            start, entries = text(res[0]), stream_entries(res[1])
            live = [(eid, read_summary(f)) for eid, f in entries if f]
            if live:
                await self.handle(live, now)
            gone = [eid for eid, f in entries if not f]      # trimmed from the stream meanwhile
            if gone:
                await self.redis.xack(keys.CALLS, GROUP, *gone)
            handled += len(entries)
            if start in ("0-0", b"0-0") or not entries:
                return handled

    async def run_once(self, count: int = 500, block_ms: int | None = None, now: float | None = None) -> int:
        """Process what is waiting (pending entries of this consumer first)."""
        handled = 0
        for start in ("0", ">"):
            resp = await self.redis.xreadgroup(GROUP, self.consumer, {keys.CALLS: start}, count=count,
                                               block=block_ms if start == ">" else None)
            for _, entries in read_group(resp):
                if entries:
                    await self.handle([(eid, read_summary(f)) for eid, f in entries if f], now)
                    handled += len(entries)
        return handled

    async def handle(self, entries: list[tuple[str, dict[str, str]]], now: float | None = None) -> None:
        """Records go to Redis in chunks, one round trip each, carrying the audit
        entries of earlier chunks (``_Chunks``). A close waits for every record
        before it."""
        now = time.time() if now is None else now
        chunks = _Chunks(self, now)
        answered = await self._answered_by_pbx(entries)
        for _eid, s in entries:
            if s.get("callback_id"):
                # a callback's citizen leg after the conversation: not a call in, never a missed call
                chunks.carry += await self._survey_of_callback(s, now)
                continue
            if s.get("followup_id"):
                # a follow-up call (智能回访): what the citizen said, kept with the follow-up
                chunks.carry += await self._answer_of_followup(s, now)
                continue
            number = s.get("number", "")
            if not number or not number.isdigit():
                continue
            if s.get("uniqueid") in answered:
                chunks.carry.append({"kind": "suppressed", "at": now, "number": mask_number(number),
                                     "call": s.get("uniqueid"), "reason": "pbx_answered"})
                continue
            if reached_a_person(s):
                await chunks.send(drain=True)
                chunks.carry += await self._close_reached_later(number, s, now)
                continue
            record = self._record_of_miss(number, s, now)
            if record is not None:
                await chunks.add(*record)
        await chunks.send(drain=True)
        if chunks.carry:
            await self.store.audit.append(chunks.carry)
        if entries:
            # acknowledged only once a replica has the records (a failover loses none)
            await self.replication.wait()
            await self.redis.xack(keys.CALLS, GROUP, *[eid for eid, _ in entries])

    async def _answered_by_pbx(self, entries: list[tuple[str, dict[str, str]]]) -> set[str]:
        """Calls summarised from AMI alone (their engine died) that a PBX's
        queue_log saw answered (``keys.pbx_answered``): not missed calls. Only
        those summaries are looked up: an engine that ran the call saw its end."""
        uids = [s.get("uniqueid", "") for _, s in entries if s.get("source") == "ami" and not reached_a_person(s)]
        uids = [u for u in uids if u]
        if not uids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for u in uids:
            pipe.exists(keys.pbx_answered(u))
        return {u for u, hit in zip(uids, await pipe.execute(), strict=True) if hit}

    async def _survey_of_callback(self, s: dict[str, str], now: float) -> list[dict[str, Any]]:
        """The survey after a callback's conversation: its answer (or
        ``no_answer``), the seat and the time, kept on the callback's record.
        Returns its audit entry (none when not offered, or read before)."""
        rating, cid = s.get("survey", ""), s.get("callback_id", "")
        if not rating:
            return []           # not offered (an emergency callback, or the prompt never played)
        at = float(s.get("survey_at") or s.get("ended") or now)
        what, number = await self.store.record_survey(cid, rating=rating, seat=s.get("survey_seat", ""), at=at,
                                                      call=s.get("uniqueid", ""))
        if what != "recorded":
            if what == "unknown":
                self.log.warning("callback_survey_unknown_callback", callback=cid, call=s.get("uniqueid"))
            return []
        self.surveys += 1
        return [{"kind": "survey", "at": now, "id": cid, "number": mask_number(number), "rating": rating,
                 "seat": s.get("survey_seat", ""), "survey_at": at, "call": s.get("uniqueid")}]

    async def _answer_of_followup(self, s: dict[str, str], now: float) -> list[dict[str, Any]]:
        """A follow-up call's answers (was the matter heard, the rating, a voice
        comment) on its record, with an audit entry; nothing when it was not
        answered at all (the caller's outcome says so)."""
        fid = s.get("followup_id", "")
        flow_vars = dict(p.partition("=")[::2] for p in s.get("flow_vars", "").split(";") if "=" in p)
        heard, rating, comment = flow_vars.get(HEARD_VAR, ""), s.get("survey", ""), s.get("message", "")
        at = float(s.get("ended") or now)
        what, number = await self.followups.record_answer(fid, heard=heard, rating=rating, comment=comment, at=at,
                                                          call=s.get("uniqueid", ""), seat=s.get("survey_seat", ""))
        if what != "recorded":
            if what == "unknown":
                self.log.warning("followup_answer_unknown_followup", followup=fid, call=s.get("uniqueid"))
            return []
        self.followup_answers += 1
        return [{"kind": "followup_answered", "at": now, "id": audit_id(fid), "number": mask_number(number),
                 "heard": heard, "rating": rating, "comment": bool(comment), "answered_at": at,
                 "call": s.get("uniqueid")}]

    async def _close_reached_later(self, number: str, s: dict[str, str], now: float) -> list[dict[str, Any]]:
        """A citizen who got through on this call: close their open callback.
        Returns its audit entry (none when there was nothing to close)."""
        ok, cid = await self.store.close(number, now=now, reason="reached_later")
        if not ok:
            return []
        self.closed_later += 1
        return [{"kind": "closed", "at": now, "id": cid, "number": mask_number(number),
                 "reason": "reached_later", "call": s.get("uniqueid")}]

    def _record_of_miss(self, number: str, s: dict[str, str], now: float) -> tuple[str, _Meta] | None:
        """A missed call's record arguments and what its audit entry needs
        (number, miss, summary); None when the call is not a missed call."""
        miss = classify(s, self.policy)
        if miss is None:
            return None
        started = float(s.get("started") or now)
        not_before = (started + self.estimated_wait() if miss.kind == "courtesy"
                      else first_attempt_at(started, miss.kind == "emergency", self.tz, self.policy))
        wait = s.get("hold_s")
        args = self.store.record_args(
            number=number, now=now, started=started, kind=miss.kind, reason=miss.reason,
            flow=s.get("flow", ""), step=s.get("last_step", ""), wait_s=float(wait) if wait else None,
            message=s.get("message", ""), not_before=not_before, deadlines=self.policy.deadlines_s,
            misdial=miss.misdial)
        return args, (number, miss, s)

    def _audit_for(self, meta: list[_Meta], results: list[_Result], now: float) -> list[dict[str, Any]]:
        out = []
        for (number, miss, s), (what, cid, calls) in zip(meta, results, strict=True):
            self.recorded += what == "recorded"
            self.merged += what == "merged"
            self.misdials += what == "misdial"
            out.append({"kind": _AUDIT_KIND[what], "at": now, "id": cid, "number": mask_number(number),
                        "type": miss.kind, "reason": miss.reason, "calls": calls, "call": s.get("uniqueid"),
                        "flow": s.get("flow"), "step": s.get("last_step"), "message": bool(s.get("message"))})
        return out


class _Chunks:
    """The records of one ``handle`` batch, sent in chunks of ``CHUNK``, one round
    trip each, carrying the audit entries of earlier chunks. While Redis works on
    one chunk the next is prepared and the previous one's audit entries are worked
    out, so the two processes work at the same time."""

    def __init__(self, capture: MissedCallCapture, now: float) -> None:
        self.capture = capture
        self.now = now
        self.carry: list[dict[str, Any]] = []       # audit entries of work done, not yet written
        self.args: list[str] = []                   # the chunk being filled: record arguments
        self.meta: list[_Meta] = []                 # and (number, miss, summary) of each
        self.inflight: tuple[asyncio.Task[list[_Result]], list[_Meta]] | None = None

    async def add(self, args: str, meta: _Meta) -> None:
        self.args.append(args)
        self.meta.append(meta)
        if len(self.args) >= CHUNK:
            await self.send()

    async def _trip(self, chunk_args: list[str], audit_records: list[dict[str, Any]]) -> list[_Result]:
        store = self.capture.store
        pipe = self.capture.redis.pipeline(transaction=False)
        settle = await store.audit.queue_append(pipe, audit_records) if audit_records else None
        await store.queue_records(pipe, chunk_args)
        results = await pipe.execute()
        if settle is not None:
            await settle(results[0])
            results = results[1:]
        return store.parse_records(results)

    async def send(self, drain: bool = False) -> None:
        done = None
        if self.inflight is not None:
            done = (await self.inflight[0], self.inflight[1])
            self.inflight = None
        if self.args or (self.carry and not drain):
            self.inflight = (asyncio.create_task(self._trip(self.args, self.carry)), self.meta)
            self.carry, self.args, self.meta = [], [], []
            for _ in range(YIELDS_TO_SEND):
                await asyncio.sleep(0)
        if done is not None:          # worked out while the trip just sent is under way
            self.carry += self.capture._audit_for(done[1], done[0], self.now)
        if drain and self.inflight is not None:
            await self.send(drain=True)


CHUNK = 1000
# redis-py needs several turns of the loop to put a large pipeline on the
# socket (its drain waits); until it has, Redis has nothing to work on while we
# compute. Measured (chunks of 500): 3 turns left the two processes taking turns (15k/s),
# 20 let them work at once (19-20k/s); 20 turns cost ~0.1 ms per 500 calls.
YIELDS_TO_SEND = 20
_AUDIT_KIND = {"recorded": "recorded", "merged": "merged", "misdial": "recorded_misdial", "duplicate": "replayed"}
