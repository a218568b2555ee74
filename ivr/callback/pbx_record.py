"""The PBX's own record as evidence: Asterisk's ``queue_log`` reconciled
against the engine's (a leader part).

The engine learns how a queued caller fared from its own flow (the engine
that ran the call writes its summary) or from AMI (``reconcile.py``). Both go
blind when no engine watches: the only engine killed mid-flow, the dialplan
queues the caller itself, a seat answers, and nobody saw it; or a caller
queued with no engine reachable abandons while the leader changes hands.
The PBX wrote it all down regardless: app_queue appends every caller's
ENTERQUEUE, CONNECT, ABANDON, EXITWITHTIMEOUT... to its ``queue_log``.

This part reads that file (``ivr.pbxlog.tail``, in a worker thread, from the
position kept in Redis) and, in one Lua step per chunk, records each caller
of the chunk and the new position together (``APPLY``): a chunk counts once,
whichever leader reads it, and a second reader at the same position is
refused. A CONNECT also sets ``keys.pbx_answered(uniqueid)`` at once, which
the reconciliation's sweep and the capture read before they record a dead
engine's call as missed.

A caller who left a queue is settled a little later (``GRACE_S``: the engine's
own summary comes first when there is one):

- answered (CONNECT): the open callback of that number is closed when every
  missed call in it came before the answer (``CallbackStore.close_answered``,
  one step against the scheduler's claim: closed before anyone claims it, or,
  being dialled already, closed after that attempt). A dead engine's entry
  for the call is dropped, with an audit entry ``suppressed``: its sweep would
  have recorded a missed call. Looked at twice (``ANSWERED_CHECKS``): a
  missed-call summary the capture had not yet read is closed the second time.
- left without a seat (ABANDON, EXITWITHTIMEOUT, EXITEMPTY, EXITWITHKEY): if
  no summary of the call exists and no living engine holds it, a summary is
  written in the engine's place, once (the same mark as every other writer),
  and the capture records the missed call as usual. A caller the engine took
  out for a callback (WITHDRAW) is the engine's own.

Each caller keeps its verdict (``Verdict``) for the auditors' report:
matched (the engine's record agrees) or not, and what was done about it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from ivr.aio import cancelling
from ivr.callback import scripts
from ivr.callback.store import CallbackStore
from ivr.calls.service import CALLS_STREAM_MAXLEN
from ivr.clock import Clock
from ivr.errors import QueueLogLineInvalid
from ivr.logs import Log, mask_number
from ivr.pbxlog import tail
from ivr.pbxlog.queue_log import Entry, Outcome, caller_line_fields, parse_line
from ivr.redisdb import keys
from ivr.redisdb.durable import Replication
from ivr.redisdb.replies import fields, text_or_none, texts
from ivr.redisdb.report_hours import summary_written

GRACE_S = 3.0                   # after the caller left: the engine's summary (0.1 s batches) comes first
RECHECK_S = 5.0                 # a living engine still holds the call: look again
ANSWERED_RECHECK_S = 20.0       # an answered caller is looked at again after this (a summary in flight)
ANSWERED_CHECKS = 2
GIVE_UP_S = 6 * 3600            # a call a living engine holds this long is not ours to judge
MAX_AGE_S = 6 * 3600            # a caller who left longer ago than this is not recorded (a first read of an old file)
RETAIN_S = 14 * 24 * 3600       # callers kept for the auditors' report
ROUND_S = 0.5                   # between reads when the file has nothing new
SETTLE_BATCH = 200
# bytes per chunk, applied in one Lua step: about 200 lines, a few ms of Redis
# time (measured in docs/pbx-record.md); Redis serves nobody else meanwhile
CHUNK_BYTES = 16 * 1024
REASON = "pbx_answered"         # the callback's closed_reason

# the outcomes that end a caller's wait without a seat
_MISSED = {Outcome.ABANDONED: "ABANDONED", Outcome.TIMEOUT: "TIMEOUT", Outcome.KEY: "EXITWITHKEY"}


class Verdict(StrEnum):
    """What the reconciliation found for one caller of the PBX's record."""
    PENDING = "pending"                      # not settled yet
    AGREED = "agreed"                        # the engine's record says the same
    CALLBACK_CLOSED = "callback_closed"      # answered, but an open callback existed: closed
    CALLBACK_DIALLING = "callback_dialling"  # answered, its callback was being dialled: closed after
    ENGINE_BLIND = "engine_blind"            # answered while its engine was dead: no missed call recorded
    RECORDED = "recorded"                    # left without a seat, no engine saw it: missed call recorded
    ENGINE_HOLDS = "engine_holds"            # a living engine held it past GIVE_UP_S
    TOO_OLD = "too_old"                      # left without a seat before MAX_AGE_S: not recorded
    NO_NUMBER = "no_number"                  # left without a seat, number withheld: nobody to call back


MATCHED = frozenset({Verdict.AGREED})
SETTLED_UNMATCHED = frozenset({Verdict.CALLBACK_CLOSED, Verdict.CALLBACK_DIALLING, Verdict.ENGINE_BLIND,
                               Verdict.RECORDED, Verdict.ENGINE_HOLDS, Verdict.TOO_OLD, Verdict.NO_NUMBER})

# KEYS: position calls pending names
# ARGV: pbx call-prefix answered-prefix expect-inode expect-offset inode offset ttl answered-ttl due
#       read-at lines skipped note, then one tab-separated caller line each:
#       uniqueid at kind queue number agent seconds   (kind: enter | complete | an Outcome)
# Returns 1, or 0 when the stored position is not the expected one (another reader moved it).
APPLY = scripts.SPLIT + """
local pos = redis.call('HMGET', KEYS[1], 'inode', 'offset')
if (pos[1] or '0') ~= ARGV[4] or (pos[2] or '0') ~= ARGV[5] then return 0 end
local prefix, answered_prefix = ARGV[2], ARGV[3]
local ttl, answered_ttl, due = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
for i = 15, #ARGV do
  local e = split(ARGV[i])
  local uid, at, kind, queue, number, agent, secs = e[1], tonumber(e[2]), e[3], e[4], e[5], e[6], e[7]
  local key = prefix .. uid
  -- few commands per line: a chunk is one step, and Redis serves nobody else meanwhile
  if kind == 'enter' then
    if redis.call('HSETNX', key, 'entered', at) == 1 then
      redis.call('ZADD', KEYS[2], 'NX', at, uid)
      redis.call('EXPIRE', key, ttl)
    else
      redis.call('ZREM', KEYS[3], uid)          -- queued again: an earlier leave did not end the call
    end
    if number ~= '' then redis.call('HSET', key, 'number', number) end
    redis.call('HSET', key, 'uniqueid', uid, 'queue', queue, 'outcome', 'waiting', 'verdict', 'pending')
  elseif kind == 'complete' then
    redis.call('HSET', key, 'talk_s', secs)
  else
    if redis.call('HSETNX', key, 'entered', at - (tonumber(secs) or 0)) == 1 then   -- read from mid-wait
      redis.call('ZADD', KEYS[2], 'NX', at - (tonumber(secs) or 0), uid)
      redis.call('EXPIRE', key, ttl)
    end
    redis.call('HSET', key, 'uniqueid', uid, 'queue', queue, 'outcome', kind, 'left_at', at, 'wait_s', secs,
      'agent', agent, 'verdict', 'pending', 'checks', 0)
    redis.call('ZADD', KEYS[3], due, uid)
    if kind == 'answered' then redis.call('SET', answered_prefix .. uid, at, 'EX', answered_ttl) end
  end
end
redis.call('HSET', KEYS[1], 'inode', ARGV[6], 'offset', ARGV[7], 'read_at', ARGV[11], 'note', ARGV[14])
redis.call('HINCRBY', KEYS[1], 'lines', ARGV[12])
redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[13])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

# KEYS: summarised-mark calls-stream ; ARGV: summary-json ttl maxlen (as in reconcile.py)
_WRITE_ONCE = """
if redis.call('SET', KEYS[1], 'queue_log', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'j', ARGV[1])
  return 1
end
return 0
"""


def caller_line(e: Entry) -> str | None:
    """The APPLY argument of a queue_log entry about a caller; None for the rest."""
    parts = caller_line_fields(e)
    return None if parts is None else "\t".join(p.replace("\t", " ") for p in parts)


def summary(call: Mapping[str, str], *, engine_died: bool, emergency: bool) -> dict[str, str]:
    """A call summary (``ivr.calls.service.summary_fields``) of a caller the
    PBX saw leave a queue without a seat."""
    left = float(call.get("left_at") or 0)
    return {
        "uniqueid": call.get("uniqueid", ""), "number": call.get("number", ""), "flow": "", "version": "",
        "started": f"{float(call.get('entered') or left):.3f}", "ended": f"{left:.3f}",
        "outcome": "engine_lost" if engine_died else "dialplan_queue", "last_step": "queue", "steps": "",
        "wanted_person": "1", "emergency": "1" if emergency else "0", "queue": call.get("queue", ""),
        "queue_status": _MISSED.get(Outcome(call.get("outcome", "abandoned")), "ABANDONED"), "member": "",
        "hold_s": call.get("wait_s", ""), "message": "", "callback_accepted": "0", "sent_to_message": "0",
        "level": "", "digits": "", "failures": "", "source": "queue_log",
    }


@dataclass
class ReadStats:
    lines: int = 0
    skipped: int = 0
    refused: int = 0            # chunks another reader had applied first


class PbxRecord:
    """One PBX's queue_log, read and reconciled (the leader's ``pbx_record`` part)."""

    def __init__(self, redis: aioredis.Redis, store: CallbackStore, *, pbx: str, path: Path, clock: Clock,
                 log: Log, emergency_queues: Callable[[], frozenset[str]] = lambda: frozenset(),
                 grace_s: float = GRACE_S, max_age_s: float = MAX_AGE_S, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.redis = redis
        self.store = store
        self.pbx = pbx
        self.path = path
        self.clock = clock
        self.log = log
        self.emergency_queues = emergency_queues
        self.grace_s = grace_s
        self.max_age_s = max_age_s
        self.chunk_bytes = chunk_bytes
        self.stats = ReadStats()
        self._apply = redis.register_script(APPLY)
        self._write_once = redis.register_script(_WRITE_ONCE)
        self.replication = Replication(redis)
        self._last_trim = 0.0
        self._missing_said = False

    # -- reading ---------------------------------------------------------------------

    async def position(self) -> tail.Position:
        h = fields(await self.redis.hgetall(keys.pbx_log_position(self.pbx)))
        return tail.Position(int(h.get("inode") or 0), int(h.get("offset") or 0))

    async def read_once(self) -> tail.Chunk:
        """Read the next chunk of the file (in a worker thread) and apply it."""
        pos = await self.position()
        chunk = await asyncio.to_thread(tail.read, self.path, pos, self.chunk_bytes)
        if chunk.note == "missing" and not self._missing_said:   # said once: a leader on a host without the file
            self.log.warning("queue_log_missing", pbx=self.pbx, path=str(self.path))
        self._missing_said = chunk.note == "missing"
        if chunk.position == pos and not chunk.lines:
            return chunk
        if chunk.note in ("rotated_unseen", "truncated"):
            self.log.warning("queue_log_" + chunk.note, pbx=self.pbx, path=str(self.path), offset=pos.offset)
        now = self.clock.now()
        args, skipped = [], 0
        for line in chunk.lines:
            if not line:
                continue
            try:
                entry = parse_line(line)
            except QueueLogLineInvalid as exc:
                if not skipped:                 # the first of the chunk, not a line per garbled line
                    self.log.warning("queue_log_line_skipped", pbx=self.pbx, error=str(exc))
                skipped += 1
                continue
            # a first read of a file kept for a year: only what the report keeps
            arg = caller_line(entry) if entry.at >= now - RETAIN_S else None
            if arg is not None:
                args.append(arg)
        ok = await self._apply(
            keys=[keys.pbx_log_position(self.pbx), keys.pbx_queue_calls(self.pbx), keys.pbx_queue_pending(self.pbx),
                  keys.PBX_RECORD_NAMES],
            args=[self.pbx, keys.pbx_queue_call_prefix(self.pbx), keys.PBX_ANSWERED_PREFIX, pos.inode, pos.offset,
                  chunk.position.inode, chunk.position.offset, int(RETAIN_S), keys.CALL_SUMMARISED_TTL_S,
                  now + self.grace_s, now, len(chunk.lines), skipped, chunk.note, *args])
        if not ok:
            self.stats.refused += 1
            return tail.Chunk([], pos)
        self.stats.lines += len(chunk.lines)
        self.stats.skipped += skipped
        return chunk

    # -- settling --------------------------------------------------------------------

    async def settle_due(self) -> int:
        """Settle the callers whose time has come; returns how many."""
        now = self.clock.now()
        pending = keys.pbx_queue_pending(self.pbx)
        uids = texts(await self.redis.zrangebyscore(pending, "-inf", now, start=0, num=SETTLE_BATCH))
        for uid in uids:
            key = keys.pbx_queue_call_prefix(self.pbx) + uid
            call = fields(await self.redis.hgetall(key))
            if not call or call.get("outcome") in (None, "", "waiting"):
                await self.redis.zrem(pending, uid)
                continue
            verdict, again = await self._settle(uid, call, now)
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, mapping={"verdict": verdict, "settled_at": f"{now:.3f}",
                                    "checks": int(call.get("checks") or 0) + 1})
            if again is None:
                pipe.zrem(pending, uid)
            else:
                pipe.zadd(pending, {uid: now + again})
            await pipe.execute()
        if time.monotonic() - self._last_trim > 600:
            self._last_trim = time.monotonic()
            await self.redis.zremrangebyscore(keys.pbx_queue_calls(self.pbx), "-inf", now - RETAIN_S)
        return len(uids)

    async def _settle(self, uid: str, call: dict[str, str], now: float) -> tuple[str, float | None]:
        """(verdict, look again after this many seconds or None)."""
        outcome = call.get("outcome", "")
        if outcome == Outcome.ANSWERED:
            return await self._answered(uid, call, now)
        if outcome == Outcome.WITHDRAWN:
            return Verdict.AGREED, None
        return await self._left(uid, call, now)

    async def _holder(self, uid: str) -> tuple[str, bool]:
        """The engine that held the call in ``CALLS_LIVE`` ('' none) and whether it is alive."""
        holder = text_or_none(await self.redis.hget(keys.CALLS_LIVE, uid)) or ""
        owner = holder.partition("|")[0]
        return owner, bool(owner) and bool(await self.redis.exists(keys.engine_alive(owner)))

    async def _answered(self, uid: str, call: dict[str, str], now: float) -> tuple[str, float | None]:
        number = call.get("number", "")
        checks = int(call.get("checks") or 0) + 1
        previous = call.get("verdict", "")
        again = ANSWERED_RECHECK_S if checks < ANSWERED_CHECKS else None
        entries: list[dict[str, Any]] = []
        verdict = previous if previous in SETTLED_UNMATCHED else Verdict.AGREED
        owner, alive = await self._holder(uid)
        if owner and not alive and await self.redis.hdel(keys.CALLS_LIVE, uid):
            # its engine died before it could summarise: the sweep would have recorded a missed call
            verdict = Verdict.ENGINE_BLIND
            entries.append({"kind": "suppressed", "at": now, "number": mask_number(number), "call": uid,
                            "pbx": self.pbx, "reason": REASON, "engine": owner})
            self.log.warning("missed_call_not_recorded_pbx_answered", call_id=uid, number=mask_number(number),
                             pbx=self.pbx, engine=owner)
        elif not owner and verdict == Verdict.AGREED and not await self.redis.exists(keys.call_summarised(uid)):
            verdict = Verdict.ENGINE_BLIND      # no engine holds or summarised it: the PBX's is the only record
        if number.isdigit():
            what, cid = await self.store.close_answered(number, answered_at=float(call.get("left_at") or now),
                                                        now=now, reason=REASON)
            if what == "closed":
                verdict = Verdict.CALLBACK_CLOSED
                entries.append({"kind": "closed", "at": now, "id": cid, "number": mask_number(number),
                                "reason": REASON, "call": uid, "pbx": self.pbx})
                self.log.warning("callback_closed_pbx_answered", callback=cid, call_id=uid,
                                 number=mask_number(number), pbx=self.pbx)
            elif what == "assigned":
                verdict = Verdict.CALLBACK_DIALLING
                again = None
        if entries:
            await self.store.audit.append(entries)
            await self.replication.wait()
        return verdict, again

    async def _left(self, uid: str, call: dict[str, str], now: float) -> tuple[str, float | None]:
        if await self.redis.exists(keys.call_summarised(uid)):
            return Verdict.AGREED, None
        owner, alive = await self._holder(uid)
        left_at = float(call.get("left_at") or now)
        if alive:
            return (Verdict.ENGINE_HOLDS, None) if now - left_at > GIVE_UP_S else (Verdict.PENDING, RECHECK_S)
        if now - left_at > self.max_age_s:
            return Verdict.TOO_OLD, None
        if not call.get("number", "").isdigit():
            return Verdict.NO_NUMBER, None
        s = summary(call, engine_died=bool(owner), emergency=call.get("queue", "") in self.emergency_queues())
        ok = await self._write_once(keys=[keys.call_summarised(uid), keys.CALLS],
                                    args=[orjson.dumps(s).decode(), keys.CALL_SUMMARISED_TTL_S, CALLS_STREAM_MAXLEN])
        if not ok:
            return Verdict.AGREED, None          # another writer got there first
        await summary_written(self.redis, s)
        await self.replication.wait()
        if owner:
            await self.redis.hdel(keys.CALLS_LIVE, uid)
        self.log.warning("missed_call_from_queue_log", call_id=uid, number=mask_number(call.get("number", "")),
                         pbx=self.pbx, queue=call.get("queue"), status=s["queue_status"], engine_died=bool(owner))
        return Verdict.RECORDED, None

    # -- the part's loop ---------------------------------------------------------------

    async def run(self) -> None:
        while not cancelling():
            chunk = await self.read_once()
            await self.settle_due()
            if not chunk.more:
                await asyncio.sleep(ROUND_S)


# -- the auditors' view ------------------------------------------------------------------

READ_PAGE = 500


async def pbx_names(redis: aioredis.Redis) -> list[str]:
    """The PBXs whose queue_log was ever read."""
    return sorted(texts(list(await redis.smembers(keys.PBX_RECORD_NAMES))))


async def read_position(redis: aioredis.Redis, pbx: str) -> dict[str, str]:
    """Where the reading of ``pbx``'s queue_log stands (``keys.pbx_log_position``)."""
    return fields(await redis.hgetall(keys.pbx_log_position(pbx)))


async def calls_in(redis: aioredis.Redis, pbx: str, start: float, end: float,
                   limit: int = 10_000) -> tuple[list[dict[str, str]], bool]:
    """The callers of ``pbx``'s queue_log who entered a queue in [start, end),
    oldest first, with their verdicts; and whether ``limit`` cut the list."""
    uids = texts(await redis.zrangebyscore(keys.pbx_queue_calls(pbx), start, f"({end}", start=0, num=limit + 1))
    cut = len(uids) > limit
    out: list[dict[str, str]] = []
    prefix = keys.pbx_queue_call_prefix(pbx)
    for at in range(0, min(len(uids), limit), READ_PAGE):
        pipe = redis.pipeline(transaction=False)
        for uid in uids[at:at + READ_PAGE]:
            pipe.hgetall(prefix + uid)
        out += [fields(h) for h in await pipe.execute() if h]
    return out, cut
