"""Sign-in rate limits, per account and per client address, in Redis (shared by
every engine process).

Failures are counted in a window. Past a free number of tries, each further
failure blocks the account (or address) for a growing time: 1 s, 2 s, 4 s ...
up to ``MAX_BLOCK_S``. While blocked, an attempt is refused with 429 and a
Retry-After — before any password hashing — after a delay (half the time left,
at most ``TARPIT_MAX_S``): a client that retries as soon as it is answered
slows down to about one attempt a second instead of costing the event loop
hundreds of requests a second (measured: `ivr bench agi --console-load`).
At most ``TARPIT_SLOTS`` attempts wait at once; past that they are answered
at once. Every block is written to the console audit log.
A right password clears the account's counter (not the address's: one valid
account must not reset a guessing run from the same place).

The address is the TCP peer (``request.remote``). Behind a reverse proxy every
client shares the proxy's address, so the per-address limit is generous; the
X-Forwarded-For header is not trusted (anyone can send it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from ivr.audit.chain import AuditLog
from ivr.redisdb import keys

PREFIX = keys.LOGIN_LIMIT_PREFIX
WINDOW_S = 15 * 60
MAX_BLOCK_S = 15 * 60
TARPIT_MAX_S = 1.0
TARPIT_SLOTS = 512
_tarpitted = 0


@dataclass(frozen=True, slots=True)
class Scope:
    name: str          # account | address
    free_tries: int


ACCOUNT = Scope("account", 5)
ADDRESS = Scope("address", 20)

# one failure: count it, and block when past the free tries (KEYS: fails, block; ARGV: window, free, max)
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local free = tonumber(ARGV[2])
if n < free then return {n, 0} end
local block = math.min(2 ^ (n - free), tonumber(ARGV[3]))
redis.call('SET', KEYS[2], '1', 'EX', block)
redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[1]), block))
return {n, block}
"""


def _id(value: str) -> str:
    # user names and addresses are bounded in key names whatever a client sends
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginLimiter:
    def __init__(self, redis, audit: AuditLog) -> None:
        self.redis = redis
        self.audit = audit
        self._fail = redis.register_script(_FAIL)

    def _keys(self, scope: Scope, value: str) -> tuple[str, str]:
        return f"{PREFIX}{scope.name}:{_id(value)}:fails", f"{PREFIX}{scope.name}:{_id(value)}:block"

    async def blocked_for(self, user: str, address: str) -> float:
        """Seconds until an attempt is allowed again (0: allowed now)."""
        pipe = self.redis.pipeline(transaction=False)
        for scope, value in ((ACCOUNT, user), (ADDRESS, address)):
            pipe.pttl(self._keys(scope, value)[1])
        ttls = await pipe.execute()
        return max(0, *[int(t) for t in ttls]) / 1000.0

    @staticmethod
    async def tarpit(wait_s: float) -> None:
        """Hold a refused attempt for a while before answering it."""
        global _tarpitted
        if _tarpitted >= TARPIT_SLOTS:
            return
        _tarpitted += 1
        try:
            await asyncio.sleep(min(wait_s / 2, TARPIT_MAX_S))
        finally:
            _tarpitted -= 1

    async def failed(self, user: str, address: str) -> None:
        for scope, value in ((ACCOUNT, user), (ADDRESS, address)):
            n, block = await self._fail(keys=list(self._keys(scope, value)),
                                        args=[WINDOW_S, scope.free_tries, MAX_BLOCK_S])
            if int(block):
                await self.audit.append([{"kind": "sign_in_blocked", "at": time.time(), "scope": scope.name,
                                          "user": user[:64], "address": address, "failures": int(n),
                                          "blocked_s": int(block)}])

    async def succeeded(self, user: str) -> None:
        await self.redis.delete(*self._keys(ACCOUNT, user))
