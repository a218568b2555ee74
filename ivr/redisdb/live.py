"""The AMI live model's snapshot in Redis: written by the process that holds
the AMI link (``ivr.ami.controller``), read by the console and the CLI. Kept
apart from the controller so readers need no AMI client (panoramisk)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis.asyncio as aioredis

from ivr.redisdb import keys

if TYPE_CHECKING:
    from ivr.ami.model import LiveSnapshot

LIVE_TTL_S = 30     # a snapshot nobody refreshes is gone: the link or its holder is down


async def write_live(redis: aioredis.Redis, snapshot: LiveSnapshot, outlook: dict[str, Any] | None = None) -> None:
    """The snapshot, and the small outlook every engine reads with the level
    (``keys.OUTLOOK``: expected waits by queue and priority, lines low)."""
    pipe = redis.pipeline(transaction=False)
    # orjson: the snapshot lists every seat (1,820 at Beijing) four times a second; json.dumps of it
    # was most of the leader's publishing CPU in the Beijing drill (docs/benchmarks.md, session 7)
    pipe.set(keys.LIVE, orjson.dumps(snapshot, option=orjson.OPT_NON_STR_KEYS), ex=LIVE_TTL_S)
    if outlook is not None:
        pipe.set(keys.OUTLOOK, orjson.dumps(outlook, option=orjson.OPT_NON_STR_KEYS), ex=LIVE_TTL_S)
    await pipe.execute()


async def read_live(redis: aioredis.Redis) -> dict[str, Any] | None:
    """The latest snapshot, or None when no process holds the AMI link. Read as
    plain JSON: the writer may be another process (and another version)."""
    raw = await redis.get(keys.LIVE)
    return cast("dict[str, Any]", json.loads(raw)) if raw else None
