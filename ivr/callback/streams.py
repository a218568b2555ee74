"""The two streams the auditors' figures are read from, a page at a time:
the call summaries (``ivr:calls``) and the callbacks' audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis

from ivr.aio import between_pages
from ivr.audit.chain import AuditLog, Entry
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries

CALLS_BATCH = 500       # summaries per XRANGE: 10,000 at once held Redis for milliseconds


async def read_calls(redis: aioredis.Redis, start: float, end: float,
                     each: Callable[[dict[str, str]], None] | None = None,
                     keep: tuple[str, ...] | None = None, collect: bool = True,
                     ids_from: float | None = None, ids_past: float = 0.0) -> list[dict[str, str]]:
    """Call summaries that started in [start, end). A summary is written when
    its call ends (stream ids are write times), so the scan runs on past the end
    by a margin for calls still going at the end of the period. ``each`` is
    given every one as it is read (the national figures, in the same pass);
    ``keep``: only these fields are kept of each (a month's millions of whole
    summaries took gigabytes); ``collect`` False: none kept (``each`` sees them).
    ``ids_from``: where the scan starts, if before ``start``; ``ids_past``: how
    much further it runs (an engines' clock ahead of or behind Redis's:
    ``ivr.callback.rollup.clock_lead``)."""
    from ivr.calls.service import (
        read_summary,  # lazily: ivr.calls.service brings in the whole call engine
    )

    out: list[dict[str, str]] = []
    lo = f"{int(min(start, start if ids_from is None else ids_from) * 1000)}-0"
    hi = f"{int((end + 6 * 3600 + ids_past) * 1000)}-0"
    while True:
        rows = stream_entries(await redis.xrange(keys.CALLS, lo, hi, count=CALLS_BATCH))
        for _, fields in rows:
            s = read_summary(fields)
            if start <= float(s.get("started") or 0) < end:
                if collect:
                    out.append(s if keep is None else {k: s[k] for k in keep if k in s})
                if each is not None:
                    each(s)
        if len(rows) < CALLS_BATCH:
            return out
        lo = "(" + rows[-1][0]
        await between_pages()


async def audit_entries(log: AuditLog, start: str, end: str, page: int = 500) -> AsyncIterator[Entry]:
    """The entries of [start, end] a page at a time: one XRANGE of a month's
    hundreds of thousands of entries held Redis (and every call's command
    waiting on it) while it built the reply."""
    while True:
        rows = await log.entries(start, end, count=page)
        for _, e in rows:
            yield e
        if len(rows) < page:
            return
        start = "(" + rows[-1][0]
        await between_pages()
