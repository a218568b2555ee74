"""What must not be lost — missed-call records, callback outcomes, audit
entries, call summaries — is acknowledged only once a replica has it, when the
Redis in use has replicas (Sentinel): ``WAIT 1 <timeout>`` after the write.
So a failover that promotes the replica loses none of it. With no replica (the
embedded server, a single Redis) it costs nothing."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from ivr.errors import NotReplicated

CHECK_EVERY_S = 5.0
WAIT_MS = 1000


class Replication:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._replicas = 0
        self._checked = -CHECK_EVERY_S

    async def replicas(self) -> int:
        if time.monotonic() - self._checked >= CHECK_EVERY_S:
            info = await self.redis.info("replication")
            self._replicas = int(info.get("connected_slaves", 0)) if info.get("role") == "master" else 0
            self._checked = time.monotonic()
        return self._replicas

    async def wait(self) -> None:
        """Raise ``NotReplicated`` when a replica exists and has not caught up:
        the caller keeps the work and tries again (writes are idempotent)."""
        if not await self.replicas():
            return
        acked = await self.redis.wait(1, WAIT_MS)
        if int(acked) < 1:
            self._checked = -CHECK_EVERY_S      # the replica may be gone: look again next time
            raise NotReplicated(f"no replica acknowledged within {WAIT_MS} ms")
