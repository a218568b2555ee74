"""The AMI live model's snapshot in Redis: written by the process that holds
the AMI link (``ivr.ami.controller``), read by the console and the CLI. Kept
apart from the controller so readers need no AMI client (panoramisk)."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from ivr.redisdb import keys

LIVE_TTL_S = 30     # a snapshot nobody refreshes is gone: the link or its holder is down


async def write_live(redis: aioredis.Redis, snapshot: dict) -> None:
    await redis.set(keys.LIVE, json.dumps(snapshot, ensure_ascii=False), ex=LIVE_TTL_S)


async def read_live(redis: aioredis.Redis) -> dict | None:
    """The latest snapshot, or None when no process holds the AMI link."""
    raw = await redis.get(keys.LIVE)
    return json.loads(raw) if raw else None
