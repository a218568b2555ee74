"""Missed calls and callbacks in Redis. Every change is one Lua script, so two
scheduler processes, or a crash and a restart, never dial one citizen twice at
the same time and never lose one.

Keys (standalone Redis: the scripts build record keys from the number):
- ``ivr:cb:n:<number>`` hash: the one open callback of a number (repeated
  attempts merge into it); on close it is renamed ``ivr:cb:id:<id>``.
- ``ivr:cb:pending`` zset number -> when it may next be dialled;
  ``ivr:cb:ready`` zset number -> rank (emergency first, then deadline);
  ``ivr:cb:claims`` zset number -> lease expiry of the process dialling it.
- ``ivr:cb:closed`` zset id -> closed at (reports); ``ivr:cb:seq`` ids.
Every state change is also appended to the hash-chained ``ivr:audit:callbacks``.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from ivr import redis_keys as keys
from ivr.audit import AuditLog

P = "ivr:cb:"
PENDING, READY, CLAIMS, CLOSED, SEQ = P + "pending", P + "ready", P + "claims", P + "closed", P + "seq"
AUDIT = keys.CALLBACK_AUDIT
KIND_ORDER = {"ordinary": 0, "courtesy": 1, "emergency": 2}

# ARGV: number now started kind reason flow step wait message not_before
#       deadline_emergency deadline_courtesy deadline_ordinary misdial
_SPLIT = """
local function split(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, '\t', i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
"""

_RECORD = _SPLIT + """
local function record(A)
local number, now, started = A[1], tonumber(A[2]), tonumber(A[3])
local kind, reason = A[4], A[5]
local key = 'ivr:cb:n:' .. number
local dl = {emergency=tonumber(A[11]), courtesy=tonumber(A[12]), ordinary=tonumber(A[13])}
local order = {ordinary=0, courtesy=1, emergency=2}
if A[14] == '1' then
  local id = redis.call('INCR', KEYS[4])
  local ckey = 'ivr:cb:id:' .. id
  redis.call('HSET', ckey, 'id', id, 'number', number, 'state', 'closed', 'kind', kind, 'reason', reason,
    'first_at', started, 'last_at', started, 'calls', 1, 'attempts', 0, 'flow', A[6], 'step', A[7],
    'wait_s', A[8], 'closed_at', now, 'closed_reason', 'misdial', 'deadline', started)
  redis.call('ZADD', KEYS[5], now, id)
  return {'misdial', id, 1}
end
local cur = redis.call('HMGET', key, 'id', 'last_at', 'kind', 'first_at', 'state', 'calls')
if cur[1] then
  if tonumber(cur[2]) >= started then return {'duplicate', cur[1], tonumber(cur[6])} end
  local k = cur[3]
  local upgraded = order[kind] > order[k]
  if upgraded then
    -- a higher kind has a shorter deadline: it still runs from the first call
    k = kind
    local deadline = tonumber(cur[4]) + dl[k]
    redis.call('HSET', key, 'kind', k, 'deadline', deadline)
    if cur[5] == 'open' then
      local score = (k == 'emergency' and 0 or 1) * 1e10 + deadline
      if redis.call('ZSCORE', KEYS[2], number) then redis.call('ZADD', KEYS[2], score, number) end
      if k == 'emergency' and redis.call('ZREM', KEYS[1], number) == 1 then
        redis.call('ZADD', KEYS[2], score, number)
      end
    end
  end
  if A[9] ~= '' then
    redis.call('HSET', key, 'last_at', started, 'last_reason', reason, 'message', A[9])
  else
    redis.call('HSET', key, 'last_at', started, 'last_reason', reason)
  end
  local calls = redis.call('HINCRBY', key, 'calls', 1)
  return {'merged', cur[1], calls}
end
local id = redis.call('INCR', KEYS[4])
local deadline = started + dl[kind]
redis.call('HSET', key, 'id', id, 'number', number, 'state', 'open', 'kind', kind, 'reason', reason,
  'first_at', started, 'last_at', started, 'calls', 1, 'attempts', 0, 'flow', A[6], 'step', A[7],
  'wait_s', A[8], 'message', A[9], 'deadline', deadline)
local nb = tonumber(A[10])
if nb <= now then
  redis.call('ZADD', KEYS[2], (kind == 'emergency' and 0 or 1) * 1e10 + deadline, number)
else
  redis.call('ZADD', KEYS[1], nb, number)
end
return {'recorded', id, 1}
end
-- ARGV: one tab-separated record per missed call, in order
local out = {}
for i = 1, #ARGV do
  local r = record(split(ARGV[i]))
  out[#out + 1] = r[1]; out[#out + 1] = r[2]; out[#out + 1] = r[3]
end
return out
"""

# KEYS: pending ready claims ; ARGV: now lease_until owner count
_CLAIM = """
local now, lease, owner, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
for _, number in ipairs(due) do
  local h = redis.call('HMGET', 'ivr:cb:n:' .. number, 'kind', 'deadline')
  redis.call('ZREM', KEYS[1], number)
  if h[1] then redis.call('ZADD', KEYS[2], (h[1] == 'emergency' and 0 or 1) * 1e10 + tonumber(h[2]), number) end
end
local recovered = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
for _, number in ipairs(dead) do
  local key = 'ivr:cb:n:' .. number
  local h = redis.call('HMGET', key, 'kind', 'deadline')
  redis.call('ZREM', KEYS[3], number)
  if h[1] then
    redis.call('HSET', key, 'state', 'open', 'owner', '')
    redis.call('HINCRBY', key, 'recovered', 1)
    redis.call('ZADD', KEYS[2], (h[1] == 'emergency' and 0 or 1) * 1e10 + tonumber(h[2]), number)
    recovered = recovered + 1
  end
end
local out = {recovered}
if n <= 0 then return out end
local popped = redis.call('ZPOPMIN', KEYS[2], n)
for i = 1, #popped, 2 do
  local number = popped[i]
  local key = 'ivr:cb:n:' .. number
  redis.call('HSET', key, 'state', 'assigned', 'owner', owner, 'claimed_at', now)
  redis.call('ZADD', KEYS[3], lease, number)
  table.insert(out, number)
end
return out
"""

# KEYS: claims ; ARGV: lease_until owner number...
# Extends the lease of attempts still under way; only the owner's claims.
_RENEW = """
local n = 0
for i = 3, #ARGV do
  if redis.call('HGET', 'ivr:cb:n:' .. ARGV[i], 'owner') == ARGV[2] then
    n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i])
  end
end
return n
"""

# KEYS: pending claims closed ; ARGV: number owner outcome seat now next_at('' = close) close_reason
_FINISH = """
local key = 'ivr:cb:n:' .. ARGV[1]
if redis.call('HGET', key, 'owner') ~= ARGV[2] then return {0, ''} end
redis.call('ZREM', KEYS[2], ARGV[1])
local attempts = ARGV[3] == 'seat_no_answer' and tonumber(redis.call('HGET', key, 'attempts'))
  or redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_outcome', ARGV[3], 'last_seat', ARGV[4], 'last_attempt_at', ARGV[5], 'owner', '')
if redis.call('HGET', key, 'first_callback_at') == false and ARGV[3] ~= 'seat_no_answer' then
  redis.call('HSET', key, 'first_callback_at', ARGV[5])
end
if ARGV[6] == '' then
  local id = redis.call('HGET', key, 'id')
  redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[5], 'closed_reason', ARGV[7])
  redis.call('RENAME', key, 'ivr:cb:id:' .. id)
  redis.call('ZADD', KEYS[3], ARGV[5], id)
  return {1, 'closed'}
end
redis.call('HSET', key, 'state', 'open')
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
return {1, 'rescheduled'}
"""

# KEYS: pending ready claims closed ; ARGV: number now reason require_open('1' = only if not assigned)
_CLOSE = """
local key = 'ivr:cb:n:' .. ARGV[1]
local st = redis.call('HGET', key, 'state')
if not st then return {0, ''} end
if st == 'assigned' then
  redis.call('HSET', key, 'close_after_attempt', ARGV[3])
  return {0, 'assigned'}
end
local id = redis.call('HGET', key, 'id')
redis.call('ZREM', KEYS[1], ARGV[1]); redis.call('ZREM', KEYS[2], ARGV[1]); redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', key, 'state', 'closed', 'closed_at', ARGV[2], 'closed_reason', ARGV[3])
redis.call('RENAME', key, 'ivr:cb:id:' .. id)
redis.call('ZADD', KEYS[4], ARGV[2], id)
return {1, id}
"""


class CallbackStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = AuditLog(redis, AUDIT)
        self._record = redis.register_script(_RECORD)
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._renew = redis.register_script(_RENEW)
        self._close = redis.register_script(_CLOSE)

    def record_args(self, *, number: str, now: float, started: float, kind: str, reason: str, flow: str,
                    step: str, wait_s: float | None, message: str, not_before: float,
                    deadlines: dict[str, float], misdial: bool) -> str:
        """One missed call as the record script reads it: fields joined by tabs
        (one argument per call: redis-py's packer costs per argument)."""
        text = "\t".join((flow, step, message))
        if "\t" in text:
            flow, step, message = (x.replace("\t", " ") for x in (flow, step, message))
        return (f"{number}\t{now}\t{started}\t{kind}\t{reason}\t{flow}\t{step}\t"
                f"{'' if wait_s is None else round(wait_s, 1)}\t{message}\t{not_before}\t{deadlines['emergency']}\t"
                f"{deadlines['courtesy']}\t{deadlines['ordinary']}\t{'1' if misdial else '0'}")

    async def record(self, args: str) -> tuple[str, str, int]:
        return (await self.record_many([args]))[0]

    async def queue_records(self, pipe, batch: list[str], chunk: int = 250) -> int:
        """Queue the record script for ``batch`` in ``pipe``; returns how many
        results it will add (one per chunk; see ``parse_records``)."""
        calls = 0
        for i in range(0, len(batch), chunk):
            await self._record(keys=[PENDING, READY, CLAIMS, SEQ, CLOSED], args=batch[i:i + chunk], client=pipe)
            calls += 1
        return calls

    @staticmethod
    def parse_records(results: list) -> list[tuple[str, str, int]]:
        return [(flat[j], str(flat[j + 1]), int(flat[j + 2])) for flat in results for j in range(0, len(flat), 3)]

    async def record_many(self, batch: list[str], chunk: int = 250) -> list[tuple[str, str, int]]:
        """Many missed calls per script call: the per-command cost of the client
        (packing, parsing) was most of the ingest time."""
        pipe = self.redis.pipeline(transaction=False)
        await self.queue_records(pipe, batch, chunk)
        return self.parse_records(await pipe.execute())

    async def claim(self, *, now: float, lease_s: float, owner: str, count: int) -> tuple[int, list[str]]:
        """Move due callbacks to the ready line, give back claims whose holder
        died, and claim up to ``count``. Returns (recovered, numbers claimed)."""
        out = await self._claim(keys=[PENDING, READY, CLAIMS], args=[now, now + lease_s, owner, count])
        return int(out[0]), [str(x) for x in out[1:]]

    async def renew(self, numbers: list[str], *, owner: str, lease_until: float) -> int:
        """Keep the claims of attempts still under way: a conversation may last
        longer than the lease, and a lapsed lease would hand the citizen to
        another dialler."""
        if not numbers:
            return 0
        return int(await self._renew(keys=[CLAIMS], args=[lease_until, owner, *numbers]))

    async def finish(self, number: str, owner: str, *, outcome: str, seat: str, now: float,
                     next_at: float | None, close_reason: str = "") -> str:
        ok, what = await self._finish(keys=[PENDING, CLAIMS, CLOSED],
                                      args=[number, owner, outcome, seat, now, "" if next_at is None else next_at,
                                            close_reason])
        return what if ok else "not_owner"

    async def close(self, number: str, *, now: float, reason: str) -> tuple[bool, str]:
        ok, what = await self._close(keys=[PENDING, READY, CLAIMS, CLOSED], args=[number, now, reason])
        return bool(ok), str(what)

    async def open_record(self, number: str) -> dict | None:
        h = await self.redis.hgetall(P + "n:" + number)
        return h or None

    async def closed_record(self, cid: str) -> dict | None:
        h = await self.redis.hgetall(P + "id:" + cid)
        return h or None

    async def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for k in (PENDING, READY, CLAIMS, CLOSED):
            pipe.zcard(k)
        p, r, c, d = await pipe.execute()
        return {"pending": p, "ready": r, "assigned": c, "closed": d, "open": p + r + c}


class CallbackQueries:
    """Reads for staff and auditors (lists, one record, reports)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def open_numbers(self, limit: int = 50) -> list[tuple[str, str, float]]:
        """(number, where, score): assigned first, then ready in calling order, then pending by time."""
        out = []
        for key, where in ((CLAIMS, "assigned"), (READY, "ready"), (PENDING, "pending")):
            for number, score in await self.redis.zrange(key, 0, limit - 1, withscores=True):
                out.append((number, where, score))
        return out[:limit]

    async def records(self, numbers: list[str]) -> list[dict]:
        pipe = self.redis.pipeline(transaction=False)
        for n in numbers:
            pipe.hgetall(P + "n:" + n)
        return [r for r in await pipe.execute() if r]

    async def find(self, key: str) -> dict | None:
        """An open callback by number, or any callback by id."""
        rec = await self.redis.hgetall(P + "n:" + key) if not key.isdigit() or len(key) > 8 else {}
        if rec:
            return rec
        rec = await self.redis.hgetall(P + "id:" + key)
        if rec:
            return rec
        for k in (CLAIMS, READY, PENDING):          # an open one by id
            async for number, _ in self.redis.zscan_iter(k):
                r = await self.redis.hgetall(P + "n:" + number)
                if r.get("id") == key:
                    return r
        return None

    async def all_records(self, closed_since: float) -> list[dict]:
        ids = await self.redis.zrangebyscore(CLOSED, closed_since, "+inf")
        numbers = [n for k in (CLAIMS, READY, PENDING) for n in await self.redis.zrange(k, 0, -1)]
        keys_ = [P + "id:" + i for i in ids] + [P + "n:" + n for n in numbers]
        out: list[dict] = []
        for at in range(0, len(keys_), 250):       # in slices: one huge pipeline holds Redis for everyone
            pipe = self.redis.pipeline(transaction=False)
            for k in keys_[at:at + 250]:
                pipe.hgetall(k)
            out += [r for r in await pipe.execute() if r]
        return out
