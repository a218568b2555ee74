"""What the wall, ``ivr status`` and ``/metrics`` read: the live model the
leader publishes (queues, seats), the level in force, every engine process's
published status and the leader's health."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ivr.contingency.plan import level_or_minus_one
from ivr.redisdb import keys
from ivr.redisdb.live import read_live

if TYPE_CHECKING:
    import redis.asyncio as aioredis


async def live(redis: aioredis.Redis) -> dict[str, Any] | None:
    """The live model's snapshot (None: no leader with an AMI link has published one)."""
    return await read_live(redis)


async def level(redis: aioredis.Redis) -> int:
    """The level in force; -1 when the stored value is not a level (never ``int('True')``)."""
    return level_or_minus_one(await redis.get(keys.CONTINGENCY_LEVEL))


async def leader_health(redis: aioredis.Redis) -> dict[str, Any] | None:
    raw = await redis.get(keys.LEADER_HEALTH)
    return json.loads(raw) if raw else None


async def engines(redis: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Every engine process's published status, by token."""
    from ivr.runtime.status import engines as published
    return await published(redis)
