"""Missed-call capture: reads the call summaries every engine process writes to
``ivr:calls`` (a consumer group, so a restart resumes where it stopped and two
capture processes share the work) and records each missed call, or closes the
open callback of a citizen who got through on a later call.

Order per batch: the state change (idempotent: a replayed call is recognised by
its start time), then its audit entry, then the acknowledgement. A crash can
repeat an audit entry ("replayed"), never lose one.
"""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ivr import redis_keys as keys
from ivr.callback.policy import Policy, classify, first_attempt_at, reached_a_person
from ivr.callback.store import CallbackStore
from ivr.calls import read_summary
from ivr.logs import mask_number

GROUP = "callbacks"


class MissedCallCapture:
    def __init__(self, redis: aioredis.Redis, store: CallbackStore, policy: Policy, tz: ZoneInfo, log,
                 *, consumer: str = "capture-1", estimated_wait=lambda: 0.0) -> None:
        self.redis = redis
        self.store = store
        self.policy = policy
        self.tz = tz
        self.log = log
        self.consumer = consumer
        self.estimated_wait = estimated_wait   # seconds until a courtesy caller's place reaches a seat
        self.recorded = self.merged = self.closed_later = self.misdials = 0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.CALLS, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_once(self, count: int = 500, block_ms: int | None = None) -> int:
        """Process what is waiting (pending entries of this consumer first)."""
        handled = 0
        for start in ("0", ">"):
            resp = await self.redis.xreadgroup(GROUP, self.consumer, {keys.CALLS: start}, count=count,
                                               block=block_ms if start == ">" else None)
            for _, entries in resp or []:
                if entries:
                    await self.handle([(eid, read_summary(f)) for eid, f in entries if f])
                    handled += len(entries)
        return handled

    async def handle(self, entries: list[tuple[str, dict]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        audit: list[dict] = []
        batch: list[list] = []
        meta: list[tuple[str, object, dict]] = []

        async def flush() -> None:
            # records go in pipelined batches; a close waits for the records before it
            results = await self.store.record_many(batch) if batch else []
            for (number, miss, s), (what, cid, calls) in zip(meta, results):
                self.recorded += what == "recorded"
                self.merged += what == "merged"
                self.misdials += what == "misdial"
                audit.append({"kind": _AUDIT_KIND[what], "at": now, "id": cid, "number": mask_number(number),
                              "type": miss.kind, "reason": miss.reason, "calls": calls, "call": s.get("uniqueid"),
                              "flow": s.get("flow"), "step": s.get("last_step"), "message": bool(s.get("message"))})
            batch.clear()
            meta.clear()

        for eid, s in entries:
            number = s.get("number", "")
            if not number or not number.isdigit():
                continue
            if reached_a_person(s):
                await flush()
                ok, cid = await self.store.close(number, now=now, reason="reached_later")
                if ok:
                    self.closed_later += 1
                    audit.append({"kind": "closed", "at": now, "id": cid, "number": mask_number(number),
                                  "reason": "reached_later", "call": s.get("uniqueid")})
                continue
            miss = classify(s, self.policy)
            if miss is None:
                continue
            started = float(s.get("started") or now)
            not_before = (started + self.estimated_wait() if miss.kind == "courtesy"
                          else first_attempt_at(started, miss.kind == "emergency", self.tz, self.policy))
            wait = s.get("hold_s")
            batch.append(self.store.record_args(
                number=number, now=now, started=started, kind=miss.kind, reason=miss.reason,
                flow=s.get("flow", ""), step=s.get("last_step", ""), wait_s=float(wait) if wait else None,
                message=s.get("message", ""), not_before=not_before, deadlines=self.policy.deadlines_s,
                misdial=miss.misdial))
            meta.append((number, miss, s))
        await flush()
        if audit:
            await self.store.audit.append(audit)
        if entries:
            await self.redis.xack(keys.CALLS, GROUP, *[eid for eid, _ in entries])


_AUDIT_KIND = {"recorded": "recorded", "merged": "merged", "misdial": "recorded_misdial", "duplicate": "replayed"}
