"""Missed calls that survive the engine.

A caller inside ``EXEC Queue`` when their engine dies stays in the queue
(app_queue runs in the channel's own thread, fact 11); a caller the dialplan
queued itself (no engine reachable, or the engine died in the flow) never had
an engine. When such a caller abandons or leaves the queue without a seat, no
engine will write a call summary. AMI still reports it (``QueueCallerAbandon``
/ ``QueueCallerLeave``), and the leader writes the summary in the engine's
place, so the capture records the missed call like any other.

Exactly once: engines keep ``CALLS_LIVE`` (uniqueid -> engine) and mark every
call they summarise (``call_summarised``). A short while after the caller left
the queue (``GRACE_S``, longer than an engine's summary batch), the leader
looks: already summarised -> nothing to do; still held by an engine that is
alive -> look again later (the flow goes on after a queue timeout); otherwise
it writes the summary, atomically with the mark, so a second leader or a late
look never writes it twice. A withdrawn caller is also reported as an abandon
(fact 8): their engine is alive and summarises the call itself.

Calls whose engine died and that AMI never showed leaving a queue (they hung
up in the flow, or left a queue while no process held the AMI link, or the
engine died with their summary unwritten) are found by ``sweep``: an entry of
``CALLS_LIVE`` whose engine is dead, whose caller is not waiting in a queue now
and was not seen answered, is summarised as a missed call of unknown outcome.
A citizen called back without need is better than one lost. With several
PBXs, a call that may be on a PBX whose link is down is left until it is back
(``blind``: the PBX's ``systemname`` in the uniqueid, ``ami/city.py``); the
other PBXs' calls are settled meanwhile.

What it cannot see: a caller the dialplan queued with no engine at all, who
abandoned while no process held the AMI link (the leader changing hands, a few
seconds), and a dead engine's caller whom a seat answered while nobody watched
AMI (the sweep would call them back). The PBX's own ``queue_log`` saw both:
``pbx_record.py`` reads it, records the first, and marks the second answered
(``keys.pbx_answered``), a mark the summaries written here never override.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis

from ivr.aio import cancelling
from ivr.calls.service import CALLS_STREAM_MAXLEN
from ivr.clock import Clock
from ivr.logs import Log, mask_number
from ivr.redisdb import keys
from ivr.redisdb.durable import Replication
from ivr.redisdb.replies import text_or_none
from ivr.redisdb.report_hours import summary_written

if TYPE_CHECKING:
    from ivr.ami.model import AmiEvent

GRACE_S = 5.0               # wall seconds: engines write summaries every 0.1 s
RECHECK_S = 5.0
GIVE_UP_S = 6 * 3600        # a call an engine still holds after this is not ours to judge
CLEANUP_EVERY_S = 15.0

# KEYS: summarised-mark calls-stream pbx-answered-mark ; ARGV: summary-json ttl maxlen
# Nothing is written for a call the PBX's queue_log saw answered (pbx_record.py).
_WRITE_ONCE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('SET', KEYS[1], 'ami', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'j', ARGV[1])
  return 1
end
return 0
"""


@dataclass
class _Left:
    uniqueid: str
    number: str
    queue: str
    joined_at: float
    left_at: float
    status: str                 # ABANDONED | TIMEOUT (left without a seat)
    hold_s: float | None
    due: float                  # wall monotonic
    first_due: float


class QueueReconciler:
    def __init__(self, redis: aioredis.Redis, *, clock: Clock, emergency_queues: frozenset[str], log: Log,
                 grace_s: float = GRACE_S, waiting: Callable[[], AbstractSet[str] | None] | None = None,
                 blind: Callable[[str], bool] | None = None) -> None:
        self.redis = redis
        self.clock = clock
        self.emergency_queues = emergency_queues
        self.log = log
        self.grace_s = grace_s
        self.joined: dict[str, tuple[str, str, float]] = {}   # uniqueid -> (number, queue, joined at)
        self.connected: set[str] = set()
        self.abandoned: dict[str, float | None] = {}          # uniqueid -> hold time
        self.pending: dict[str, _Left] = {}
        self.written = 0
        self._write_once = redis.register_script(_WRITE_ONCE)
        self.replication = Replication(redis)
        self._last_cleanup = time.monotonic()
        self.waiting = waiting        # () -> uniqueids waiting in a queue now, or None while AMI is not in sync
        self.blind = blind            # uniqueid -> its call may be on a PBX whose AMI link is not in sync
        self._suspects: set[str] = set()

    # -- AMI events (called by the controller for every event) ---------------------

    def on_event(self, event: AmiEvent) -> None:
        name = event.get("Event")
        if name not in ("QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "QueueCallerLeave"):
            return
        uid = event.get("Uniqueid", "")
        if not uid:
            return
        if name == "QueueCallerJoin":
            self.pending.pop(uid, None)          # back in a queue (the dialplan's own, after a timeout)
            self.connected.discard(uid)
            self.abandoned.pop(uid, None)
            self.joined[uid] = (event.get("CallerIDNum", ""), event.get("Queue", ""), self.clock.now())
        elif name == "AgentConnect":
            self.connected.add(uid)
        elif name == "QueueCallerAbandon":
            self.abandoned[uid] = _float(event.get("HoldTime"))
        else:   # QueueCallerLeave: comes before AgentConnect for an answered call, so decide later
            number, queue, joined_at = self.joined.pop(uid, (event.get("CallerIDNum", ""), event.get("Queue", ""),
                                                             self.clock.now()))
            now_m = time.monotonic()
            self.pending[uid] = _Left(uid, number, queue, joined_at, self.clock.now(), "", None,
                                      now_m + self.grace_s, now_m)

    # -- the part's loop ---------------------------------------------------------------

    async def run(self) -> None:
        while not cancelling():
            await self.run_once()
            await asyncio.sleep(0.5)

    async def run_once(self) -> int:
        """Settle what is due; returns how many summaries were written."""
        now_m = time.monotonic()
        due = [p for p in self.pending.values() if p.due <= now_m]
        wrote = 0
        for p in due:
            if p.uniqueid in self.connected:        # a seat took the call: nothing missed
                await self._answered(p.uniqueid)
                self._forget(p.uniqueid)
                continue
            hold = self.abandoned.get(p.uniqueid)
            p.status = "ABANDONED" if p.uniqueid in self.abandoned else "TIMEOUT"
            p.hold_s = hold if hold is not None else round(p.left_at - p.joined_at, 1)
            verdict = await self._settle(p)
            if verdict == "later" and now_m - p.first_due < GIVE_UP_S:
                p.due = now_m + RECHECK_S
                continue
            wrote += verdict == "written"
            self._forget(p.uniqueid)
        if now_m - self._last_cleanup >= CLEANUP_EVERY_S:
            self._last_cleanup = now_m
            wrote += await self.sweep()
        return wrote

    async def _answered(self, uid: str) -> None:
        """A dead engine's caller whom a seat answered: no summary is owed (a
        live engine writes its own and clears its entry)."""
        holder = text_or_none(await self.redis.hget(keys.CALLS_LIVE, uid))
        if holder and not await self.redis.exists(keys.engine_alive(holder.split("|", 1)[0])):
            await self.redis.hdel(keys.CALLS_LIVE, uid)

    def _forget(self, uid: str) -> None:
        self.pending.pop(uid, None)
        self.connected.discard(uid)
        self.abandoned.pop(uid, None)

    async def _settle(self, p: _Left) -> str:
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.call_summarised(p.uniqueid))
        pipe.hget(keys.CALLS_LIVE, p.uniqueid)
        summarised, holder = await pipe.execute()
        if summarised:
            return "summarised"
        if holder:
            owner = holder.split("|", 1)[0]
            if owner and await self.redis.exists(keys.engine_alive(owner)):
                return "later"                      # its engine lives and will summarise it
        summary = self._summary(p, engine_died=bool(holder))
        ok = await self._write_once(keys=[keys.call_summarised(p.uniqueid), keys.CALLS,
                                          keys.pbx_answered(p.uniqueid)],
                                    args=[orjson.dumps(summary).decode(), keys.CALL_SUMMARISED_TTL_S,
                                          CALLS_STREAM_MAXLEN])
        if not ok:
            return "summarised"
        await summary_written(self.redis, summary)
        await self.replication.wait()
        if holder:
            await self.redis.hdel(keys.CALLS_LIVE, p.uniqueid)
        self.written += 1
        self.log.warning("missed_call_from_ami", call_id=p.uniqueid, number=mask_number(p.number), queue=p.queue,
                         status=p.status, engine_died=bool(holder))
        return "written"

    def _summary(self, p: _Left, *, engine_died: bool) -> dict[str, str]:
        """A call summary (ivr.calls.service.summary_fields) from what AMI told."""
        return {
            "uniqueid": p.uniqueid, "number": p.number if p.number.isdigit() else "", "flow": "", "version": "",
            "started": f"{p.joined_at:.3f}", "ended": f"{p.left_at:.3f}",
            "outcome": "engine_lost" if engine_died else "dialplan_queue",
            "last_step": "queue", "steps": "", "wanted_person": "1",
            "emergency": "1" if p.queue in self.emergency_queues else "0",
            "queue": p.queue, "queue_status": p.status, "member": "",
            "hold_s": "" if p.hold_s is None else str(p.hold_s), "message": "", "callback_accepted": "0",
            "sent_to_message": "0", "level": "", "digits": "", "failures": "", "source": "ami",
        }

    async def sweep(self) -> int:
        """Settle ``CALLS_LIVE`` entries of engines that died: answered ones are
        dropped, ones still waiting in a queue are left to the events, the rest
        are summarised (missed, outcome unknown). Returns how many were written."""
        waiting = self.waiting() if self.waiting is not None else None
        if waiting is None:
            return 0                      # not in sync with AMI: cannot tell who is still waiting
        alive: dict[str, bool] = {}
        dead: list[tuple[str, str, float, str]] = []
        suspects: set[str] = set()
        async for uid, holder in self.redis.hscan_iter(keys.CALLS_LIVE, count=1000):
            owner, _, rest = holder.partition("|")
            started, _, number = rest.partition("|")
            if owner not in alive:
                alive[owner] = bool(await self.redis.exists(keys.engine_alive(owner)))
            if self.blind is not None and self.blind(uid):
                continue                  # on a PBX out of sync: it may be waiting there
            if not alive[owner] and uid not in self.pending and uid not in waiting:
                # judged only when seen so in two sweeps running: a caller the
                # dialplan is moving from a dead engine to a queue is not missed
                suspects.add(uid)
                if uid in self._suspects:
                    dead.append((uid, owner, _float(started) or self.clock.now(), number))
        self._suspects = suspects - {d[0] for d in dead}
        wrote = 0
        for uid, owner, started, number in dead:
            if uid in self.connected or await self.redis.exists(keys.call_summarised(uid), keys.pbx_answered(uid)):
                await self.redis.hdel(keys.CALLS_LIVE, uid)
                self.connected.discard(uid)
                continue
            left = _Left(uid, number, "", started, self.clock.now(), "", None, 0.0, 0.0)
            summary = self._summary(left, engine_died=True)
            ok = await self._write_once(keys=[keys.call_summarised(uid), keys.CALLS, keys.pbx_answered(uid)],
                                        args=[orjson.dumps(summary).decode(), keys.CALL_SUMMARISED_TTL_S,
                                              CALLS_STREAM_MAXLEN])
            await self.redis.hdel(keys.CALLS_LIVE, uid)
            if ok:
                await summary_written(self.redis, summary)
                wrote += 1
                self.written += 1
                self.log.warning("missed_call_from_dead_engine", call_id=uid, number=mask_number(number),
                                 engine=owner)
        if wrote:
            await self.replication.wait()
        return wrote


def _float(v: Any) -> float | None:
    """An AMI header or a stored text as a number; None for a missing or garbled one."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
