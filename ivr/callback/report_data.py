"""The Redis reads behind the auditors' report (``ivr.callback.report`` is the
pure computation): callback records, attempts from the audit log, and the call
summaries of a period."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis

from ivr.aio import between_pages
from ivr.audit.chain import AuditLog, Entry
from ivr.callback.figures import Figures
from ivr.callback.report import hotline_figures, report
from ivr.callback.store import CallbackQueries, Record
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries

CALLS_BATCH = 500       # summaries per XRANGE: 10,000 at once held Redis for milliseconds


async def read_calls(redis: aioredis.Redis, start: float, end: float,
                     each: Callable[[dict[str, str]], None] | None = None,
                     keep: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """Call summaries that started in [start, end). A summary is written when
    its call ends (stream ids are write times), so the scan runs on past the end
    by a margin for calls still going at the end of the period. ``each`` is
    given every one as it is read (the national figures, in the same pass);
    ``keep``: only these fields are kept of each (a month's millions of whole
    summaries took gigabytes)."""
    from ivr.calls.service import (
        read_summary,  # lazily: ivr.calls.service brings in the whole call engine
    )

    out: list[dict[str, str]] = []
    lo, hi = f"{int(start * 1000)}-0", f"{int((end + 6 * 3600) * 1000)}-0"
    while True:
        rows = stream_entries(await redis.xrange(keys.CALLS, lo, hi, count=CALLS_BATCH))
        for _, fields in rows:
            s = read_summary(fields)
            if start <= float(s.get("started") or 0) < end:
                out.append(s if keep is None else {k: s[k] for k in keep if k in s})
                if each is not None:
                    each(s)
        if len(rows) < CALLS_BATCH:
            return out
        lo = "(" + rows[-1][0]
        await between_pages()


async def calls_kept_from(redis: aioredis.Redis, start: float) -> float | None:
    """When the call summaries still kept begin, if after ``start``: the calls
    stream is capped (``CALLS_STREAM_MAXLEN``, 2 million), so a month of
    Beijing's 3 million has lost its first days by its end, and every figure
    counted from calls (接通率, 15秒接通率, 满意率...) covers only the days
    after this. None: the period's calls are all there (or there are none)."""
    first = await redis.xrange(keys.CALLS, "-", "+", count=1)
    if not first:
        return None
    at = int(str(first[0][0]).split("-", 1)[0]) / 1000
    return at if at > start else None


async def _audit_entries(log: AuditLog, start: str, end: str, page: int = 500) -> AsyncIterator[Entry]:
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


# what hotline_figures reads of a call summary
HOTLINE_FIELDS = ("number", "wanted_person", "queue_status", "outcome", "moved_to")
# the national figures the report carries at its top level (the rest, per day, seat and kind, in "figures")
NATIONAL = ("answered_within_15s_rate", "answer_rate_24h", "average_speed_of_answer_s", "abandoned_within_15s",
            "satisfaction_rate", "survey")


async def gather(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo = dt.UTC,
                 now: float | None = None) -> tuple[dict[str, Any], list[Record]]:
    """The report for [start, end) (with the hotline's figures and the national
    ones, ``ivr.callback.figures``: days in ``tz``, the rolling 24 hours up to
    ``now``) and the callbacks it counts."""
    recs = await CallbackQueries(redis).all_records(closed_since=start)
    log = AuditLog(redis, keys.CALLBACK_AUDIT)
    national = Figures(start, end, tz, now)
    attempts = []
    async for e in _audit_entries(log, f"{int(start * 1000)}-0", f"{int(end * 1000)}-0"):
        if e.get("kind") == "attempt":
            attempts.append(e)
            national.add_attempt(e)
    rows = [r for r in recs if start <= float(r.get("first_at", 0)) < end]
    r = report(recs, attempts, start, end)
    calls = await read_calls(redis, start, end, national.add_call, keep=HOTLINE_FIELDS)
    r["hotline"] = hotline_figures(calls, rows, r["per_seat"])
    r["calls_from"] = kept = await calls_kept_from(redis, start)
    r["calls_from_local"] = dt.datetime.fromtimestamp(kept, tz).strftime("%Y-%m-%d %H:%M") if kept else None
    fig = national.result()
    r["figures"] = fig
    r.update({k: fig[k] for k in NATIONAL})
    return r, rows
