"""Missed calls and callbacks as staff and auditors see them: the open line,
one callback with its audit trail, cancelling one, the report's period (days
in the hotline's time zone). Numbers are masked by the adapters that show
them; only the scheduler dials the full number."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivr.callback.report import month_days, period
from ivr.callback.states import EntryKind, RecordState
from ivr.callback.store import CallbackQueries, CallbackStore
from ivr.callback.trail import read_trail
from ivr.contingency.plan import load_seats
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.logs import mask_number
from ivr.redisdb import keys
from ivr.redisdb.live import read_live
from ivr.redisdb.replies import text_or_none, texts

if TYPE_CHECKING:
    from pathlib import Path
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Period:
    start: float        # [start, end) as timestamps
    end: float
    date_from: str      # YYYY-MM-DD, as shown
    date_to: str


def report_period(tz: ZoneInfo, date_from: str | None = None, date_to: str | None = None,
                  month: str | None = None) -> Period:
    """``month`` (YYYY-MM), or ``date_from``..``date_to`` (YYYY-MM-DD); by
    default today in the hotline's time zone — not the UTC day, which starts
    at 08:00 in Beijing."""
    today = dt.datetime.now(tz).date().isoformat()
    try:
        if month:
            date_from, date_to = month_days(month)
        date_from = date_from or today
        date_to = date_to or date_from
        start, end = period(date_from, date_to, tz)
    except ValueError as exc:
        given = f"--month {month}" if month else f"--from {date_from} --to {date_to}"
        raise InvalidInput(f"日期有误（{given}）：日期应为 YYYY-MM-DD，月份 YYYY-MM（如 2026-01），且结束不早于开始 — "
                           f"wrong dates ({given}): from/to YYYY-MM-DD, month YYYY-MM (e.g. 2026-01), the end not "
                           f"before the start") from exc
    return Period(start, end, date_from, date_to)


async def open_line(redis: aioredis.Redis,
                    limit: int) -> tuple[list[tuple[str, str, float, dict[str, str]]], dict[str, int]]:
    """The open callbacks in calling order, (number, where, score, record)
    each, and the counts by state."""
    q = CallbackQueries(redis)
    rows = await q.open_numbers(limit)
    recs = {r["number"]: r for r in await q.records([n for n, _, _ in rows])}
    return [(n, where, score, recs.get(n, {})) for n, where, score in rows], await CallbackStore(redis).counts()


async def find(redis: aioredis.Redis, key: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
    """One callback (by id, or the full number) and its audit trail, oldest first."""
    rec = await CallbackQueries(redis).find(key)
    if rec is None:
        raise NotFound(f"没有回拨记录 '{key}'（请给出编号或完整号码）— no callback '{key}' (give its id or the full "
                       "number)")
    return rec, await read_trail(redis, rec)


async def cancel(redis: aioredis.Redis, key: str, *, reason: str, by: str) -> dict[str, str]:
    """Close an open callback without calling; recorded in the callback audit log."""
    if not reason.strip():
        raise InvalidInput("请写明取消原因 — a reason is required (--reason)")
    rec = await CallbackQueries(redis).find(key)
    if rec is None or rec.get("state") == RecordState.CLOSED:
        raise NotFound(f"没有待回拨的记录 '{key}' — no open callback '{key}'")
    store = CallbackStore(redis)
    now = time.time()
    ok, what = await store.close(rec["number"], now=now, reason=f"cancelled: {reason}")
    if not ok:
        raise Conflict("正在拨打中，本次拨打结束后将关闭 — it is being dialled right now; it will be closed when this "
                       "attempt ends" if what == RecordState.ASSIGNED else "它已被关闭 — it was closed meanwhile")
    await store.audit.append([{"kind": EntryKind.CLOSED.value, "at": now, "id": rec["id"],
                               "number": mask_number(rec["number"]), "reason": "cancelled", "note": reason, "by": by}])
    return rec


async def counts(redis: aioredis.Redis) -> dict[str, int]:
    """Open callbacks by state (pending, ready, assigned), closed, and open in all."""
    return await CallbackStore(redis).counts()


async def oldest_open_age(redis: aioredis.Redis, now: float) -> float | None:
    """Age of the oldest open callback. The lines are ordered by deadline and by
    due time, and within a kind the deadline follows the first call, so the
    heads of the lines hold the oldest one."""
    heads: list[str] = []
    for key in (keys.CALLBACK_READY, keys.CALLBACK_PENDING):
        heads += texts(await redis.zrange(key, 0, 2))
    replies = [text_or_none(await redis.hget(keys.callback_open(n), "first_at")) for n in heads]
    firsts = [float(f) for f in replies if f]
    return round(now - min(firsts), 1) if firsts else None


async def seat_names(redis: aioredis.Redis, queue_dir: Path) -> dict[str, str]:
    """interface -> the seat's name as staff know it: the queue members' names
    the leader's live model holds (Asterisk's MemberName; the seats page shows
    the same), then the names in queue/seats.yaml, which win. A seat in
    neither is shown by its interface. A broken seats.yaml leaves its names
    out (the file's own problem shows on /healthz)."""
    live = await read_live(redis) or {}
    names = {s["interface"]: s["name"] for s in live.get("seats", [])
             if s.get("interface") and s.get("name") and s["name"] != s["interface"]}
    seats, _ = load_seats(queue_dir)
    for group in (seats.groups if seats else {}).values():
        names.update({s.interface: s.name for s in group if s.name})
    return names


async def report(redis: aioredis.Redis, start: float, end: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The auditors' report of a period (``ivr.callback.report_data``): the
    figures, and one row per missed call for the CSV."""
    from ivr.callback.report_data import gather
    return await gather(redis, start, end)
