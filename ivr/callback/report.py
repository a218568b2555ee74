"""Callback completion figures for auditors. Pure: records and audit entries in,
figures out."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

from ivr.ami.model import percentile
from ivr.logs import mask_number


def report(records: list[dict], attempts: list[dict], start: float, end: float) -> dict:
    """``records``: callback hashes (open and closed); only those whose first
    missed call falls in [start, end) count. ``attempts``: audit entries of kind
    'attempt' in the same period (for the per-seat figures)."""
    rows = [r for r in records if start <= float(r.get("first_at", 0)) < end]
    counted = [r for r in rows if r.get("closed_reason") != "misdial"]
    called = [r for r in counted if r.get("first_callback_at")]
    reached = [r for r in counted if r.get("closed_reason") == "reached"]
    in_time = [r for r in reached if float(r.get("closed_at", 0)) <= float(r.get("deadline", 0))]
    delays = [float(r["first_callback_at"]) - float(r["first_at"]) for r in called]
    seats: dict[str, dict[str, int]] = defaultdict(lambda: {"attempts": 0, "reached": 0})
    for a in attempts:
        if a.get("outcome") == "seat_no_answer":
            continue
        seats[a.get("seat", "?")]["attempts"] += 1
        seats[a.get("seat", "?")]["reached"] += a.get("outcome") == "reached"
    return {
        "missed_calls": sum(int(r.get("calls", 1)) for r in rows),
        "misdials": len(rows) - len(counted),
        "unique_citizens": len({r.get("number") for r in counted}),
        "callbacks": len(counted),
        "called_back": len(called),
        "reached": len(reached),
        "reached_within_deadline": len(in_time),
        "reached_within_deadline_pct": round(100 * len(in_time) / len(counted), 1) if counted else None,
        "first_callback_p50_s": percentile(delays, 50),
        "first_callback_p95_s": percentile(delays, 95),
        "attempts": sum(int(r.get("attempts", 0)) for r in counted),
        "closed_reached_later": sum(1 for r in counted if r.get("closed_reason") == "reached_later"),
        "closed_unreached": sum(1 for r in counted if r.get("closed_reason") == "unreached"),
        "cancelled": sum(1 for r in counted if str(r.get("closed_reason", "")).startswith("cancelled")),
        "still_open": sum(1 for r in counted if r.get("state") != "closed"),
        "emergency": sum(1 for r in counted if r.get("kind") == "emergency"),
        "per_seat": {k: dict(v) for k, v in sorted(seats.items())},
    }


CSV_FIELDS = ("id", "number", "kind", "reason", "calls", "first_at", "deadline", "first_callback_at", "attempts",
              "last_outcome", "last_seat", "state", "closed_at", "closed_reason")


def records_csv(records: list[dict]) -> str:
    """One row per callback; numbers masked (the CSV leaves the system)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in sorted(records, key=lambda r: float(r.get("first_at", 0))):
        w.writerow({**r, "number": mask_number(r.get("number", ""))})
    return buf.getvalue()


def period(date_from: str, date_to: str, tz) -> tuple[float, float]:
    """[start of date_from, end of date_to) in the hotline's time zone."""
    import datetime as dt

    start_d, end_d = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    for d in (start_d, end_d):
        if not 2000 <= d.year <= 2100:        # 0001 or 9999 overflowed the timestamp arithmetic (a 500)
            raise ValueError(f"日期须在 2000 至 2100 年之间 {d.isoformat()}: dates from 2000 to 2100")
    start = dt.datetime.combine(start_d, dt.time(), tz)
    end = dt.datetime.combine(end_d, dt.time(), tz) + dt.timedelta(days=1)
    if end <= start:
        raise ValueError("the period ends before it starts")
    return start.timestamp(), end.timestamp()


async def _audit_entries(log, start: str, end: str, page: int = 500):
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


async def gather(redis, start: float, end: float) -> tuple[dict, list[dict]]:
    """The report for [start, end) and the callbacks it counts."""
    from ivr.audit import AuditLog
    from ivr.callback.store import AUDIT, CallbackQueries

    recs = await CallbackQueries(redis).all_records(closed_since=start)
    attempts = [e async for e in _audit_entries(AuditLog(redis, AUDIT), f"{int(start * 1000)}-0",
                                                f"{int(end * 1000)}-0") if e.get("kind") == "attempt"]
    rows = [r for r in recs if start <= float(r.get("first_at", 0)) < end]
    return report(recs, attempts, start, end), rows
