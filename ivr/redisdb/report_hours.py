"""The hour a call summary counts in, for the auditors' report's hour parts
(``ivr.callback.rollup``): every writer of a summary counts it there
(``keys.REPORT_WRITTEN``), so a part kept for an hour holds only while no
summary was written for that hour since it was summed."""

from __future__ import annotations

import time
from collections.abc import Mapping

import orjson
import redis.asyncio as aioredis

from ivr.redisdb import keys

HOUR_S = 3600


def summary_hour(summary: Mapping[str, str]) -> str:
    """The epoch hour the summary's call started in ("-1": none it can read)."""
    try:
        return str(int(float(summary.get("started") or "") // HOUR_S))
    except ValueError:
        return "-1"


LATE_TTL_S = 400 * 86400       # as long as the report's parts
LATE_AFTER_S = 4 * 3600        # an hour's read of the stream finds a summary written sooner than this


async def summary_written(redis: aioredis.Redis, summary: Mapping[str, str]) -> None:
    """A summary written by another hand than its engine's script (the PBX's
    record, the reconciler, a refused attempt), perhaps hours after its call:
    kept in its hour's list of late summaries (an hour's read of the stream
    looks only a few hours past it), then counted in its hour, so that a
    part of that hour summed before is summed again."""
    hour = summary_hour(summary)
    pipe = redis.pipeline(transaction=True)
    try:
        late = time.time() - float(summary.get("started") or 0) > LATE_AFTER_S
    except ValueError:
        late = False
    if late:
        pipe.rpush(keys.REPORT_LATE_PREFIX + hour, orjson.dumps(dict(summary)).decode())
        pipe.expire(keys.REPORT_LATE_PREFIX + hour, LATE_TTL_S)
    pipe.hincrby(keys.REPORT_WRITTEN, hour, 1)
    await pipe.execute()
