"""The leader role: one engine process at a time holds the AMI link and runs
the contingency supervisor, the missed-call capture and reconciliation, the
callback scheduler and the in-queue callback offer.

- The role is a Redis lock with a lease, renewed every second. A holder that
  cannot renew (Redis gone, the process stalled) stops every part once half the
  lease has passed since its last renewal, so it has stopped before another
  process can take the lock; if the holder dies, another process takes over
  within the lease (``LOCK_TTL_S``).
- Each part runs under a supervisor that restarts it with backoff after a
  failure and reports its health (``Part.health``) to ``/healthz``,
  ``/metrics`` and ``ivr status``.
- Parts read the configuration snapshot in force at each round, so a reload
  reaches them without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import redis.asyncio as aioredis

from ivr.aio import cancelling
from ivr.logs import Log
from ivr.redisdb import keys
from ivr.redisdb.replies import text_or_none

LOCK_TTL_S = 6.0
ROUND_S = 1.0
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
HEALTHY_AFTER_S = 60.0        # a part that ran this long without failing starts its backoff afresh

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLock:
    def __init__(self, redis: aioredis.Redis, key: str, ttl_s: float = LOCK_TTL_S) -> None:
        self.redis = redis
        self.key = key
        self.ttl_s = ttl_s
        self.ttl_ms = int(ttl_s * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.token])

    async def holder(self) -> str | None:
        return text_or_none(await self.redis.get(self.key))


class PartHealth(TypedDict):
    state: str
    restarts: int
    last_error: str
    since: float


@dataclass
class Part:
    """One supervised piece of the leader's work. ``run`` runs until cancelled;
    returning or raising counts as a failure and the part is restarted."""

    name: str
    run: Callable[[], Awaitable[None]]
    state: str = "stopped"          # running | restarting | stopped
    restarts: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)

    def health(self) -> PartHealth:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error,
                "since": round(self.since, 3)}


async def supervise(part: Part, log: Log) -> None:
    backoff = iter(RESTART_BACKOFF_S)
    while True:
        part.state, part.since = "running", time.time()
        started = time.monotonic()
        try:
            await part.run()
            error = "stopped by itself"
        except asyncio.CancelledError:
            part.state = "stopped"
            raise
        except Exception as exc:  # noqa: BLE001 - the supervisor's job: any failure restarts the part
            error = repr(exc)
        if cancelling():
            # redis-py can swallow a cancellation that lands mid-command: the
            # part then returns or fails instead; stopping still means stop
            part.state = "stopped"
            raise asyncio.CancelledError()
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            backoff = iter(RESTART_BACKOFF_S)
        delay = next(backoff, RESTART_BACKOFF_S[-1])
        part.state, part.last_error, part.since = "restarting", error, time.time()
        part.restarts += 1
        log.error("leader_part_failed", part=part.name, error=error, restart_in_s=delay, restarts=part.restarts)
        await asyncio.sleep(delay)


def every(period_s: float, round_fn: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """A part made of rounds; a failing round fails the part (and is restarted)."""
    async def run() -> None:
        while not cancelling():
            await round_fn()
            if cancelling():    # a cancellation swallowed inside the round
                return
            await asyncio.sleep(period_s)
    return run


PartsFactory = Callable[[str], Awaitable[tuple[list[Part], Callable[[], Awaitable[None]]]]]


class LeaderRole:
    """Holds (or waits for) the lock; while held, runs the parts that
    ``make_parts(owner_token)`` builds, and their ``cleanup`` when it stops."""

    def __init__(self, redis: aioredis.Redis, make_parts: PartsFactory, log: Log, *,
                 key: str = keys.AMI_LEADER, ttl_s: float = LOCK_TTL_S) -> None:
        self.lock = LeaderLock(redis, key, ttl_s)
        self.make_parts = make_parts
        self.log = log
        self.parts: list[Part] = []
        self.is_leader = False
        self.changes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._cleanup: Callable[[], Awaitable[None]] | None = None
        self._valid_until = 0.0

    def health(self) -> dict[str, Any]:
        """JSON for the status views (``ivr.runtime.status``) and ``LEADER_HEALTH``."""
        return {"leader": self.is_leader, "token": self.lock.token,
                "parts": {p.name: p.health() for p in self.parts}}

    async def run(self) -> None:
        try:
            while not cancelling():
                await self._round()
                await asyncio.sleep(ROUND_S)
        finally:
            await self._stop()

    async def _round(self) -> None:
        sent = time.monotonic()
        try:
            async with asyncio.timeout(ROUND_S):
                if not self.is_leader:
                    if await self.lock.acquire():
                        self._valid_until = sent + self.lock.ttl_s / 2
                        await self._start()
                    return
                if await self.lock.renew():
                    self._valid_until = sent + self.lock.ttl_s / 2
                    # for `ivr status` and the other processes' /healthz: what the leader runs
                    await self.lock.redis.set(keys.LEADER_HEALTH, json.dumps(self.health()),
                                              px=self.lock.ttl_ms)
                else:
                    self.log.warning("leader_lost", reason="another process holds the lock")
                    await self._stop()
                    return
        except Exception as exc:  # noqa: BLE001 - Redis restarting or failing over: decided below
            self.log.warning("leader_round_failed", error=repr(exc))
        if self.is_leader and time.monotonic() > self._valid_until:
            self.log.warning("leader_lost", reason="lease not renewed in time")
            await self._stop(release=False)

    async def _start(self) -> None:
        try:
            self.parts, self._cleanup = await self.make_parts(self.lock.token)
        except Exception:
            with contextlib.suppress(Exception):
                await self.lock.release()
            raise
        self.is_leader = True
        self.changes += 1
        self._tasks = [asyncio.create_task(supervise(p, self.log), name=f"leader:{p.name}") for p in self.parts]
        self.log.info("leader_acquired", parts=[p.name for p in self.parts])

    async def _stop(self, release: bool = True) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            try:
                await cleanup()
            except Exception as exc:  # noqa: BLE001 - stopping must finish
                self.log.warning("leader_cleanup_failed", error=repr(exc))
        if self.is_leader and release:
            with contextlib.suppress(Exception):
                await self.lock.release()
        for p in self.parts:
            p.state = "stopped"
        self.is_leader = False
