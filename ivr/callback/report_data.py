"""The Redis reads behind the auditors' report (``ivr.callback.report`` is the
pure computation): callback records, attempts from the audit log, and the call
summaries of a period."""

from __future__ import annotations

import bisect
import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from ivr.audit.chain import AuditLog
from ivr.callback.figures import Figures
from ivr.callback.report import DELAY_EDGES_S, hotline_figures, report
from ivr.callback.store import CallbackQueries, Record
from ivr.callback.streams import audit_entries, read_calls
from ivr.redisdb import keys

# what hotline_figures reads of a call summary
HOTLINE_FIELDS = ("number", "wanted_person", "queue_status", "outcome", "moved_to")
# the national figures the report carries at its top level (the rest, per day, seat and kind, in "figures")
NATIONAL = ("answered_within_15s_rate", "answer_rate_24h", "average_speed_of_answer_s", "abandoned_within_15s",
            "satisfaction_rate", "survey")


async def gather(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo = dt.UTC,
                 now: float | None = None) -> dict[str, Any]:
    """The report for [start, end) (with the hotline's figures and the national
    ones, ``ivr.callback.figures``: days in ``tz``, the rolling 24 hours up to
    ``now``), summed from the period's hours (``ivr.callback.rollup``); ``read``
    says how many hours came from kept parts and how many were read."""
    from ivr.callback.rollup import sum_period

    # parts are kept only by a caller that knows the engines' clock (a drill's runs ahead or behind)
    sums, how = await sum_period(redis, start, end, tz, time.time() if now is None else now, keep=now is not None)
    sums.figures.now = now
    r = sums.report()
    r["hotline"] = sums.hotline()
    kept = how.pop("calls_from")
    r["calls_from"] = kept
    r["calls_from_local"] = dt.datetime.fromtimestamp(kept, tz).strftime("%Y-%m-%d %H:%M") if kept else None
    fig = sums.figures.result()
    r["figures"] = fig
    r.update({k: fig[k] for k in NATIONAL})
    r["time_to_callback_histogram"] = delay_histogram(sums.delays)
    r["read"] = how
    return r


def delay_histogram(delays: Iterable[float]) -> dict[str, list[int]]:
    """Time to the first callback, counted between ``DELAY_EDGES_S`` (the last bin: beyond)."""
    counts = [0] * (len(DELAY_EDGES_S) + 1)
    for d in delays:
        if d >= 0:
            counts[bisect.bisect_right(DELAY_EDGES_S, d)] += 1
    return {"edges_s": list(DELAY_EDGES_S), "counts": counts}


async def period_records(redis: aioredis.Redis, start: float, end: float,
                         limit: int | None = None) -> list[Record]:
    """The callbacks whose first missed call was in [start, end), by the
    indexes by first call (open ones read first: one closed meanwhile is read
    again, closed, and counted once); ``limit``: the earliest only."""
    q = CallbackQueries(redis)
    numbers = await q.by_first(keys.CALLBACK_OPEN_BY_FIRST, start, end, limit)
    opened = await q.open_records(numbers)
    ids = await q.by_first(keys.CALLBACK_CLOSED_BY_FIRST, start, end, limit)
    closed = await q.closed_records(ids)
    seen = {r.get("id") for r in closed}
    rows = closed + [r for r in opened if r.get("id") not in seen]
    rows.sort(key=lambda r: (float(r.get("first_at") or 0), str(r.get("id", "")).zfill(20)))
    return rows if limit is None else rows[:limit]


async def gather_full(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo = dt.UTC,
                      now: float | None = None) -> tuple[dict[str, Any], list[Record]]:
    """The report for [start, end) read item by item, every callback, attempt
    and call summary of the period (``ivr.callback.report``, the reference the
    sums from hours are checked against: ``ivr audit recount``, the bench and
    the tests), and the callbacks it counts."""
    from ivr.callback.rollup import ATTEMPT_MARGIN_S, clock_lead, complete_from
    lead = clock_lead(now) if now is not None else 0.0
    recs = await CallbackQueries(redis).all_records(closed_since=start)
    log = AuditLog(redis, keys.CALLBACK_AUDIT)
    national = Figures(start, end, tz, now)
    attempts = []
    # attempts made in the period (by their time; written a little after it, by the Redis host's clock)
    async for e in audit_entries(log, f"{int((start - max(lead, 0.0) - ATTEMPT_MARGIN_S) * 1000)}-0",
                                 f"{int((end + max(-lead, 0.0) + ATTEMPT_MARGIN_S) * 1000)}-0"):
        at = e.get("at")
        if e.get("kind") == "attempt" and at is not None and start <= float(at) < end:
            attempts.append(e)
            national.add_attempt(e)
    rows = [r for r in recs if start <= float(r.get("first_at", 0)) < end]
    r = report(recs, attempts, start, end)
    calls = await read_calls(redis, start, end, national.add_call, keep=HOTLINE_FIELDS,
                             ids_from=start - max(lead, 0.0), ids_past=max(-lead, 0.0))
    r["hotline"] = hotline_figures(calls, rows, r["per_seat"])
    kept = await complete_from(redis)
    kept = r["calls_from"] = kept if kept is not None and kept > start - max(lead, 0.0) else None
    r["calls_from_local"] = dt.datetime.fromtimestamp(kept, tz).strftime("%Y-%m-%d %H:%M") if kept else None
    fig = national.result()
    r["figures"] = fig
    r.update({k: fig[k] for k in NATIONAL})
    return r, rows
