"""Missed calls and callbacks as staff and auditors see them: the open line,
one callback with its audit trail, cancelling one, the report's period (days
in the hotline's time zone). Numbers are masked by the adapters that show
them; only the scheduler dials the full number."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivr.audit.chain import AuditLog
from ivr.callback.policy import rank
from ivr.callback.report import month_days, period
from ivr.callback.states import EntryKind, RecordState
from ivr.callback.store import CallbackQueries, CallbackStore
from ivr.callback.trail import read_trail
from ivr.contingency.plan import load_seats
from ivr.errors import ConfigError, Conflict, InvalidInput, NotFound
from ivr.logs import mask_number
from ivr.redisdb import keys
from ivr.redisdb.live import read_live
from ivr.services import prompts as prompt_service

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


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


def _checked_day(text: str, flag: str) -> str:
    """A day as staff type it on the command line (``--from``), one clear line when it is not one."""
    if not _DAY.fullmatch(text):
        raise InvalidInput(f"日期应写成 YYYY-MM-DD，如 2026-12-06，而不是 '{text}'（{flag}）— a date is written "
                           f"YYYY-MM-DD, such as 2026-12-06, not '{text}' ({flag})")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"没有这一天：'{text}'（{flag}）— there is no such day: '{text}' ({flag})") from None
    if not 2000 <= day.year <= 2100:
        raise InvalidInput(f"日期须在 2000 至 2100 年之间，而不是 '{text}'（{flag}）— a date from 2000 to 2100, not "
                           f"'{text}' ({flag})")
    return text


def _checked_month(text: str) -> tuple[str, str]:
    if not _MONTH.fullmatch(text):
        raise InvalidInput(f"月份应写成 YYYY-MM，如 2026-01，而不是 '{text}'（--month）— a month is written YYYY-MM, "
                           f"such as 2026-01, not '{text}' (--month)")
    if not 1 <= int(text[5:]) <= 12:
        raise InvalidInput(f"没有这个月份：'{text}'（月份为 01 到 12）— there is no month '{text}' (01 to 12)")
    _checked_day(text + "-01", "--month")
    return month_days(text)


def report_period(tz: ZoneInfo, date_from: str | None = None, date_to: str | None = None,
                  month: str | None = None) -> Period:
    """``month`` (YYYY-MM), or ``date_from``..``date_to`` (YYYY-MM-DD); by
    default today in the hotline's time zone — not the UTC day, which starts
    at 08:00 in Beijing. A wrong one: ``InvalidInput`` naming the value given
    and how to write it (never Python's own message)."""
    today = dt.datetime.now(tz).date().isoformat()
    if month:
        date_from, date_to = _checked_month(month)
    date_from = _checked_day(date_from or today, "--from")
    date_to = _checked_day(date_to or date_from, "--to")
    if date_to < date_from:
        raise InvalidInput(f"结束日期 {date_to} 早于开始日期 {date_from} — the end ({date_to}) is before the start "
                           f"({date_from})")
    start, end = period(date_from, date_to, tz)
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
    """Age of the oldest open callback, whatever its state: waiting to be
    dialled, being dialled, or waiting for its next attempt (the index by
    first call, ``ivr:cb:open-by-first``, kept by the store's scripts)."""
    first = await CallbackStore(redis).oldest_open_first_at()
    return None if first is None else round(now - first, 1)


async def overdue_ready(redis: aioredis.Redis, now: float) -> dict[str, int]:
    """Callbacks ready to dial whose deadline has passed, emergency and other
    (``/metrics``, the backlog alert): the ready line's score is
    ``policy.rank(kind, deadline)``, so each count is one ZCOUNT."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(keys.CALLBACK_READY, rank("emergency", float("-inf")), rank("emergency", now))
        pipe.zcount(keys.CALLBACK_READY, rank("ordinary", 0.0), rank("ordinary", now))
        emergency, other = await pipe.execute()
    return {"emergency": int(emergency), "other": int(other)}


async def seat_names(redis: aioredis.Redis, queue_dir: Path) -> dict[str, str]:
    """interface -> the seat's name as staff know it: the queue members' names
    the leader's live model holds (Asterisk's MemberName; the seats page shows
    the same), then the names in queue/seats.yaml, which win. A seat in
    neither is shown by its interface. A broken seats.yaml leaves its names
    out (the file's own problem shows on /healthz)."""
    live = await read_live(redis) or {}
    names = {s["interface"]: s["name"] for s in live.get("seats", [])
             if s.get("interface") and s.get("name") and s["name"] != s["interface"]}
    try:
        seats, _ = load_seats(queue_dir)
    except ConfigError:             # unreadable or too large: the snapshot reports it
        seats = None
    for group in (seats.groups if seats else {}).values():
        names.update({s.interface: s.name for s in group if s.name})
    return names


async def report(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo = dt.UTC,
                 now: float | None = None) -> dict[str, Any]:
    """The auditors' report of a period (``ivr.callback.report_data``): the
    figures (the national ones with days in ``tz``, the rolling 24 hours up to
    ``now``), summed from the period's hours."""
    from ivr.callback.report_data import gather
    return await gather(redis, start, end, tz, now)


async def period_records(redis: aioredis.Redis, start: float, end: float,
                         limit: int | None = None) -> list[dict[str, str]]:
    """The period's callbacks (by first missed call), for the CSV and the list;
    ``limit``: the earliest only."""
    from ivr.callback.report_data import period_records as records
    return await records(redis, start, end, limit)


async def recount(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo = dt.UTC,
                  now: float | None = None) -> dict[str, Any]:
    """The report read item by item (every callback, attempt and call summary
    of the period) beside the one summed from hours, and where they differ."""
    from ivr.callback.report_data import gather_full
    fast = await report(redis, start, end, tz, now)
    full, _ = await gather_full(redis, start, end, tz, now)
    return {"differences": differences(fast, full), "summed": fast, "read": full}


def differences(summed: dict[str, Any], read: dict[str, Any], at: str = "") -> list[str]:
    """Where the summed report differs from the one read item by item (what
    only the summed one carries, how it was read, is left out)."""
    out: list[str] = []
    for k in sorted(set(summed) | set(read)):
        if not at and k in ("read", "time_to_callback_histogram"):
            continue
        a, b = summed.get(k), read.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{at}{k}.")
        elif a != b:
            out.append(f"{at}{k}: {a!r} != {b!r}")
    return out


async def voice_message(redis: aioredis.Redis, key: str, *, by: str) -> bytes:
    """The voice message a callback's caller left (the record names it), as the
    PBX it was recorded on sent it up; the play is recorded in the console's
    audit log (a citizen's voice)."""
    rec = await CallbackQueries(redis).find(key)
    if rec is None:
        raise NotFound(f"没有回拨记录 '{key}' — no callback '{key}'")
    name = rec.get("message") or ""
    if not name:
        raise NotFound(f"回拨 {rec.get('id', key)} 的来电人没有留言 — the caller of callback {rec.get('id', key)} "
                       "left no voice message")
    msg = await prompt_service.voice_message(redis, name)
    await AuditLog(redis, keys.CONSOLE_AUDIT).append([{"kind": "voice_message_played", "at": time.time(), "by": by,
                                                       "callback": rec.get("id", ""), "message": name,
                                                       "pbx": msg.pbx}])
    return msg.audio
