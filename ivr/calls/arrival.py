"""What a call reads from Redis as it arrives, for every call arriving at
about the same time in one round trip: the caller's previous call (and this
one recorded, for 'called within N minutes'), and whether the caller has an
open callback and how many come before it (the ``admit`` step).

One command per call cost the engine more CPU than the rest of its Redis work
put together: redis-py's per-command machinery (a pooled connection, a
timeout, packing, parsing), about 150 µs of a 650 µs call
(docs/benchmarks.md). Here a call's lookup waits only for the round trip under
way, if there is one; the next round trip carries every call that arrived
meanwhile, as one script call. Nothing waits for a timer: a lone call pays one
round trip, as before.

Freshness is that of a lookup of its own: every answer is read from Redis
after the call arrived, in the round trip that carries it. A citizen whose
callback was opened a moment ago is told so, one whose callback closed is
not; the state stays in Redis, where every engine reads the same."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from ivr.redisdb import keys

if TYPE_CHECKING:
    from ivr.logs import Log

LAST_CALL_TTL_S = 7 * 24 * 3600
BATCH_MAX = 256         # calls per script call: Redis serves others between two

# KEYS[1]: the ready line (zset), KEYS[2]: the pending line (zset)
# ARGV[1]: open callback record prefix; ARGV[2], ARGV[3]: the last-call key's
#   prefix and suffix; ARGV[4]: its expiry (s); ARGV[5..]: one per call,
#   "<what>\t<now>\t<number>", what: h (history), r (registration), b (both)
# Returns two values per call, in order: the time of the number's previous
# call ('' none; with h or b this call's time is written in its place), and
# how many open callbacks come before this number's own in calling order (the
# ready line first, then those not yet due; -1: no open callback, or not asked).
ARRIVAL = """
local out = {}
for i = 5, #ARGV do
  local a = ARGV[i]
  local t1 = string.find(a, '\\t', 1, true)
  local t2 = string.find(a, '\\t', t1 + 1, true)
  local what = string.sub(a, 1, t1 - 1)
  local number = string.sub(a, t2 + 1)
  local prev, ahead = '', -1
  if what ~= 'r' then
    prev = redis.call('SET', ARGV[2] .. number .. ARGV[3], string.sub(a, t1 + 1, t2 - 1),
                      'EX', ARGV[4], 'GET') or ''
  end
  if what ~= 'h' and redis.call('EXISTS', ARGV[1] .. number) == 1 then
    ahead = redis.call('ZRANK', KEYS[1], number)
    if not ahead then
      ahead = redis.call('ZCARD', KEYS[1]) + (redis.call('ZRANK', KEYS[2], number) or 0)
    end
  end
  out[#out + 1] = prev
  out[#out + 1] = ahead
end
return out
"""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A call's facts from Redis (``CallFacts`` fields); None: none, or unknown."""

    last_call_age_s: float | None = None
    registered_ahead: int | None = None


UNKNOWN = Arrival()
_WHAT = {(True, False): "h", (False, True): "r", (True, True): "b"}

# one call waiting: (its script argument, its time, its answer)
_Waiting = tuple[str, float, "asyncio.Future[Arrival]"]


class ArrivalLookups:
    """Calls' arrival lookups, coalesced: at most one round trip under way,
    the calls that arrive meanwhile in the next. The round trip runs in a task
    of its own (``close`` ends it), so a call cancelled while it waits takes
    nobody else's answer with it."""

    def __init__(self, redis: aioredis.Redis, log: Log) -> None:
        self.log = log
        self._script = redis.register_script(ARRIVAL)
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None
        self.round_trips = 0            # read by tests: how many calls shared them

    async def lookup(self, number: str, now: float, *, history: bool, registration: bool) -> Arrival:
        """The previous call's age (and this call recorded) when ``history``;
        the callbacks ahead of this caller's open one when ``registration``.
        Redis unavailable: ``UNKNOWN`` (the call goes on without them)."""
        what = _WHAT.get((history, registration))
        if what is None or not number:
            return UNKNOWN
        answer: asyncio.Future[Arrival] = asyncio.get_running_loop().create_future()
        self._waiting.append((f"{what}\t{now:.3f}\t{number}", now, answer))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all())
        return await answer

    async def close(self) -> None:
        """End the round trips (engine shutdown); whoever still waits gets ``UNKNOWN``."""
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.wait([sender])    # its own cancellation, not ours: nothing to catch
        # a sender cancelled before it first ran never reached its ``finally``
        self._sender = None
        waiting, self._waiting = self._waiting, []
        _answer(waiting, [])

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
                await self._send(batch)
        finally:
            self._sender = None
            waiting, self._waiting = self._waiting, []
            _answer(waiting, [])

    async def _send(self, batch: list[_Waiting]) -> None:
        answers: list[Arrival] = []
        try:
            flat = await self._script(keys=[keys.CALLBACK_READY, keys.CALLBACK_PENDING],
                                      args=[keys.CALLBACK_OPEN_PREFIX, keys.LAST_CALL_PREFIX,
                                            keys.LAST_CALL_SUFFIX, LAST_CALL_TTL_S, *(a for a, _, _ in batch)])
            self.round_trips += 1
            answers = [Arrival(last_call_age_s=now - float(flat[2 * i]) if flat[2 * i] else None,
                               registered_ahead=None if int(flat[2 * i + 1]) < 0 else int(flat[2 * i + 1]))
                       for i, (_, now, _) in enumerate(batch)]
        except Exception as exc:  # a nicety: these calls go on without their history and registration
            self.log.warning("arrival_lookup_unavailable", error=repr(exc), calls=len(batch))
        finally:
            _answer(batch, answers)


def _answer(batch: list[_Waiting], answers: list[Arrival]) -> None:
    """Each waiting call its answer (``UNKNOWN`` past the end of ``answers``);
    a call that stopped waiting (cancelled) is skipped."""
    for i, (_, _, fut) in enumerate(batch):
        if not fut.done():
            fut.set_result(answers[i] if i < len(answers) else UNKNOWN)
